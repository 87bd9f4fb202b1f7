import { splitWithSlice, type KernelFunc, type TensorInfo } from '../../backend.js';
import type { DType } from '../../dtype.js';
import { broadcastShapes, sizeOf, stridesOf, type Shape } from '../../shape.js';
import { bufferOf, type CpuBackend } from './backend.js';
import { f32, i32, output, outputI32 } from './util.js';

type Unary = (x: number) => number;
type Binary = (a: number, b: number) => number;

const erf = (x: number): number => {
  // Abramowitz–Stegun 7.1.26 is too coarse for a reference; use a series / continued fraction split.
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz) for large |x|.
  let f = ax;
  let c = ax;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    d = ax + an * d;
    d = d === 0 ? 1e-300 : 1 / d;
    c = ax + an / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return Math.sign(x) * (1 - erfc);
};

const sigmoid: Unary = (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

export const UNARY: Record<string, Unary> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  abs: Math.abs,
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  sigmoid,
  silu: (x) => x * sigmoid(x),
  softplus: (x) => (x > 20 ? x : Math.log1p(Math.exp(x))),
  tanh: Math.tanh,
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  relu: (x) => (x > 0 ? x : 0),
  normalCdf: (x) => 0.5 * (1 + erf(x / Math.SQRT2)),
  step: (x) => (x > 0 ? 1 : 0),
  sign: Math.sign,
};

export const BINARY: Record<string, Binary> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  maximum: (a, b) => Math.max(a, b),
  minimum: (a, b) => Math.min(a, b),
  pow: (a, b) => Math.pow(a, b),
  greater: (a, b) => (a > b ? 1 : 0),
  equal: (a, b) => (a === b ? 1 : 0),
};

function unaryKernel(fn: Unary): KernelFunc {
  return ([x], _attrs, backend) => {
    const v = f32(x);
    const out = new Float32Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = fn(v[i]);
    return [output(backend, x.shape, x.dtype, out)];
  };
}

/** Index of each output element in an input of shape `inShape` broadcast to `outShape`. */
function broadcastIndex(inShape: Shape, outShape: Shape): Int32Array | null {
  const n = sizeOf(outShape);
  if (sizeOf(inShape) === n) return null;
  const rank = outShape.length;
  const inStrides = stridesOf(inShape);
  const strides = new Array<number>(rank).fill(0);
  for (let i = 0; i < inShape.length; i++) {
    strides[rank - inShape.length + i] = inShape[i] === 1 ? 0 : inStrides[i];
  }
  const idx = new Int32Array(n);
  const counter = new Array<number>(rank).fill(0);
  let off = 0;
  for (let i = 0; i < n; i++) {
    idx[i] = off;
    for (let d = rank - 1; d >= 0; d--) {
      counter[d]++;
      off += strides[d];
      if (counter[d] < outShape[d]) break;
      off -= strides[d] * outShape[d];
      counter[d] = 0;
    }
  }
  return idx;
}

function binaryKernel(name: string, fn: Binary): KernelFunc {
  return ([a, b], _attrs, backend) => {
    if (a.dtype !== b.dtype) throw new Error(`${name}: dtypes differ (${a.dtype} and ${b.dtype}); cast one input first.`);
    const shape = broadcastShapes(a.shape, b.shape, name);
    const va = f32(a);
    const vb = f32(b);
    const ia = broadcastIndex(a.shape, shape);
    const ib = broadcastIndex(b.shape, shape);
    const out = new Float32Array(sizeOf(shape));
    for (let i = 0; i < out.length; i++) out[i] = fn(va[ia ? ia[i] : i], vb[ib ? ib[i] : i]);
    return [output(backend, shape, a.dtype, out)];
  };
}

const fill: KernelFunc = (_inputs, attrs, backend) => {
  const shape = attrs.shape as Shape;
  const dtype = attrs.dtype as DType;
  const out = new Float32Array(sizeOf(shape)).fill(attrs.value as number);
  return [output(backend, shape, dtype, out)];
};

const cast: KernelFunc = ([x], attrs, backend) => {
  const dtype = attrs.dtype as DType;
  if (x.dtype === 'i32' && dtype === 'i32') return [outputI32(backend, x.shape, i32(x, 'cast').slice())];
  return [output(backend, x.shape, dtype, f32(x).slice())];
};

/** y = x·scale + offset, in the input's dtype. */
const affine: KernelFunc = ([x], attrs, backend) => {
  const scale = attrs.scale as number;
  const offset = attrs.offset as number;
  const v = f32(x);
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i] * scale + offset;
  return [output(backend, x.shape, x.dtype, out)];
};

