import { parametersNeedGrad, returnedGradNames } from '../backend.js';
import { formatShape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { SAVES_INPUTS, assertFloat, assertSameDType, assertShape, defineGrad, run, runMulti, scalar } from './core.js';
import { affine, cast, div, maximum, reshape, sum } from './math.js';

/*
 * Fused kernels. Each has a forward kernel and a dedicated backward kernel that every backend implements.
 * Optional inputs are passed in order and named by the `names` attr, so a kernel knows which are present.
 */

const lastDim = (t: Tensor): number => t.shape[t.rank - 1];

// ---- normalisation ----

/** y = x / sqrt(mean(x²) + eps) ⊙ weight over the last axis (statistics in fp32). */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-5): Tensor {
  assertFloat('rmsNorm', x);
  assertShape('rmsNorm weight', weight, [lastDim(x)]);
  return run('rmsNorm', [x, weight], { eps });
}

// weightGrad false (frozen parameters, as under LoRA): the norm, conv and scan gradients return only the gradients of
// the other inputs (see returnedGradNames), and the kernels skip the parameters' gradient sums.
defineGrad('rmsNorm', ([dy], { inputs: [x, w], attrs, needsGrad }) => {
  const [dx, dw] = runMulti('rmsNormGrad', [dy!, x, w], { ...attrs, weightGrad: needsGrad[1] });
  return [dx, dw ?? null];
}, SAVES_INPUTS);

export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  assertFloat('layerNorm', x);
  assertShape('layerNorm weight', weight, [lastDim(x)]);
  assertShape('layerNorm bias', bias, [lastDim(x)]);
  return run('layerNorm', [x, weight, bias], { eps });
}

defineGrad('layerNorm', ([dy], { inputs: [x, w, b], attrs, needsGrad }) => {
  const [dx, dw, db] = runMulti('layerNormGrad', [dy!, x, w, b], { ...attrs, weightGrad: needsGrad[1] || needsGrad[2] });
  return [dx, dw ?? null, db ?? null];
}, SAVES_INPUTS);

// ---- embedding ----

/** Rows of `table` (V, D) picked by integer `ids` of any shape → (...ids.shape, D). */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  if (ids.dtype !== 'i32') throw new Error(`embedding: ids must be i32, got ${ids.dtype}.`);
  if (table.rank !== 2) throw new Error(`embedding: table must be (vocab, dim), got ${formatShape(table.shape)}.`);
  return run('embedding', [table, ids]);
}

defineGrad('embedding', ([dy], { inputs: [table, ids], needsGrad: [needTable] }) => [
  needTable ? run('embeddingGrad', [dy!, ids], { vocab: table.shape[0], dtype: table.dtype }) : null,
  null,
], { inputs: [1], outputs: [] });

// ---- causal depthwise convolution ----

export interface CausalConv1dOptions {
  bias?: Tensor | null;
  /** (B, E, W−1): the inputs that precede x[0], oldest first. Zeros when absent. */
  initialState?: Tensor | null;
  /** Apply SiLU to the output. */
  silu?: boolean;
}

/** x (B, L, E), weight (E, W): y[t,e] = Σ_k weight[e,k]·x[t−W+1+k] + bias[e] (PyTorch conv1d with left padding). */
export function causalConv1d(x: Tensor, weight: Tensor, { bias, initialState, silu = false }: CausalConv1dOptions = {}): Tensor {
  assertShape('causalConv1d x', x, [-1, -1, -1]);
  const [B, , E] = x.shape;
  assertShape('causalConv1d weight', weight, [E, -1]);
  const W = weight.shape[1];
  const names = ['x', 'weight'];
  const inputs = [x, weight];
  if (bias) {
    assertShape('causalConv1d bias', bias, [E]);
    names.push('bias');
    inputs.push(bias);
  }
  if (initialState) {
    assertShape('causalConv1d initialState', initialState, [B, E, W - 1]);
    names.push('initialState');
    inputs.push(initialState);
  }
  return run('causalConv1d', inputs, { silu, names });
}

defineGrad('causalConv1d', ([dy], { inputs, attrs, needsGrad }) => {
  const names = attrs.names as string[];
  const gradAttrs = { ...attrs, weightGrad: parametersNeedGrad('causalConv1dGrad', names, needsGrad) };
  const grads = runMulti('causalConv1dGrad', [dy!, ...inputs], gradAttrs);
  return byName(names, returnedGradNames('causalConv1dGrad', gradAttrs), grads);
}, SAVES_INPUTS);

