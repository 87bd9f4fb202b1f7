import { returnedGradInputs, type KernelFunc, type TensorInfo } from '../../backend.js';
import { sizeOf } from '../../shape.js';
import * as math from './math/index.js';
import { f32, i32, namedInputs, output } from './util.js';

/*
 * The fused kernels on cpu: decode inputs to float32, run the reference math, encode outputs in their dtypes.
 * Outputs take the dtype of the input they correspond to; scan states, losses and log-sum-exps are f32.
 */

const lastDim = (t: TensorInfo): number => t.shape[t.shape.length - 1];
const opt = (t: TensorInfo | undefined): Float32Array | null => (t ? f32(t) : null);
const zerosFor = (t: TensorInfo | undefined): Float32Array | null => (t ? new Float32Array(sizeOf(t.shape)) : null);

const rmsNorm: KernelFunc = ([x, w], attrs, backend) => {
  const cols = lastDim(x);
  const rows = sizeOf(x.shape) / cols;
  const y = new Float32Array(rows * cols);
  math.rmsNormForward({ rows, cols, x: f32(x), weight: f32(w), eps: attrs.eps as number, y });
  return [output(backend, x.shape, x.dtype, y)];
};

const rmsNormGrad: KernelFunc = ([dy, x, w], attrs, backend) => {
  const cols = lastDim(x);
  const rows = sizeOf(x.shape) / cols;
  const dx = new Float32Array(rows * cols);
  const dweight = new Float32Array(cols);
  math.rmsNormBackward({ rows, cols, x: f32(x), weight: f32(w), eps: attrs.eps as number, dy: f32(dy), dx, dweight });
  const dxOut = output(backend, x.shape, x.dtype, dx);
  return attrs.weightGrad === false ? [dxOut] : [dxOut, output(backend, w.shape, w.dtype, dweight)];
};

const layerNorm: KernelFunc = ([x, w, b], attrs, backend) => {
  const cols = lastDim(x);
  const rows = sizeOf(x.shape) / cols;
  const y = new Float32Array(rows * cols);
  math.layerNormForward({ rows, cols, x: f32(x), weight: f32(w), bias: f32(b), eps: attrs.eps as number, y });
  return [output(backend, x.shape, x.dtype, y)];
};

const layerNormGrad: KernelFunc = ([dy, x, w, b], attrs, backend) => {
  const cols = lastDim(x);
  const rows = sizeOf(x.shape) / cols;
  const dx = new Float32Array(rows * cols);
  const dweight = new Float32Array(cols);
  const dbias = new Float32Array(cols);
  math.layerNormBackward({
    rows, cols, x: f32(x), weight: f32(w), bias: f32(b), eps: attrs.eps as number, dy: f32(dy), dx, dweight, dbias,
  });
  const dxOut = output(backend, x.shape, x.dtype, dx);
  if (attrs.weightGrad === false) return [dxOut];
  return [dxOut, output(backend, w.shape, w.dtype, dweight), output(backend, b.shape, b.dtype, dbias)];
};

const embedding: KernelFunc = ([table, ids], _attrs, backend) => {
  const [vocab, dim] = table.shape;
  const idv = i32(ids, 'embedding ids');
  const out = new Float32Array(idv.length * dim);
  math.embeddingForward({ ids: idv, vocab, dim, table: f32(table), out });
  return [output(backend, [...ids.shape, dim], table.dtype, out)];
};

const embeddingGrad: KernelFunc = ([dout, ids], attrs, backend) => {
  const vocab = attrs.vocab as number;
  const dim = lastDim(dout);
  const dtable = new Float32Array(vocab * dim);
  math.embeddingBackward({ ids: i32(ids, 'embedding ids'), vocab, dim, dout: f32(dout), dtable });
  return [output(backend, [vocab, dim], attrs.dtype as TensorInfo['dtype'], dtable)];
};

function convArgs(inputs: readonly TensorInfo[], attrs: Record<string, unknown>) {
  const n = namedInputs(inputs, attrs.names as string[]);
  const x = n.x!;
  const [batch, length, channels] = x.shape;
  const width = n.weight!.shape[1];
  return {
    n,
    args: {
      dims: { batch, length, channels, width },
      x: f32(x),
      weight: f32(n.weight!),
      bias: opt(n.bias),
      initialState: opt(n.initialState),
      silu: Boolean(attrs.silu),
    },
  };
}

