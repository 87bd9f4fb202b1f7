import { sizeOf, type DType, type TensorInfo } from '@mamba-ts/tensor';
import type { CudaKernel } from './basic.js';

/*
 * The decode-step kernels on cuda (native/kernels/decode.cu), with the contracts of
 * packages/tensor/src/backends/cpu/kernels-decode.ts: optional inputs named by attrs.names, same outputs and dtypes.
 * Inference only: there are no gradient kernels. With attrs.inPlace the new state is written over the input state (each
 * thread reads a state element before it writes it, so the kernels need no second buffer).
 */

function named(inputs: readonly TensorInfo[], names: readonly string[]): Record<string, TensorInfo | undefined> {
  const out: Record<string, TensorInfo | undefined> = {};
  names.forEach((n, i) => (out[n] = inputs[i]));
  return out;
}

const residualRmsNorm: CudaKernel = (inputs, attrs, b) => {
  const k = 'residualRmsNorm';
  const n = named(inputs, attrs.names as string[]);
  const residual = n.residual!;
  const cols = residual.shape[residual.shape.length - 1];
  const rows = cols === 0 ? 0 : sizeOf(residual.shape) / cols;
  const sum = b.output(residual.shape, residual.dtype, k);
  const normed = b.output(residual.shape, attrs.outDtype as DType, k);
  b.launch(k, k, [
    ...b.ref(residual, k), ...b.ref(n.update, k), ...b.ref(n.weight, k), ...b.ref(sum, k), ...b.ref(normed, k), rows, cols, attrs.eps as number,
  ]);
  return [sum, normed];
};

const convStep: CudaKernel = (inputs, attrs, b) => {
  const k = 'convStep';
  const n = named(inputs, attrs.names as string[]);
  const [batch, channels, window] = n.convState!.shape;
  const x = b.output([batch, channels], n.xz!.dtype, k);
  const state = attrs.inPlace ? n.convState! : b.output(n.convState!.shape, n.convState!.dtype, k);
  b.launch(k, k, [
    ...b.ref(n.xz, k), ...b.ref(n.convState, k), ...b.ref(n.weight, k), ...b.ref(n.bias, k), Boolean(attrs.silu),
    batch, channels, n.xz!.shape[1], window + 1, ...b.ref(x, k), ...b.ref(state, k),
  ]);
  return attrs.inPlace ? [x] : [x, state];
};

const ssmStep: CudaKernel = (inputs, attrs, b) => {
  const k = 'ssmStep';
  const n = named(inputs, attrs.names as string[]);
  const [batch, channels, stateSize] = n.state!.shape;
  const y = b.output(n.x!.shape, n.x!.dtype, k);
  const stateOut = attrs.inPlace ? n.state! : b.output(n.state!.shape, 'f32', k);
  const refs = (['state', 'x', 'xz', 'dbc', 'dtWeight', 'dtBias', 'ALog', 'D'] as const).flatMap((name) => b.ref(n[name], k));
  b.launch(k, k, [
    ...refs, Boolean(attrs.deltaSoftplus), batch, channels, stateSize, n.dtWeight!.shape[1], n.xz!.shape[1], ...b.ref(y, k), b.address(stateOut, k),
  ]);
  return attrs.inPlace ? [y] : [y, stateOut];
};

export function decodeKernels(): Record<string, CudaKernel> {
  return { residualRmsNorm, convStep, ssmStep };
}