/** Splits a shape into (outer, reduced, inner) around a contiguous run of axes. */
function reductionLoop(x: TensorInfo, axes: readonly number[]): { outer: number; red: number; inner: number; outShape: number[] } {
  const sorted = [...axes].sort((p, q) => p - q);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] !== sorted[i - 1] + 1) throw new Error('reduction: axes must be contiguous; transpose first.');
  }
  const first = sorted[0];
  const last = sorted[sorted.length - 1];
  const outer = sizeOf(x.shape.slice(0, first));
  const red = sizeOf(x.shape.slice(first, last + 1));
  const inner = sizeOf(x.shape.slice(last + 1));
  const outShape = x.shape.map((d, i) => (i >= first && i <= last ? 1 : d));
  return { outer, red, inner, outShape };
}

function reduceKernel(kind: 'sum' | 'max' | 'min'): KernelFunc {
  return ([x], attrs, backend) => {
    const axes = attrs.axes as number[];
    const v = f32(x);
    const { outer, red, inner, outShape } = reductionLoop(x, axes);
    const out = new Float32Array(outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let acc = kind === 'sum' ? 0 : kind === 'max' ? -Infinity : Infinity;
        for (let r = 0; r < red; r++) {
          const val = v[(o * red + r) * inner + i];
          if (kind === 'sum') acc += val;
          else if (kind === 'max') acc = val > acc || Number.isNaN(val) ? val : acc;
          else acc = val < acc || Number.isNaN(val) ? val : acc;
        }
        out[o * inner + i] = acc;
      }
    }
    const shape = attrs.keepDims ? outShape : outShape.filter((_, i) => !axes.includes(i));
    return [output(backend, shape, x.dtype, out)];
  };
}

const argmax: KernelFunc = ([x], _attrs, backend) => {
  const v = f32(x);
  const cols = x.shape[x.shape.length - 1];
  const rows = v.length / cols;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (v[r * cols + c] > v[r * cols + best]) best = c;
    out[r] = best;
  }
  return [outputI32(backend, x.shape.slice(0, -1), out)];
};

/**
 * Batched matmul: a (..., M, K) · b (..., K, N) with optional transposes of the last two axes, batch dims
 * broadcast. Products accumulate in float64 whatever the input dtype; the result has the input dtype.
 */
const matmul: KernelFunc = ([a, b], attrs, backend) => {
  const transA = Boolean(attrs.transA);
  const transB = Boolean(attrs.transB);
  const [M, K] = transA ? [a.shape.at(-1)!, a.shape.at(-2)!] : [a.shape.at(-2)!, a.shape.at(-1)!];
  const N = transB ? b.shape.at(-2)! : b.shape.at(-1)!;
  const batchShape = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'matmul');
  const batch = sizeOf(batchShape);
  const ia = broadcastIndex(a.shape.slice(0, -2), batchShape);
  const ib = broadcastIndex(b.shape.slice(0, -2), batchShape);
  const va = f32(a);
  const vb = f32(b);
  const out = new Float32Array(batch * M * N);
  const row = new Float64Array(N);
  for (let p = 0; p < batch; p++) {
    const oa = (ia ? ia[p] : p) * M * K;
    const ob = (ib ? ib[p] : p) * K * N;
    for (let m = 0; m < M; m++) {
      row.fill(0);
      for (let k = 0; k < K; k++) {
        const av = va[oa + (transA ? k * M + m : m * K + k)];
        if (av === 0) continue;
        if (transB) for (let n = 0; n < N; n++) row[n] += av * vb[ob + n * K + k];
        else for (let n = 0, base = ob + k * N; n < N; n++) row[n] += av * vb[base + n];
      }
      for (let n = 0; n < N; n++) out[(p * M + m) * N + n] = row[n];
    }
  }
  return [output(backend, [...batchShape, M, N], a.dtype, out)];
};

/**
 * Walks the elements of `shape` in row-major order with strided offsets into another array:
 * `visit(i, offset)` with offset = base + Σ idx_d · strides_d.
 */
function forEachStrided(shape: Shape, strides: readonly number[], base: number, visit: (i: number, offset: number) => void): void {
  const rank = shape.length;
  const n = sizeOf(shape);
  const counter = new Array<number>(rank).fill(0);
  let off = base;
  for (let i = 0; i < n; i++) {
    visit(i, off);
    for (let d = rank - 1; d >= 0; d--) {
      counter[d]++;
      off += strides[d];
      if (counter[d] < shape[d]) break;
      off -= strides[d] * shape[d];
      counter[d] = 0;
    }
  }
}