const causalConv1d: KernelFunc = (inputs, attrs, backend) => {
  const { n, args } = convArgs(inputs, attrs);
  const y = new Float32Array(sizeOf(n.x!.shape));
  math.causalConv1dForward({ ...args, y });
  return [output(backend, n.x!.shape, n.x!.dtype, y)];
};

const causalConv1dGrad: KernelFunc = ([dy, ...inputs], attrs, backend) => {
  const { n, args } = convArgs(inputs, attrs);
  const grads = {
    dx: new Float32Array(sizeOf(n.x!.shape)),
    dweight: new Float32Array(sizeOf(n.weight!.shape)),
    dbias: zerosFor(n.bias),
    dinitialState: zerosFor(n.initialState),
  };
  math.causalConv1dBackward({ ...args, dy: f32(dy), ...grads });
  const byName: Record<string, Float32Array | null> = {
    x: grads.dx, weight: grads.dweight, bias: grads.dbias, initialState: grads.dinitialState,
  };
  return returnedGradInputs('causalConv1dGrad', inputs, attrs).map(({ name, input }) =>
    output(backend, input.shape, input.dtype, byName[name]!));
};

function scanArgs(inputs: readonly TensorInfo[], attrs: Record<string, unknown>) {
  const n = namedInputs(inputs, attrs.names as string[]);
  const [batch, length, channels] = n.u!.shape;
  const state = n.A!.shape[1];
  return {
    n,
    args: {
      dims: { batch, length, channels, state },
      u: f32(n.u!),
      delta: f32(n.delta!),
      A: f32(n.A!),
      Bm: f32(n.B!),
      Cm: f32(n.C!),
      D: opt(n.D),
      z: opt(n.z),
      deltaBias: opt(n.deltaBias),
      h0: opt(n.h0),
      deltaSoftplus: Boolean(attrs.deltaSoftplus),
    },
  };
}

const selectiveScan: KernelFunc = (inputs, attrs, backend) => {
  const { n, args } = scanArgs(inputs, attrs);
  const { batch, channels, state } = args.dims;
  const y = new Float32Array(sizeOf(n.u!.shape));
  const hLast = new Float32Array(batch * channels * state);
  math.selectiveScanForward({ ...args, y, hLast });
  return [output(backend, n.u!.shape, n.u!.dtype, y), output(backend, [batch, channels, state], 'f32', hLast)];
};

const selectiveScanGrad: KernelFunc = (allInputs, attrs, backend) => {
  const [dy, dhLast, inputs] = attrs.hasDhLast
    ? [allInputs[0], allInputs[1], allInputs.slice(2)]
    : [allInputs[0], undefined, allInputs.slice(1)];
  const { n, args } = scanArgs(inputs, attrs);
  const grads: Record<string, Float32Array | null> = {
    u: zerosFor(n.u), delta: zerosFor(n.delta), A: zerosFor(n.A), B: zerosFor(n.B), C: zerosFor(n.C),
    D: zerosFor(n.D), z: zerosFor(n.z), deltaBias: zerosFor(n.deltaBias), h0: zerosFor(n.h0),
  };
  math.selectiveScanBackward({
    ...args,
    dy: f32(dy),
    dhLast: opt(dhLast),
    du: grads.u!, ddelta: grads.delta!, dA: grads.A!, dBm: grads.B!, dCm: grads.C!,
    dD: grads.D, dz: grads.z, ddeltaBias: grads.deltaBias, dh0: grads.h0,
  });
  return returnedGradInputs('selectiveScanGrad', inputs, attrs).map(({ name, input }) =>
    output(backend, input.shape, input.dtype, grads[name]!));
};

const selectiveStateUpdate: KernelFunc = (inputs, attrs, backend) => {
  const n = namedInputs(inputs, attrs.names as string[]);
  const [batch, channels, state] = n.state!.shape;
  const y = new Float32Array(batch * channels);
  const stateOut = new Float32Array(batch * channels * state);
  math.selectiveStateUpdate({
    dims: { batch, channels, state },
    state: f32(n.state!), x: f32(n.x!), delta: f32(n.delta!), A: f32(n.A!), Bm: f32(n.B!), Cm: f32(n.C!),
    D: opt(n.D), z: opt(n.z), deltaBias: opt(n.deltaBias), deltaSoftplus: Boolean(attrs.deltaSoftplus),
    y, stateOut,
  });
  return [output(backend, n.x!.shape, n.x!.dtype, y), output(backend, n.state!.shape, 'f32', stateOut)];
};

