import type { KernelFunc, TensorInfo } from '../../backend.js';
import type { DType } from '../../dtype.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../half.js';
import { sizeOf } from '../../shape.js';
import * as math from './math/index.js';
import { f32, namedInputs, output, overwrite } from './util.js';

/*
 * The decode-step kernels on cpu (inference only, no gradient kernels): decode inputs to float32, run the reference
 * math, encode outputs. Optional inputs are named by attrs.names, as for the fused kernels.
 */

const opt = (t: TensorInfo | undefined): Float32Array | null => (t ? f32(t) : null);

/** v rounded as a tensor of `dtype` would store it. */
function storageRounding(dtype: DType): (v: number) => number {
  if (dtype === 'f16') return (v) => f16BitsToF32(f32ToF16Bits(v));
  if (dtype === 'bf16') return (v) => bf16BitsToF32(f32ToBf16Bits(v));
  return Math.fround;
}

/** residual, update?, weight → sum (residual's dtype), normed (attrs.outDtype). */
const residualRmsNorm: KernelFunc = (inputs, attrs, backend) => {
  const n = namedInputs(inputs, attrs.names as string[]);
  const residual = n.residual!;
  const cols = residual.shape[residual.shape.length - 1];
  const rows = cols === 0 ? 0 : sizeOf(residual.shape) / cols;
  const sum = new Float32Array(rows * cols);
  const normed = new Float32Array(rows * cols);
  math.residualRmsNorm({
    rows, cols, residual: f32(residual), update: opt(n.update), weight: f32(n.weight!), eps: attrs.eps as number,
    roundSum: storageRounding(residual.dtype), sum, normed,
  });
  return [output(backend, residual.shape, residual.dtype, sum), output(backend, residual.shape, attrs.outDtype as DType, normed)];
};

/** xz, convState, weight, bias? → x (xz's dtype), state (convState's dtype; with attrs.inPlace written over convState). */
const convStep: KernelFunc = (inputs, attrs, backend) => {
  const n = namedInputs(inputs, attrs.names as string[]);
  const [batch, channels, window] = n.convState!.shape;
  const dims = { batch, channels, width: window + 1, xzCols: n.xz!.shape[1] };
  const x = new Float32Array(batch * channels);
  const state = new Float32Array(batch * channels * window);
  math.convStep({
    dims, xz: f32(n.xz!), convState: f32(n.convState!), weight: f32(n.weight!), bias: opt(n.bias), silu: Boolean(attrs.silu), x, state,
  });
  const xOut = output(backend, [batch, channels], n.xz!.dtype, x);
  if (attrs.inPlace) {
    overwrite(n.convState!, state);
    return [xOut];
  }
  return [xOut, output(backend, n.convState!.shape, n.convState!.dtype, state)];
};

/** state, x, xz, dbc, dtWeight, dtBias?, ALog, D? → y (x's dtype), state (f32; with attrs.inPlace written over state). */
const ssmStep: KernelFunc = (inputs, attrs, backend) => {
  const n = namedInputs(inputs, attrs.names as string[]);
  const [batch, channels, state] = n.state!.shape;
  const dims = { batch, channels, state, rank: n.dtWeight!.shape[1], xzCols: n.xz!.shape[1] };
  const y = new Float32Array(batch * channels);
  const stateOut = new Float32Array(batch * channels * state);
  math.ssmStep({
    dims, state: f32(n.state!), x: f32(n.x!), xz: f32(n.xz!), dbc: f32(n.dbc!), dtWeight: f32(n.dtWeight!), dtBias: opt(n.dtBias),
    ALog: f32(n.ALog!), D: opt(n.D), deltaSoftplus: Boolean(attrs.deltaSoftplus), y, stateOut,
  });
  const yOut = output(backend, n.x!.shape, n.x!.dtype, y);
  if (attrs.inPlace) {
    overwrite(n.state!, stateOut);
    return [yOut];
  }
  return [yOut, output(backend, n.state!.shape, 'f32', stateOut)];
};

export function decodeKernels(): Record<string, KernelFunc> {
  return { residualRmsNorm, convStep, ssmStep };
}