/** Gradients for every input in `names` order: the returned ones where given, null for the rest. */
function byName(names: readonly string[], returned: readonly string[], grads: Tensor[]): (Tensor | null)[] {
  return names.map((name) => (returned.includes(name) ? grads[returned.indexOf(name)] : null));
}

// ---- selective scan ----

export interface SelectiveScanInputs {
  /** (B, L, E) scan input (post-conv x). */
  u: Tensor;
  /** (B, L, E) raw time step (before bias and softplus). */
  delta: Tensor;
  /** (E, N) state matrix, fp32, negative for a stable recurrence. */
  A: Tensor;
  /** (B, L, N) input projection. */
  B: Tensor;
  /** (B, L, N) output projection. */
  C: Tensor;
  /** (E) skip connection, fp32. */
  D?: Tensor | null;
  /** (B, L, E) gate: the output is multiplied by silu(z). */
  z?: Tensor | null;
  /** (E) added to delta before the softplus, fp32. */
  deltaBias?: Tensor | null;
  /** (B, E, N) initial state, fp32. */
  h0?: Tensor | null;
  deltaSoftplus?: boolean;
}

/** Required inputs, then each optional input that is present (shape-checked), with the names the kernel reads. */
function withOptional(
  what: string,
  required: Record<string, Tensor>,
  given: object,
  optionalShapes: Record<string, number[]>,
): { names: string[]; inputs: Tensor[] } {
  const names = Object.keys(required);
  const inputs = Object.values(required);
  for (const [name, shape] of Object.entries(optionalShapes)) {
    const t = (given as Record<string, unknown>)[name];
    if (!(t instanceof Tensor)) continue;
    assertShape(`${what} ${name}`, t, shape);
    names.push(name);
    inputs.push(t);
  }
  return { names, inputs };
}

/**
 * h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t u_t, y_t = C_t·h_t + D ⊙ u_t, y ← y ⊙ silu(z), with
 * Δ = softplus(delta + deltaBias). Returns y (dtype of u) and the final state hLast (B, E, N) in fp32.
 */
export function selectiveScan(p: SelectiveScanInputs): { y: Tensor; hLast: Tensor } {
  assertShape('selectiveScan u', p.u, [-1, -1, -1]);
  const [Bt, L, E] = p.u.shape;
  assertShape('selectiveScan A', p.A, [E, -1]);
  const N = p.A.shape[1];
  assertShape('selectiveScan delta', p.delta, [Bt, L, E]);
  assertShape('selectiveScan B', p.B, [Bt, L, N]);
  assertShape('selectiveScan C', p.C, [Bt, L, N]);
  assertSameDType('selectiveScan (u, delta)', p.u, p.delta);
  const { names, inputs } = withOptional('selectiveScan', { u: p.u, delta: p.delta, A: p.A, B: p.B, C: p.C }, p, {
    D: [E], z: [Bt, L, E], deltaBias: [E], h0: [Bt, E, N],
  });
  const [y, hLast] = runMulti('selectiveScan', inputs, { deltaSoftplus: p.deltaSoftplus ?? true, names });
  return { y, hLast };
}

defineGrad('selectiveScan', ([dy, dhLast], { inputs, attrs, needsGrad }) => {
  const names = attrs.names as string[];
  const withState = dhLast !== null;
  const gradInputs = withState ? [dy ?? zerosFor(inputs[0]), dhLast!, ...inputs] : [dy!, ...inputs];
  const weightGrad = parametersNeedGrad('selectiveScanGrad', names, needsGrad);
  const gradAttrs = { ...attrs, names, hasDhLast: withState, weightGrad };
  const grads = runMulti('selectiveScanGrad', gradInputs, gradAttrs);
  return byName(names, returnedGradNames('selectiveScanGrad', gradAttrs), grads);
}, SAVES_INPUTS);

function zerosFor(t: Tensor): Tensor {
  return run('fill', [], { shape: t.shape, dtype: t.dtype, value: 0 });
}

export interface StateUpdateInputs {
  /** (B, E, N) fp32 state before the step. */
  state: Tensor;
  /** (B, E) input for this token. */
  x: Tensor;
  /** (B, E) raw time step. */
  delta: Tensor;
  A: Tensor;
  /** (B, N) */
  B: Tensor;
  /** (B, N) */
  C: Tensor;
  D?: Tensor | null;
  /** (B, E) */
  z?: Tensor | null;
  deltaBias?: Tensor | null;
  deltaSoftplus?: boolean;
}

