// The wasm module's exports: raw-pointer kernels over the one exported memory. The host (src/) owns allocation.
export { toF32, fromF32 } from './convert';
export { unary, binary, binaryI32, affine, fillF32, adamw } from './elementwise';
export { reduce, argmax, softmax, rowMax, rowSumExp } from './reduce';
export { stridedCopy, gatherRows, scatterAddRows } from './copy';
export { gemm, gemmScratchBytes } from './matmul';
export { rmsNormForward, rmsNormBackward, layerNormForward, layerNormBackward } from './norm';
export { transpose2d, convPad, convUnpad, convForward, convBackward } from './conv';
export { scanForward, scanBackward } from './scan';
export { lseAbsorb, softmaxXentGrad } from './losses';

/** First byte the host may use: everything below holds the module's static data. */
export function heapBase(): usize {
  return (__heap_base + 15) & ~15;
}
