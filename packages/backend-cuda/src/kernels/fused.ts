import { returnedGradInputs, sizeOf, type DType, type TensorInfo } from '@mamba-ts/tensor';
import type { CudaBackend } from '../backend.js';
import type { CudaKernel } from './basic.js';

/*
 * The fused kernels on cuda, with the contracts of packages/tensor/src/backends/cpu/kernels-fused.ts: same inputs
 * (optional ones named by attrs.names), attrs, outputs and output dtypes (scan states, losses and lse in f32).
 */

const lastDim = (t: TensorInfo): number => t.shape[t.shape.length - 1];

function requireI32(t: TensorInfo, what: string): void {
  if (t.dtype !== 'i32') throw new Error(`${what}: expected an i32 tensor, got ${t.dtype}.`);
}

function named(inputs: readonly TensorInfo[], names: readonly string[]): Record<string, TensorInfo | undefined> {
  const out: Record<string, TensorInfo | undefined> = {};
  names.forEach((n, i) => (out[n] = inputs[i]));
  return out;
}

/** Outputs shaped and typed like the inputs whose gradients the kernel returns (returnedGradInputs), by name, and
 *  those names in order. */
function gradOutputs(
  backend: CudaBackend,
  kernel: 'causalConv1dGrad' | 'selectiveScanGrad',
  inputs: readonly TensorInfo[],
  attrs: Record<string, unknown>,
): { g: Record<string, TensorInfo>; returned: string[] } {
  const g: Record<string, TensorInfo> = {};
  const returned = returnedGradInputs(kernel, inputs, attrs).map(({ name, input }) => {
    g[name] = backend.output(input.shape, input.dtype, kernel);
    return name;
  });
  return { g, returned };
}

// ---- normalisation ----

const rmsNorm: CudaKernel = ([x, w], attrs, b) => {
  const cols = lastDim(x);
  const y = b.output(x.shape, x.dtype, 'rmsNorm');
  const rows = cols === 0 ? 0 : sizeOf(x.shape) / cols;
  b.launch('rmsNorm', 'rmsNorm', [...b.ref(x, 'rmsNorm'), ...b.ref(w, 'rmsNorm'), ...b.ref(y, 'rmsNorm'), rows, cols, attrs.eps as number]);
  return [y];
};

const rmsNormGrad: CudaKernel = ([dy, x, w], attrs, b) => {
  const k = 'rmsNormGrad';
  const cols = lastDim(x);
  const rows = cols === 0 ? 0 : sizeOf(x.shape) / cols;
  const dx = b.output(x.shape, x.dtype, k);
  const dw = attrs.weightGrad === false ? undefined : b.output(w.shape, w.dtype, k); // absent: the sums are skipped
  b.launch(k, k, [...b.ref(dy, k), ...b.ref(x, k), ...b.ref(w, k), ...b.ref(dx, k), ...b.ref(dw, k), rows, cols, attrs.eps as number]);
  return dw ? [dx, dw] : [dx];
};

const layerNorm: CudaKernel = ([x, w, bias], attrs, b) => {
  const k = 'layerNorm';
  const cols = lastDim(x);
  const rows = cols === 0 ? 0 : sizeOf(x.shape) / cols;
  const y = b.output(x.shape, x.dtype, k);
  b.launch(k, k, [...b.ref(x, k), ...b.ref(w, k), ...b.ref(bias, k), ...b.ref(y, k), rows, cols, attrs.eps as number]);
  return [y];
};

const layerNormGrad: CudaKernel = ([dy, x, w, bias], attrs, b) => {
  const k = 'layerNormGrad';
  const cols = lastDim(x);
  const rows = cols === 0 ? 0 : sizeOf(x.shape) / cols;
  const dx = b.output(x.shape, x.dtype, k);
  const weightGrad = attrs.weightGrad !== false;
  const dw = weightGrad ? b.output(w.shape, w.dtype, k) : undefined;
  const db = weightGrad ? b.output(bias.shape, bias.dtype, k) : undefined;
  b.launch(k, k, [
    ...b.ref(dy, k), ...b.ref(x, k), ...b.ref(w, k), ...b.ref(dx, k), ...b.ref(dw, k), ...b.ref(db, k), rows, cols, attrs.eps as number,
  ]);
  return dw && db ? [dx, dw, db] : [dx];
};

// ---- embedding ----

const embedding: CudaKernel = ([table, ids], _attrs, b) => {
  const k = 'embedding';
  requireI32(ids, 'embedding ids');
  const [vocab, dim] = table.shape;
  const positions = sizeOf(ids.shape);
  const out = b.output([...ids.shape, dim], table.dtype, k);
  b.launch(k, k, [...b.ref(table, k), b.address(ids, k), ...b.ref(out, k), positions, vocab, dim]);
  return [out];
};

const embeddingGrad: CudaKernel = ([dout, ids], attrs, b) => {
  const k = 'embeddingGrad';
  requireI32(ids, 'embedding ids');
  const vocab = attrs.vocab as number;
  const dim = lastDim(dout);
  const dtable = b.output([vocab, dim], attrs.dtype as DType, k);
  b.launch(k, k, [...b.ref(dout, k), b.address(ids, k), ...b.ref(dtable, k), sizeOf(ids.shape), vocab, dim]);
  return [dtable];
};