/** One recurrent step of the selective scan: returns y (B, E) and the new state (B, E, N). */
export function selectiveStateUpdate(p: StateUpdateInputs): { y: Tensor; state: Tensor } {
  assertShape('selectiveStateUpdate state', p.state, [-1, -1, -1]);
  const [Bt, E, N] = p.state.shape;
  assertShape('selectiveStateUpdate x', p.x, [Bt, E]);
  assertShape('selectiveStateUpdate delta', p.delta, [Bt, E]);
  assertShape('selectiveStateUpdate A', p.A, [E, N]);
  assertShape('selectiveStateUpdate B', p.B, [Bt, N]);
  assertShape('selectiveStateUpdate C', p.C, [Bt, N]);
  const { names, inputs } = withOptional('selectiveStateUpdate', { state: p.state, x: p.x, delta: p.delta, A: p.A, B: p.B, C: p.C }, p, {
    D: [E], z: [Bt, E], deltaBias: [E],
  });
  const [y, state] = runMulti('selectiveStateUpdate', inputs, { deltaSoftplus: p.deltaSoftplus ?? true, names });
  return { y, state };
}

// ---- losses ----

export interface CrossEntropyOptions {
  /** Targets equal to this are ignored (default −100, as PyTorch). */
  ignoreIndex?: number;
  /** Vocabulary chunk for the online log-sum-exp (and for the fused linear version's logits). */
  chunkSize?: number;
}

function checkTargets(what: string, rows: number, targets: Tensor): void {
  if (targets.dtype !== 'i32') throw new Error(`${what}: targets must be i32, got ${targets.dtype}.`);
  if (targets.size !== rows) {
    throw new Error(`${what}: ${targets.size} targets (shape ${formatShape(targets.shape)}) for ${rows} rows.`);
  }
}

/** Per-row loss lse(logits) − logits[target] (0 on ignored rows), f32, shape (rows). */
export function crossEntropyRows(logits: Tensor, targets: Tensor, { ignoreIndex = -100, chunkSize = 4096 }: CrossEntropyOptions = {}): Tensor {
  const V = lastDim(logits);
  const flat = reshape(logits, [-1, V]);
  checkTargets('crossEntropy', flat.shape[0], targets);
  return runMulti('crossEntropy', [flat, reshape(targets, [-1])], { ignoreIndex, chunkSize })[0];
}

defineGrad('crossEntropy', ([dloss], { inputs: [logits, targets], outputs: [, lse], attrs }) => [
  run('crossEntropyGrad', [dloss!, logits, targets, lse], attrs),
  null,
], { inputs: 'all', outputs: [1] });

/** Mean cross-entropy over the rows whose target is not ignored. */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  return meanOverValid(crossEntropyRows(logits, targets, opts), targets, opts.ignoreIndex ?? -100);
}

/**
 * Cross-entropy of logits = hidden · weightᵀ without ever storing the (rows, vocab) logits: the vocabulary is
 * processed in chunks, forward and backward. hidden (rows, D), weight (V, D).
 */
export function linearCrossEntropy(hidden: Tensor, weight: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const { ignoreIndex = -100, chunkSize = 4096 } = opts;
  assertSameDType('linearCrossEntropy (hidden, weight)', hidden, weight);
  const D = lastDim(hidden);
  assertShape('linearCrossEntropy weight', weight, [-1, D]);
  const flat = reshape(hidden, [-1, D]);
  checkTargets('linearCrossEntropy', flat.shape[0], targets);
  const flatTargets = reshape(targets, [-1]);
  const [rows] = runMulti('linearCrossEntropy', [flat, weight, flatTargets], { ignoreIndex, chunkSize });
  return meanOverValid(rows, flatTargets, ignoreIndex);
}

// weightGrad false (a frozen head, e.g. the tied embedding under LoRA): the kernel skips dweight's GEMMs.
defineGrad('linearCrossEntropy', ([dloss], { inputs: [hidden, weight, targets], outputs: [, lse], attrs, needsGrad }) => {
  const [dh, dw] = runMulti('linearCrossEntropyGrad', [dloss!, hidden, weight, targets, lse], { ...attrs, weightGrad: needsGrad[1] });
  return [dh, dw ?? null, null];
}, { inputs: 'all', outputs: [1] });

function meanOverValid(rows: Tensor, targets: Tensor, ignoreIndex: number): Tensor {
  const ignored = cast(run('equal', [reshape(targets, [-1]), scalar(ignoreIndex, 'i32')]), 'f32');
  const count = maximum(sum(affine(ignored, -1, 1)), scalar(1));
  return div(sum(rows), count);
}
