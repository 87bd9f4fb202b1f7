import { assertDType, isFloat, type DType } from '../dtype.js';
import { engine } from '../engine.js';
import { formatShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { SAVES_NOTHING, assertFloat, assertShape, defineGrad, runMulti } from './core.js';

/*
 * Fused kernels for Mamba's recurrent (decode) step: each replaces a chain of kernels per layer and token, so that a
 * decode step is these three plus the in_proj, x_proj and out_proj GEMMs. Inference only: they have no gradient (the
 * parallel path, with rmsNorm, causalConv1d and selectiveScan, is the one to differentiate).
 */

/** Kernel inputs in contract order, dropping the absent optional ones; `names` tells the kernel which are present. */
function present(entries: [string, Tensor | null | undefined][]): { inputs: Tensor[]; names: string[] } {
  const kept = entries.filter((e): e is [string, Tensor] => e[1] != null);
  return { names: kept.map(([name]) => name), inputs: kept.map(([, t]) => t) };
}

function inferenceOnly(kernel: string, trainWith: string): void {
  defineGrad(kernel, () => {
    throw new Error(
      `${kernel} has no gradient: it is an inference-only kernel of the recurrent decode step; ` +
        `differentiate the parallel path (${trainWith}) instead, or run decoding under noGrad().`,
    );
  }, SAVES_NOTHING);
}

// ---- residual add + RMSNorm ----

export interface ResidualRmsNormInputs {
  /** (..., D), any float dtype: the residual stream. */
  residual: Tensor;
  /** Same shape as residual, any float dtype: added to it first (the previous layer's output). */
  update?: Tensor | null;
  /** (D) */
  weight: Tensor;
  eps?: number;
  /** dtype of `normed` (default: the residual's). */
  outDtype?: DType;
}

/**
 * sum = residual + update (in the residual's dtype; residual alone without update) and
 * normed = sum / sqrt(mean(sum²) + eps) · weight over the last axis, in `outDtype`. The math is fp32 and the norm
 * is taken of sum as stored. Replaces add(residual, cast(update, residual.dtype)) + cast(rmsNorm(…), outDtype).
 */
export function residualRmsNorm(p: ResidualRmsNormInputs): { sum: Tensor; normed: Tensor } {
  const { residual, update, weight, eps = 1e-5 } = p;
  const outDtype = p.outDtype ?? residual.dtype;
  assertFloat('residualRmsNorm residual', residual);
  if (residual.rank < 1) throw new Error('residualRmsNorm residual: expected shape (..., D), got a scalar.');
  const D = residual.shape[residual.rank - 1];
  if (update) {
    assertFloat('residualRmsNorm update', update);
    assertShape('residualRmsNorm update', update, residual.shape);
  }
  assertFloat('residualRmsNorm weight', weight);
  assertShape('residualRmsNorm weight', weight, [D]);
  assertDType(outDtype, 'residualRmsNorm outDtype');
  if (!isFloat(outDtype)) throw new Error(`residualRmsNorm outDtype: expected a floating-point dtype, got ${outDtype}.`);
  if (!(eps >= 0)) throw new Error(`residualRmsNorm eps: expected a non-negative number, got ${eps}.`);
  const { inputs, names } = present([['residual', residual], ['update', update], ['weight', weight]]);
  const [sum, normed] = runMulti('residualRmsNorm', inputs, { eps, outDtype, names });
  return { sum, normed };
}

inferenceOnly('residualRmsNorm', 'add and rmsNorm');

/**
 * With `inPlace` a step kernel writes the new state over its input state instead of a new tensor (a decoder's state
 * then needs no copy per token). Only the state's own backend can do that: a kernel run on cpu for a backend that
 * lacks it would update a copy.
 */
function checkInPlace(kernel: string, state: Tensor): void {
  if (!engine().hasKernel(state.backend, kernel)) {
    throw new Error(
      `${kernel} inPlace: backend "${state.backend}" has no ${kernel} kernel of its own to update the state in place; ` +
        'leave inPlace off there (the step then returns a new state).',
    );
  }
}

// ---- causal conv1d, one token ----

export interface ConvStepInputs {
  /** (B, C) with C ≥ E: the in_proj output; x is columns [0, E). */
  xz: Tensor;
  /** (B, E, W−1): the previous W−1 inputs of the convolution, oldest first. */
  convState: Tensor;
  /** (E, W) */
  weight: Tensor;
  /** (E) */
  bias?: Tensor | null;
  /** Apply SiLU to the output. */
  silu?: boolean;
  /** Write the next state over convState (returned as `state`) instead of a new tensor. */
  inPlace?: boolean;
}

/**
 * One token of the depthwise causal conv1d: x (B, E) in xz's dtype, as causalConv1d with convState as its initial
 * state, and the next state (B, E, W−1) in convState's dtype: the window shifted by one with xz's x part newest.
 */
export function convStep(p: ConvStepInputs): { x: Tensor; state: Tensor } {
  const { xz, convState, weight, bias, silu = false, inPlace = false } = p;
  assertFloat('convStep xz', xz);
  assertFloat('convStep convState', convState);
  assertFloat('convStep weight', weight);
  assertShape('convStep convState', convState, [-1, -1, -1]);
  const [B, E, window] = convState.shape;
  assertShape('convStep xz', xz, [B, -1]);
  if (xz.shape[1] < E) {
    throw new Error(`convStep xz: has ${xz.shape[1]} columns but its x part needs ${E} (convState has E = ${E} channels).`);
  }
  assertShape('convStep weight', weight, [E, window + 1]);
  if (bias) {
    assertFloat('convStep bias', bias);
    assertShape('convStep bias', bias, [E]);
  }
  const { inputs, names } = present([['xz', xz], ['convState', convState], ['weight', weight], ['bias', bias]]);
  if (inPlace) {
    checkInPlace('convStep', convState);
    const [x] = runMulti('convStep', inputs, { silu, names, inPlace });
    return { x, state: convState };
  }
  const [x, state] = runMulti('convStep', inputs, { silu, names });
  return { x, state };
}

inferenceOnly('convStep', 'causalConv1d');

// ---- selective state update with dt_proj, A and the splits folded in ----

export interface SsmStepInputs {
  /** (B, E, N) fp32 state before the step. */
  state: Tensor;
  /** (B, E) the conv output for this token. */
  x: Tensor;
  /** (B, C) with C ≥ 2E: the in_proj output; the gate z is columns [E, 2E). */
  xz: Tensor;
  /** (B, R + 2N): x_proj's output, [δ low rank (R), B (N), C (N)]. */
  dbc: Tensor;
  /** (E, R): dt_proj's weight. */
  dtWeight: Tensor;
  /** (E): dt_proj's bias, added before the softplus. */
  dtBias?: Tensor | null;
  /** (E, N): A = −exp(ALog). */
  ALog: Tensor;
  /** (E) skip connection. */
  D?: Tensor | null;
  deltaSoftplus?: boolean;
  /** Write the new state over `state` (returned as `state`) instead of a new tensor. */
  inPlace?: boolean;
}

/**
 * One recurrent step of the selective SSM with dt_proj, A = −exp(ALog) and the splits of xz and dbc folded in:
 * Δ = softplus(dtWeight·δ + dtBias), h = exp(Δ·A) ⊙ state + Δ·B·x, y = (C·h + D·x) · silu(z).
 * Returns y (B, E) in x's dtype and the new state (B, E, N) in fp32.
 */
export function ssmStep(p: SsmStepInputs): { y: Tensor; state: Tensor } {
  const { state, x, xz, dbc, dtWeight, dtBias, ALog, D, deltaSoftplus = true, inPlace = false } = p;
  assertShape('ssmStep state', state, [-1, -1, -1]);
  if (state.dtype !== 'f32') throw new Error(`ssmStep state: the scan state must be f32, got ${state.dtype}.`);
  const [B, E, N] = state.shape;
  for (const [name, t] of [['x', x], ['xz', xz], ['dbc', dbc], ['dtWeight', dtWeight], ['ALog', ALog]] as const) {
    assertFloat(`ssmStep ${name}`, t);
  }
  assertShape('ssmStep x', x, [B, E]);
  assertShape('ssmStep xz', xz, [B, -1]);
  if (xz.shape[1] < 2 * E) {
    throw new Error(`ssmStep xz: has ${xz.shape[1]} columns but needs at least 2E = ${2 * E} (x, then the gate z).`);
  }
  assertShape('ssmStep dtWeight', dtWeight, [E, -1]);
  const R = dtWeight.shape[1];
  if (dbc.rank !== 2 || dbc.shape[0] !== B || dbc.shape[1] !== R + 2 * N) {
    throw new Error(
      `ssmStep dbc: expected shape [${B}, ${R + 2 * N}] (batch, R + 2N with R = ${R} from dtWeight and N = ${N} from state), ` +
        `got ${formatShape(dbc.shape)}.`,
    );
  }
  assertShape('ssmStep ALog', ALog, [E, N]);
  for (const [name, t] of [['dtBias', dtBias], ['D', D]] as const) {
    if (!t) continue;
    assertFloat(`ssmStep ${name}`, t);
    assertShape(`ssmStep ${name}`, t, [E]);
  }
  const { inputs, names } = present([
    ['state', state], ['x', x], ['xz', xz], ['dbc', dbc], ['dtWeight', dtWeight], ['dtBias', dtBias], ['ALog', ALog], ['D', D],
  ]);
  if (inPlace) {
    checkInPlace('ssmStep', state);
    const [y] = runMulti('ssmStep', inputs, { deltaSoftplus, names, inPlace });
    return { y, state };
  }
  const [y, next] = runMulti('ssmStep', inputs, { deltaSoftplus, names });
  return { y, state: next };
}

inferenceOnly('ssmStep', 'selectiveScan');
