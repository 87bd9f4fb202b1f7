import { broadcastShapes, sizeOf, splitWithSlice, stridesOf, type DType, type KernelFunc, type Shape, type TensorInfo } from '@mamba-ts/tensor';
import { DTYPE_CODE, type CudaBackend } from '../backend.js';

/*
 * The cpu backend's basic kernels on cuda: same names, inputs, attrs, outputs and dtypes
 * (packages/tensor/src/backends/cpu/kernels-basic.ts). Each packs its arguments for one native op.
 */

type CudaKernel = (inputs: readonly TensorInfo[], attrs: Record<string, unknown>, backend: CudaBackend) => TensorInfo[];

/** The native op codes: order of the enums in native/kernels/elementwise.cu. */
export const UNARY_OPS = [
  'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'square', 'reciprocal', 'sigmoid', 'silu', 'softplus', 'tanh', 'gelu',
  'relu', 'normalCdf', 'step', 'sign',
] as const;
export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow', 'greater', 'equal'] as const;

const fill: CudaKernel = (_inputs, attrs, backend) => {
  const shape = attrs.shape as Shape;
  const dtype = attrs.dtype as DType;
  const out = backend.output(shape, dtype, 'fill');
  backend.launch('fill', 'fill', [...backend.ref(out, 'fill'), sizeOf(shape), attrs.value as number]);
  return [out];
};

const cast: CudaKernel = ([x], attrs, backend) => {
  const y = backend.output(x.shape, attrs.dtype as DType, 'cast');
  backend.launch('cast', 'cast', [...backend.ref(x, 'cast'), ...backend.ref(y, 'cast'), sizeOf(x.shape)]);
  return [y];
};

const affine: CudaKernel = ([x], attrs, backend) => {
  const y = backend.output(x.shape, x.dtype, 'affine');
  const args = [...backend.ref(x, 'affine'), ...backend.ref(y, 'affine'), sizeOf(x.shape), attrs.scale as number, attrs.offset as number];
  backend.launch('affine', 'affine', args);
  return [y];
};

function unaryKernel(name: string, op: number): CudaKernel {
  return ([x], _attrs, backend) => {
    const y = backend.output(x.shape, x.dtype, name);
    backend.launch('unary', name, [op, ...backend.ref(x, name), ...backend.ref(y, name), sizeOf(x.shape)]);
    return [y];
  };
}

/** Per output axis: (size, stride in a, stride in b), 0 strides along broadcast axes. */
function broadcastWalk(a: Shape, b: Shape, out: Shape): number[] {
  const walk: number[] = [];
  const sa = stridesOf(a);
  const sb = stridesOf(b);
  const rank = out.length;
  for (let d = 0; d < rank; d++) {
    const ia = d - (rank - a.length);
    const ib = d - (rank - b.length);
    const strideA = ia >= 0 && a[ia] !== 1 ? sa[ia] : 0;
    const strideB = ib >= 0 && b[ib] !== 1 ? sb[ib] : 0;
    walk.push(out[d], strideA, strideB);
  }
  return walk;
}

function binaryKernel(name: string, op: number): CudaKernel {
  return ([a, b], _attrs, backend) => {
    if (a.dtype !== b.dtype) throw new Error(`${name}: dtypes differ (${a.dtype} and ${b.dtype}); cast one input first.`);
    const shape = broadcastShapes(a.shape, b.shape, name);
    const y = backend.output(shape, a.dtype, name);
    const n = sizeOf(shape);
    const same = sizeOf(a.shape) === n && sizeOf(b.shape) === n;
    const walk = same ? [0] : [shape.length, ...broadcastWalk(a.shape, b.shape, shape)];
    backend.launch('binary', name, [op, ...backend.ref(a, name), ...backend.ref(b, name), ...backend.ref(y, name), n, ...walk]);
    return [y];
  };
}

/** Splits a shape into (outer, reduced, inner) around a contiguous run of axes (as the cpu reference). */
function reductionLoop(x: TensorInfo, axes: readonly number[]) {
  const sorted = [...axes].sort((p, q) => p - q);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] !== sorted[i - 1] + 1) throw new Error('reduction: axes must be contiguous; transpose first.');
  }
  const first = sorted[0];
  const last = sorted[sorted.length - 1];
  return {
    outer: sizeOf(x.shape.slice(0, first)),
    red: sizeOf(x.shape.slice(first, last + 1)),
    inner: sizeOf(x.shape.slice(last + 1)),
    outShape: x.shape.map((d, i) => (i >= first && i <= last ? 1 : d)),
  };
}