// ---- causal conv1d ----

function convPrefix(b: CudaBackend, k: string, inputs: readonly TensorInfo[], attrs: Record<string, unknown>) {
  const n = named(inputs, attrs.names as string[]);
  const x = n.x!;
  const [B, L, E] = x.shape;
  const W = n.weight!.shape[1];
  const args = [
    ...b.ref(x, k), ...b.ref(n.weight, k), ...b.ref(n.bias, k), ...b.ref(n.initialState, k), Boolean(attrs.silu), B, L, E, W,
  ];
  return { x, args };
}

const causalConv1d: CudaKernel = (inputs, attrs, b) => {
  const k = 'causalConv1d';
  const { x, args } = convPrefix(b, k, inputs, attrs);
  const y = b.output(x.shape, x.dtype, k);
  b.launch(k, k, [...args, ...b.ref(y, k)]);
  return [y];
};

const causalConv1dGrad: CudaKernel = ([dy, ...inputs], attrs, b) => {
  const k = 'causalConv1dGrad';
  const { args } = convPrefix(b, k, inputs, attrs);
  const { g, returned } = gradOutputs(b, k, inputs, attrs); // absent weight/bias: the kernel skips their sums
  b.launch(k, k, [...args, ...b.ref(dy, k), ...b.ref(g.x, k), ...b.ref(g.weight, k), ...b.ref(g.bias, k), ...b.ref(g.initialState, k)]);
  return returned.map((name) => g[name]);
};

// ---- selective scan ----