/** dst[i] = src[strided offset of i] (slice, transpose). */
function gatherStrided(src: ArrayLike<number>, outShape: Shape, strides: readonly number[], base: number, dst: { [i: number]: number }): void {
  forEachStrided(outShape, strides, base, (i, off) => (dst[i] = src[off]));
}

function rawCopyTarget(x: TensorInfo, n: number) {
  const src = bufferOf(x.dataId);
  return { src, dst: new (src.constructor as new (n: number) => typeof src)(n) };
}

const slice: KernelFunc = ([x], attrs, backend) => {
  const begin = attrs.begin as number[];
  const size = attrs.size as number[];
  const strides = stridesOf(x.shape);
  const base = begin.reduce((acc, b, i) => acc + b * strides[i], 0);
  const { src, dst } = rawCopyTarget(x, sizeOf(size));
  gatherStrided(src, size, strides, base, dst);
  return [{ dataId: (backend as CpuBackend).adopt(dst), shape: [...size], dtype: x.dtype }];
};

/** The adjoint of slice: a zero tensor of `shape` with `x` written at `begin`. */
const padSlice: KernelFunc = ([x], attrs, backend) => {
  const shape = attrs.shape as number[];
  const begin = attrs.begin as number[];
  const strides = stridesOf(shape);
  const base = begin.reduce((acc, b, i) => acc + b * strides[i], 0);
  const src = bufferOf(x.dataId);
  const dst = new (src.constructor as new (n: number) => typeof src)(sizeOf(shape));
  forEachStrided(x.shape, strides, base, (i, off) => (dst[off] = src[i]));
  return [{ dataId: (backend as CpuBackend).adopt(dst), shape: [...shape], dtype: x.dtype }];
};

const transpose: KernelFunc = ([x], attrs, backend) => {
  const perm = attrs.perm as number[];
  const inStrides = stridesOf(x.shape);
  const outShape = perm.map((p) => x.shape[p]);
  const { src, dst } = rawCopyTarget(x, sizeOf(outShape));
  gatherStrided(src, outShape, perm.map((p) => inStrides[p]), 0, dst);
  return [{ dataId: (backend as CpuBackend).adopt(dst), shape: outShape, dtype: x.dtype }];
};

const concat: KernelFunc = (inputs, attrs, backend) => {
  const axis = attrs.axis as number;
  const outShape = [...inputs[0].shape];
  outShape[axis] = inputs.reduce((acc, t) => acc + t.shape[axis], 0);
  const outer = sizeOf(outShape.slice(0, axis));
  const inner = sizeOf(outShape.slice(axis + 1));
  const { dst } = rawCopyTarget(inputs[0], sizeOf(outShape));
  const rowOut = outShape[axis] * inner;
  let col = 0;
  for (const t of inputs) {
    const src = bufferOf(t.dataId);
    const w = t.shape[axis] * inner;
    for (let o = 0; o < outer; o++) dst.set(src.subarray(o * w, (o + 1) * w) as never, o * rowOut + col);
    col += w;
  }
  return [{ dataId: (backend as CpuBackend).adopt(dst), shape: outShape, dtype: inputs[0].dtype }];
};

/** Σ x² over all inputs, accumulated in float64. */
const sumSquares: KernelFunc = (inputs, _attrs, backend) => {
  let total = 0;
  for (const x of inputs) for (const value of f32(x)) total += value * value;
  return [output(backend, [], 'f32', Float32Array.of(total))];
};

/** Softmax over the last axis (stable). */
const softmax: KernelFunc = ([x], _attrs, backend) => {
  const v = f32(x);
  const cols = x.shape.at(-1)!;
  const out = new Float32Array(v.length);
  for (let r = 0; r < v.length / cols; r++) {
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, v[r * cols + c]);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(v[r * cols + c] - max);
    for (let c = 0; c < cols; c++) out[r * cols + c] = Math.exp(v[r * cols + c] - max) / sum;
  }
  return [output(backend, x.shape, x.dtype, out)];
};

export function basicKernels(): Record<string, KernelFunc> {
  const table: Record<string, KernelFunc> = { fill, cast, affine, argmax, matmul, slice, split: splitWithSlice(slice), padSlice, transpose, concat, softmax, sumSquares };
  for (const [name, fn] of Object.entries(UNARY)) table[name] = unaryKernel(fn);
  for (const [name, fn] of Object.entries(BINARY)) table[name] = binaryKernel(name, fn);
  table.sum = reduceKernel('sum');
  table.max = reduceKernel('max');
  table.min = reduceKernel('min');
  return table;
}