function reduceKernel(kind: 'sum' | 'max' | 'min'): CudaKernel {
  const code = { sum: 0, max: 1, min: 2 }[kind];
  return ([x], attrs, backend) => {
    const axes = attrs.axes as number[];
    const { outer, red, inner, outShape } = reductionLoop(x, axes);
    const shape = attrs.keepDims ? outShape : outShape.filter((_, i) => !axes.includes(i));
    const y = backend.output(shape, x.dtype, kind);
    backend.launch('reduce', kind, [code, ...backend.ref(x, kind), ...backend.ref(y, kind), outer, red, inner]);
    return [y];
  };
}

const argmax: CudaKernel = ([x], _attrs, backend) => {
  const cols = x.shape[x.shape.length - 1];
  const out = backend.output(x.shape.slice(0, -1), 'i32', 'argmax');
  backend.launch('argmax', 'argmax', [...backend.ref(x, 'argmax'), backend.address(out, 'argmax'), sizeOf(x.shape) / cols, cols]);
  return [out];
};

const softmax: CudaKernel = ([x], _attrs, backend) => {
  const cols = x.shape[x.shape.length - 1];
  const y = backend.output(x.shape, x.dtype, 'softmax');
  const rows = cols === 0 ? 0 : sizeOf(x.shape) / cols;
  backend.launch('softmax', 'softmax', [...backend.ref(x, 'softmax'), ...backend.ref(y, 'softmax'), rows, cols]);
  return [y];
};

/** dst[i] = src[base + Σ idx_d·stride_d] over `shape` (row-major walk). */
function gather(backend: CudaBackend, label: string, src: TensorInfo, dst: TensorInfo, shape: Shape, strides: readonly number[], base: number): void {
  const walk = shape.flatMap((s, d) => [s, strides[d]]);
  backend.launch('gather', label, [
    backend.address(src, label), backend.address(dst, label), DTYPE_CODE[src.dtype], sizeOf(shape), shape.length, ...walk, base,
  ]);
}

const slice: CudaKernel = ([x], attrs, backend) => {
  const begin = attrs.begin as number[];
  const size = attrs.size as number[];
  const strides = stridesOf(x.shape);
  const base = begin.reduce((acc, b, i) => acc + b * strides[i], 0);
  const out = backend.output(size, x.dtype, 'slice');
  gather(backend, 'slice', x, out, size, strides, base);
  return [out];
};

/** The adjoint of slice: zeros of `shape` with x written at `begin`. */
const padSlice: CudaKernel = ([x], attrs, backend) => {
  const shape = attrs.shape as number[];
  const begin = attrs.begin as number[];
  const strides = stridesOf(shape);
  const base = begin.reduce((acc, b, i) => acc + b * strides[i], 0);
  const out = backend.output(shape, x.dtype, 'padSlice');
  const walk = x.shape.flatMap((s, d) => [s, strides[d]]);
  backend.launch('padSlice', 'padSlice', [
    backend.address(x, 'padSlice'), backend.address(out, 'padSlice'), DTYPE_CODE[x.dtype], sizeOf(x.shape), sizeOf(shape),
    x.shape.length, ...walk, base,
  ]);
  return [out];
};

const transpose: CudaKernel = ([x], attrs, backend) => {
  const perm = attrs.perm as number[];
  const inStrides = stridesOf(x.shape);
  const outShape = perm.map((p) => x.shape[p]);
  const out = backend.output(outShape, x.dtype, 'transpose');
  gather(backend, 'transpose', x, out, outShape, perm.map((p) => inStrides[p]), 0);
  return [out];
};

const concat: CudaKernel = (inputs, attrs, backend) => {
  const axis = attrs.axis as number;
  const outShape = [...inputs[0].shape];
  outShape[axis] = inputs.reduce((acc, t) => acc + t.shape[axis], 0);
  const outer = sizeOf(outShape.slice(0, axis));
  const inner = sizeOf(outShape.slice(axis + 1));
  const out = backend.output(outShape, inputs[0].dtype, 'concat');
  const parts: number[] = [];
  let column = 0;
  for (const t of inputs) {
    const width = t.shape[axis] * inner;
    parts.push(backend.address(t, 'concat'), width, column);
    column += width;
  }
  backend.launch('concat', 'concat', [backend.address(out, 'concat'), DTYPE_CODE[out.dtype], outer, outShape[axis] * inner, inputs.length, ...parts]);
  return [out];
};