function scanPrefix(b: CudaBackend, k: string, inputs: readonly TensorInfo[], attrs: Record<string, unknown>) {
  const n = named(inputs, attrs.names as string[]);
  const [batch, length, channels] = n.u!.shape;
  const state = n.A!.shape[1];
  const refs = (['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'deltaBias', 'h0'] as const).flatMap((name) => b.ref(n[name], k));
  return { n, dims: { batch, length, channels, state }, args: [...refs, Boolean(attrs.deltaSoftplus), batch, length, channels, state] };
}

const selectiveScan: CudaKernel = (inputs, attrs, b) => {
  const k = 'selectiveScan';
  const { n, dims, args } = scanPrefix(b, k, inputs, attrs);
  const y = b.output(n.u!.shape, n.u!.dtype, k);
  const hLast = b.output([dims.batch, dims.channels, dims.state], 'f32', k);
  b.launch(k, k, [...args, ...b.ref(y, k), ...b.ref(hLast, k)]);
  return [y, hLast];
};

const selectiveScanGrad: CudaKernel = (allInputs, attrs, b) => {
  const k = 'selectiveScanGrad';
  const [dy, dhLast, inputs] = attrs.hasDhLast
    ? [allInputs[0], allInputs[1], allInputs.slice(2)]
    : [allInputs[0], undefined, allInputs.slice(1)];
  const { args } = scanPrefix(b, k, inputs, attrs);
  const { g, returned } = gradOutputs(b, k, inputs, attrs); // absent A, D, deltaBias: no partial sums
  const grads = (['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'deltaBias', 'h0'] as const).flatMap((name) => b.ref(g[name], k));
  b.launch(k, k, [...b.ref(dy, k), ...b.ref(dhLast, k), ...args, ...grads]);
  return returned.map((name) => g[name]);
};

const selectiveStateUpdate: CudaKernel = (inputs, attrs, b) => {
  const k = 'selectiveStateUpdate';
  const n = named(inputs, attrs.names as string[]);
  const [batch, channels, state] = n.state!.shape;
  const y = b.output(n.x!.shape, n.x!.dtype, k);
  const stateOut = b.output(n.state!.shape, 'f32', k);
  const refs = (['state', 'x', 'delta', 'A', 'B', 'C', 'D', 'z', 'deltaBias'] as const).flatMap((name) => b.ref(n[name], k));
  b.launch(k, k, [...refs, Boolean(attrs.deltaSoftplus), batch, channels, state, ...b.ref(y, k), b.address(stateOut, k)]);
  return [y, stateOut];
};

// ---- losses ----

function checkChunkSize(where: string, chunkSize: unknown): number {
  if (!Number.isInteger(chunkSize) || (chunkSize as number) < 1) {
    throw new Error(`${where}: chunkSize must be a positive integer, got ${chunkSize}.`);
  }
  return chunkSize as number;
}

const crossEntropy: CudaKernel = ([logits, targets], attrs, b) => {
  const k = 'crossEntropy';
  requireI32(targets, 'crossEntropy targets');
  checkChunkSize(k, attrs.chunkSize);
  const [rows, vocab] = logits.shape;
  const loss = b.output([rows], 'f32', k);
  const lse = b.output([rows], 'f32', k);
  b.launch(k, k, [...b.ref(logits, k), b.address(targets, k), b.address(loss, k), b.address(lse, k), rows, vocab, attrs.ignoreIndex as number]);
  return [loss, lse];
};

const crossEntropyGrad: CudaKernel = ([dloss, logits, targets, lse], attrs, b) => {
  const k = 'crossEntropyGrad';
  requireI32(targets, 'crossEntropy targets');
  const [rows, vocab] = logits.shape;
  const dlogits = b.output(logits.shape, logits.dtype, k);
  b.launch(k, k, [
    ...b.ref(dloss, k), ...b.ref(logits, k), b.address(targets, k), ...b.ref(lse, k), ...b.ref(dlogits, k), rows, vocab, attrs.ignoreIndex as number,
  ]);
  return [dlogits];
};

function linearDims(hidden: TensorInfo, weight: TensorInfo, where: string) {
  if (hidden.dtype !== weight.dtype) {
    throw new Error(`${where}: dtypes differ (${hidden.dtype} and ${weight.dtype}); cast one input first.`);
  }
  if (hidden.dtype === 'i32') throw new Error(`${where}: hidden and weight must be floating point, got i32.`);
  const [rows, dim] = hidden.shape;
  return { rows, dim, vocab: weight.shape[0] };
}

const linearCrossEntropy: CudaKernel = ([hidden, weight, targets], attrs, b) => {
  const k = 'linearCrossEntropy';
  requireI32(targets, 'linearCrossEntropy targets');
  const chunkSize = checkChunkSize(k, attrs.chunkSize);
  const { rows, dim, vocab } = linearDims(hidden, weight, k);
  const loss = b.output([rows], 'f32', k);
  const lse = b.output([rows], 'f32', k);
  b.launch(k, k, [
    b.address(hidden, k), b.address(weight, k), b.ref(hidden, k)[1], b.address(targets, k), b.address(loss, k), b.address(lse, k),
    rows, dim, vocab, attrs.ignoreIndex as number, chunkSize,
  ]);
  return [loss, lse];
};

const linearCrossEntropyGrad: CudaKernel = ([dloss, hidden, weight, targets, lse], attrs, b) => {
  const k = 'linearCrossEntropyGrad';
  requireI32(targets, 'linearCrossEntropy targets');
  const chunkSize = checkChunkSize(k, attrs.chunkSize);
  const { rows, dim, vocab } = linearDims(hidden, weight, k);
  const dhidden = b.output(hidden.shape, hidden.dtype, k);
  const dweight = attrs.weightGrad === false ? undefined : b.output(weight.shape, weight.dtype, k);
  b.launch(k, k, [
    ...b.ref(dloss, k), b.address(hidden, k), b.address(weight, k), b.ref(hidden, k)[1], b.address(targets, k), ...b.ref(lse, k),
    b.address(dhidden, k), b.address(dweight, k), rows, dim, vocab, attrs.ignoreIndex as number, chunkSize,
  ]);
  return dweight ? [dhidden, dweight] : [dhidden];
};

// ---- optimizer ----

const sumSquares: CudaKernel = (inputs, _attrs, b) => {
  const k = 'sumSquares';
  const out = b.output([], 'f32', k);
  b.launch(k, k, [b.address(out, k), inputs.length, ...inputs.flatMap((x) => [...b.ref(x, k), sizeOf(x.shape)])]);
  return [out];
};

const adamw: CudaKernel = ([param, grad, m, v], attrs, b) => {
  const k = 'adamw';
  const step = attrs.step as number;
  if (!Number.isInteger(step) || step < 1) {
    throw new Error(`adamwStep: step must be an integer ≥ 1 (the first update is step 1), got ${step}.`);
  }
  const n = sizeOf(param.shape);
  for (const [name, t] of [['grad', grad], ['m', m], ['v', v]] as const) {
    if (sizeOf(t.shape) !== n) throw new Error(`adamwStep: ${name} has ${sizeOf(t.shape)} elements but param has ${n}.`);
  }
  const paramOut = b.output(param.shape, param.dtype, k);
  const mOut = b.output(m.shape, 'f32', k);
  const vOut = b.output(v.shape, 'f32', k);
  b.launch(k, k, [
    ...b.ref(param, k), ...b.ref(grad, k), ...b.ref(m, k), ...b.ref(v, k), ...b.ref(paramOut, k), b.address(mOut, k), b.address(vOut, k), n,
    attrs.lr as number, attrs.beta1 as number, attrs.beta2 as number, attrs.eps as number, attrs.weightDecay as number, step,
    (attrs.gradScale as number | undefined) ?? 1,
  ]);
  return [paramOut, mOut, vOut];
};

export function fusedKernels(): Record<string, CudaKernel> {
  return {
    rmsNorm, rmsNormGrad, layerNorm, layerNormGrad, embedding, embeddingGrad, causalConv1d, causalConv1dGrad,
    selectiveScan, selectiveScanGrad, selectiveStateUpdate, crossEntropy, crossEntropyGrad, linearCrossEntropy,
    linearCrossEntropyGrad, adamw, sumSquares,
  };
}
