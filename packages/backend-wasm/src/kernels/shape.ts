import type { KernelFunc, Shape, TensorInfo } from '@mamba-ts/tensor';
import { bytesPerElement, sizeOf, splitWithSlice } from '@mamba-ts/tensor';
import { stridesOf, wasmKernel, type Call } from './call.js';

/** Copies a block of `shape` elements between strided layouts (raw bytes, any dtype). */
function stridedCopy(call: Call, src: number, srcStrides: readonly number[], dst: number, dstStrides: readonly number[], shape: Shape, elemBytes: number): void {
  if (sizeOf(shape) === 0) return;
  const params = call.params([...shape, ...srcStrides, ...dstStrides, ...shape.map(() => 0)]);
  call.k.stridedCopy(src, dst, elemBytes, shape.length, params);
}

const slice = wasmKernel((call, [x], attrs) => {
  const begin = attrs.begin as number[];
  const size = attrs.size as number[];
  const eb = bytesPerElement(x.dtype);
  const inStrides = stridesOf(x.shape);
  const base = begin.reduce((acc, b, i) => acc + b * inStrides[i], 0);
  const out = call.raw(size, x.dtype);
  stridedCopy(call, call.ptr(x) + base * eb, inStrides, out.ptr, stridesOf(size), size, eb);
  return [out.info];
});

const padSlice = wasmKernel((call, [x], attrs) => {
  const shape = attrs.shape as number[];
  const begin = attrs.begin as number[];
  const eb = bytesPerElement(x.dtype);
  const outStrides = stridesOf(shape);
  const base = begin.reduce((acc, b, i) => acc + b * outStrides[i], 0);
  const out = call.raw(shape, x.dtype, true);
  stridedCopy(call, call.ptr(x), stridesOf(x.shape), out.ptr + base * eb, outStrides, x.shape, eb);
  return [out.info];
});

const transpose = wasmKernel((call, [x], attrs) => {
  const perm = attrs.perm as number[];
  const inStrides = stridesOf(x.shape);
  const outShape = perm.map((p) => x.shape[p]);
  const out = call.raw(outShape, x.dtype);
  stridedCopy(call, call.ptr(x), perm.map((p) => inStrides[p]), out.ptr, stridesOf(outShape), outShape, bytesPerElement(x.dtype));
  return [out.info];
});

const concat = wasmKernel((call, inputs, attrs) => {
  const axis = attrs.axis as number;
  const first = inputs[0];
  const outShape = [...first.shape];
  outShape[axis] = inputs.reduce((acc, t) => acc + t.shape[axis], 0);
  const eb = bytesPerElement(first.dtype);
  const outStrides = stridesOf(outShape);
  const out = call.raw(outShape, first.dtype);
  let offset = 0;
  for (const t of inputs as TensorInfo[]) {
    stridedCopy(call, call.ptr(t), stridesOf(t.shape), out.ptr + offset * outStrides[axis] * eb, outStrides, t.shape, eb);
    offset += t.shape[axis];
  }
  return [out.info];
});

export function shapeKernels(): Record<string, KernelFunc> {
  return { slice, split: splitWithSlice(slice), padSlice, transpose, concat };
}
