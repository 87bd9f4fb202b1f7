import type { KernelFunc, Shape } from '@mamba-ts/tensor';
import { broadcastShapes, sizeOf } from '@mamba-ts/tensor';
import { broadcastOffsets, wasmKernel, type Call } from './call.js';

/** Element strides of a row-major (rows × cols) matrix read as its transpose or not: [row stride, col stride]. */
function strides(trans: boolean, rows: number, cols: number): [number, number] {
  // Logical element (i, j) of op(X), where X is stored (cols × rows) when transposed.
  return trans ? [1, rows] : [cols, 1];
}

/**
 * C = op(A)·op(B) through the blocked SIMD GEMM; float32 pointers; a: (M×K) or (K×M) when transA, b likewise.
 * C has row stride ldc; `accumulate` adds into C.
 */
export function gemm(call: Call, M: number, N: number, K: number, a: number, transA: boolean, b: number, transB: boolean, c: number, ldc: number, accumulate: boolean): void {
  const [sam, sak] = strides(transA, M, K);
  const [sbk, sbn] = strides(transB, K, N);
  call.k.gemm(M, N, K, a, sam, sak, b, sbk, sbn, c, ldc, accumulate, call.be.gemmScratch);
}

/** Batched matmul with broadcast batch axes; half inputs are widened to f32, accumulation is f32. */
const matmul = wasmKernel((call, [a, b], attrs) => {
  const transA = Boolean(attrs.transA);
  const transB = Boolean(attrs.transB);
  const [M, K] = transA ? [a.shape.at(-1)!, a.shape.at(-2)!] : [a.shape.at(-2)!, a.shape.at(-1)!];
  const N = transB ? b.shape.at(-2)! : b.shape.at(-1)!;
  const aBatch: Shape = a.shape.slice(0, -2);
  const bBatch: Shape = b.shape.slice(0, -2);
  const batchShape = broadcastShapes(aBatch, bBatch, 'matmul');
  const out = call.out([...batchShape, M, N], a.dtype);
  const ap = call.f32(a);
  const bp = call.f32(b);
  const aOff = broadcastOffsets(aBatch, batchShape, M * K);
  const bOff = broadcastOffsets(bBatch, batchShape, K * N);
  for (let p = 0; p < sizeOf(batchShape); p++) {
    gemm(call, M, N, K, ap + aOff[p] * 4, transA, bp + bOff[p] * 4, transB, out.ptr + p * M * N * 4, N, false);
  }
  return [out.info()];
});

export function matmulKernels(): Record<string, KernelFunc> {
  return { matmul };
}