/**
 * Batched matmul a (..., M, K) · b (..., K, N) with transposes of the last two axes and broadcast batch axes, f32
 * accumulation (cuBLASLt). A weight shared by the whole batch is folded into M (one GEMM); an operand with batch 1
 * is broadcast with stride 0; a partially broadcast operand is expanded first.
 */
const matmul: CudaKernel = ([a, b], attrs, backend) => {
  const transA = Boolean(attrs.transA);
  const transB = Boolean(attrs.transB);
  if (a.dtype !== b.dtype) throw new Error(`matmul: dtypes differ (${a.dtype} and ${b.dtype}); cast one input first.`);
  if (a.dtype === 'i32') throw new Error('matmul: i32 inputs are not supported on cuda; cast them to f32 first.');
  const [M, K] = transA ? [a.shape.at(-1)!, a.shape.at(-2)!] : [a.shape.at(-2)!, a.shape.at(-1)!];
  const N = transB ? b.shape.at(-2)! : b.shape.at(-1)!;
  const aBatchShape = a.shape.slice(0, -2);
  const bBatchShape = b.shape.slice(0, -2);
  const batchShape = broadcastShapes(aBatchShape, bBatchShape, 'matmul');
  const batch = sizeOf(batchShape);
  const out = backend.output([...batchShape, M, N], a.dtype, 'matmul');
  const temporaries: TensorInfo[] = [];
  const batched = (x: TensorInfo, xBatch: Shape): { x: TensorInfo; stride: number } => {
    const matrix = x.shape.at(-2)! * x.shape.at(-1)!;
    if (sizeOf(xBatch) === batch) return { x, stride: matrix };
    if (sizeOf(xBatch) === 1) return { x, stride: 0 };
    const expanded = expandBatch(backend, x, batchShape);
    temporaries.push(expanded);
    return { x: expanded, stride: matrix };
  };
  const dtype = DTYPE_CODE[a.dtype];
  if (sizeOf(bBatchShape) === 1 && !transA && sizeOf(aBatchShape) === batch) {
    backend.launch('matmul', 'matmul', [
      backend.address(a, 'matmul'), backend.address(b, 'matmul'), backend.address(out, 'matmul'), dtype, transA, transB,
      batch * M, N, K, 1, 0, 0, 0,
    ]);
  } else {
    const A = batched(a, aBatchShape);
    const B = batched(b, bBatchShape);
    backend.launch('matmul', 'matmul', [
      backend.address(A.x, 'matmul'), backend.address(B.x, 'matmul'), backend.address(out, 'matmul'), dtype, transA, transB,
      M, N, K, batch, A.stride, B.stride, M * N,
    ]);
  }
  for (const t of temporaries) backend.release(t);
  return [out];
};

/** A copy of x (..., r, c) with its batch axes broadcast to `batchShape`. */
function expandBatch(backend: CudaBackend, x: TensorInfo, batchShape: Shape): TensorInfo {
  const matrix = x.shape.slice(-2);
  const shape = [...batchShape, ...matrix];
  const xBatch = x.shape.slice(0, -2);
  const xStrides = stridesOf(x.shape);
  const strides = shape.map((_, d) => {
    if (d >= batchShape.length) return xStrides[x.shape.length - (shape.length - d)];
    const ix = d - (batchShape.length - xBatch.length);
    return ix >= 0 && xBatch[ix] !== 1 ? xStrides[ix] : 0;
  });
  const out = backend.output(shape, x.dtype, 'matmul (broadcast)');
  gather(backend, 'matmul', x, out, shape, strides, 0);
  return out;
}

export function basicKernels(): Record<string, CudaKernel> {
  const table: Record<string, CudaKernel> = {
    fill, cast, affine, argmax, matmul, slice, split: splitWithSlice(slice as KernelFunc) as CudaKernel, padSlice, transpose, concat, softmax,
  };
  UNARY_OPS.forEach((name, op) => (table[name] = unaryKernel(name, op)));
  BINARY_OPS.forEach((name, op) => (table[name] = binaryKernel(name, op)));
  table.sum = reduceKernel('sum');
  table.max = reduceKernel('max');
  table.min = reduceKernel('min');
  return table;
}

export type { CudaKernel, KernelFunc };