const crossEntropy: KernelFunc = ([logits, targets], attrs, backend) => {
  const [rows, vocab] = logits.shape;
  const loss = new Float32Array(rows);
  const lse = new Float32Array(rows);
  math.crossEntropyForward({
    rows, vocab, logits: f32(logits), targets: i32(targets, 'crossEntropy targets'),
    ignoreIndex: attrs.ignoreIndex as number, chunkSize: attrs.chunkSize as number, loss, lse,
  });
  return [output(backend, [rows], 'f32', loss), output(backend, [rows], 'f32', lse)];
};

const crossEntropyGrad: KernelFunc = ([dloss, logits, targets, lse], attrs, backend) => {
  const [rows, vocab] = logits.shape;
  const dlogits = new Float32Array(rows * vocab);
  math.crossEntropyBackward({
    rows, vocab, logits: f32(logits), targets: i32(targets, 'crossEntropy targets'),
    ignoreIndex: attrs.ignoreIndex as number, lse: f32(lse), dloss: f32(dloss), dlogits,
  });
  return [output(backend, logits.shape, logits.dtype, dlogits)];
};

const linearCrossEntropy: KernelFunc = ([hidden, weight, targets], attrs, backend) => {
  const [rows, dim] = hidden.shape;
  const vocab = weight.shape[0];
  const loss = new Float32Array(rows);
  const lse = new Float32Array(rows);
  math.linearCrossEntropyForward({
    rows, dim, vocab, hidden: f32(hidden), weight: f32(weight), targets: i32(targets, 'linearCrossEntropy targets'),
    ignoreIndex: attrs.ignoreIndex as number, chunkSize: attrs.chunkSize as number, loss, lse,
  });
  return [output(backend, [rows], 'f32', loss), output(backend, [rows], 'f32', lse)];
};

const linearCrossEntropyGrad: KernelFunc = ([dloss, hidden, weight, targets, lse], attrs, backend) => {
  const [rows, dim] = hidden.shape;
  const vocab = weight.shape[0];
  const dhidden = new Float32Array(rows * dim);
  const dweight = attrs.weightGrad === false ? null : new Float32Array(vocab * dim);
  math.linearCrossEntropyBackward({
    rows, dim, vocab, hidden: f32(hidden), weight: f32(weight), targets: i32(targets, 'linearCrossEntropy targets'),
    ignoreIndex: attrs.ignoreIndex as number, chunkSize: attrs.chunkSize as number, lse: f32(lse), dloss: f32(dloss),
    dhidden, dweight,
  });
  const dh = output(backend, hidden.shape, hidden.dtype, dhidden);
  return dweight ? [dh, output(backend, weight.shape, weight.dtype, dweight)] : [dh];
};

/** Decoupled-weight-decay Adam; param, m and v are f32 (master weights and optimizer state). */
const adamw: KernelFunc = ([param, grad, m, v], attrs, backend) => {
  const p = f32(param).slice();
  const mm = f32(m).slice();
  const vv = f32(v).slice();
  math.adamwStep({
    param: p, grad: f32(grad), m: mm, v: vv,
    lr: attrs.lr as number, beta1: attrs.beta1 as number, beta2: attrs.beta2 as number, eps: attrs.eps as number,
    weightDecay: attrs.weightDecay as number, step: attrs.step as number, gradScale: (attrs.gradScale as number | undefined) ?? 1,
  });
  return [output(backend, param.shape, param.dtype, p), output(backend, m.shape, 'f32', mm), output(backend, v.shape, 'f32', vv)];
};

export function fusedKernels(): Record<string, KernelFunc> {
  return {
    rmsNorm, rmsNormGrad, layerNorm, layerNormGrad, embedding, embeddingGrad, causalConv1d, causalConv1dGrad,
    selectiveScan, selectiveScanGrad, selectiveStateUpdate, crossEntropy, crossEntropyGrad, linearCrossEntropy,
    linearCrossEntropyGrad, adamw,
  };
}
