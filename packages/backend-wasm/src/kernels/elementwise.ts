import type { DType, KernelFunc, Shape, TensorInfo } from '@mamba-ts/tensor';
import { broadcastShapes, bytesPerElement, encodeHalf, sizeOf } from '@mamba-ts/tensor';
import { DTYPE_KIND } from '../backend.js';
import { stridesOf, wasmKernel, type Call } from './call.js';

// Op codes shared with assembly/elementwise.ts.
const UNARY_OPS = [
  'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'square', 'reciprocal', 'sigmoid', 'silu', 'softplus', 'tanh', 'gelu',
  'relu', 'normalCdf', 'step', 'sign',
] as const;
const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow', 'greater', 'equal'] as const;

function unaryKernel(code: number): KernelFunc {
  return wasmKernel((call, [x]) => {
    const out = call.out(x.shape, x.dtype);
    call.k.unary(code, call.f32(x), out.ptr, sizeOf(x.shape));
    return [out.info()];
  });
}

/**
 * Broadcast loops as at most 4 axes: per output axis the element strides of a and b (0 where broadcast), with
 * size-1 axes dropped and adjacent axes merged where both operands stay contiguous across them.
 */
export function broadcastPlan(aShape: Shape, bShape: Shape, outShape: Shape): { shape: number[]; sa: number[]; sb: number[] } {
  const rank = outShape.length;
  const inStrides = (s: Shape): number[] => {
    const st = stridesOf(s);
    return outShape.map((_, d) => {
      const i = d - (rank - s.length);
      return i < 0 || s[i] === 1 ? 0 : st[i];
    });
  };
  const a = inStrides(aShape);
  const b = inStrides(bShape);
  const shape: number[] = [];
  const sa: number[] = [];
  const sb: number[] = [];
  for (let d = 0; d < rank; d++) {
    if (outShape[d] === 1) continue;
    const last = shape.length - 1;
    if (last >= 0 && sa[last] === a[d] * outShape[d] && sb[last] === b[d] * outShape[d]) {
      shape[last] *= outShape[d];
      sa[last] = a[d];
      sb[last] = b[d];
    } else {
      shape.push(outShape[d]);
      sa.push(a[d]);
      sb.push(b[d]);
    }
  }
  return { shape, sa, sb };
}

function binaryKernel(name: string, code: number): KernelFunc {
  return wasmKernel((call, [a, b]) => {
    if (a.dtype !== b.dtype) throw new Error(`${name}: dtypes differ (${a.dtype} and ${b.dtype}); cast one input first.`);
    const shape = broadcastShapes(a.shape, b.shape, name);
    const n = sizeOf(shape);
    const ints = a.dtype === 'i32';
    let yp: number;
    let finish: () => TensorInfo;
    if (ints) {
      const raw = call.raw(shape, 'i32');
      [yp, finish] = [raw.ptr, () => raw.info];
    } else {
      const out = call.out(shape, a.dtype);
      [yp, finish] = [out.ptr, () => out.info()];
    }
    if (n > 0) {
      const ap = ints ? call.ptr(a) : call.f32(a);
      const bp = ints ? call.ptr(b) : call.f32(b);
      runBroadcast(call, ints, code, ap, bp, yp, broadcastPlan(a.shape, b.shape, shape));
    }
    return [finish()];
  });
}

/** Runs the 4-axis wasm loop, iterating in JS over any leading axes beyond 4. */
function runBroadcast(call: Call, ints: boolean, code: number, ap: number, bp: number, yp: number, plan: { shape: number[]; sa: number[]; sb: number[] }): void {
  const { shape, sa, sb } = plan;
  while (shape.length < 4) (shape.unshift(1), sa.unshift(0), sb.unshift(0));
  const lead = shape.length - 4;
  const leadShape = shape.slice(0, lead);
  const block = sizeOf(shape.slice(lead));
  const params = call.params([...shape.slice(lead), ...sa.slice(lead), ...sb.slice(lead)]);
  const counter = new Array<number>(lead).fill(0);
  for (let p = 0, count = sizeOf(leadShape); p < count; p++) {
    const ao = counter.reduce((acc, c, d) => acc + c * sa[d], 0);
    const bo = counter.reduce((acc, c, d) => acc + c * sb[d], 0);
    const fn = ints ? call.k.binaryI32 : call.k.binary;
    fn(code, ap + ao * 4, bp + bo * 4, yp + p * block * 4, params);
    for (let d = lead - 1; d >= 0; d--) {
      if (++counter[d] < leadShape[d]) break;
      counter[d] = 0;
    }
  }
}

const affine = wasmKernel((call, [x], attrs) => {
  const out = call.out(x.shape, x.dtype);
  call.k.affine(call.f32(x), out.ptr, sizeOf(x.shape), attrs.scale as number, attrs.offset as number);
  return [out.info()];
});

const fill = wasmKernel((call, _inputs, attrs) => {
  const shape = attrs.shape as number[];
  const dtype = attrs.dtype as DType;
  const value = attrs.value as number;
  const n = sizeOf(shape);
  const out = call.raw(shape, dtype);
  if (dtype === 'f32') call.k.fillF32(out.ptr, n, value);
  else if (dtype === 'i32') call.be.i32.fill(Math.trunc(value), out.ptr >> 2, (out.ptr >> 2) + n);
  else call.be.u16.fill(encodeHalf([value], dtype)[0], out.ptr >> 1, (out.ptr >> 1) + n);
  return [out.info];
});

const cast = wasmKernel((call, [x], attrs) => {
  const dtype = attrs.dtype as DType;
  const n = sizeOf(x.shape);
  const out = call.raw(x.shape, dtype);
  if (x.dtype === dtype) call.be.u8.copyWithin(out.ptr, call.ptr(x), call.ptr(x) + n * bytesPerElement(dtype));
  else if (x.dtype === 'f32') call.k.fromF32(DTYPE_KIND[dtype], call.ptr(x), out.ptr, n);
  else if (dtype === 'f32') call.k.toF32(DTYPE_KIND[x.dtype], call.ptr(x), out.ptr, n);
  else call.k.fromF32(DTYPE_KIND[dtype], call.f32(x), out.ptr, n);
  return [out.info];
});

/** AdamW on copies of param, m, v (tensors are immutable); param may be a half type, m and v are f32. */
const adamw = wasmKernel((call, [param, grad, m, v], attrs) => {
  const n = sizeOf(param.shape);
  const p = call.out(param.shape, param.dtype);
  const mo = call.raw(m.shape, 'f32');
  const vo = call.raw(v.shape, 'f32');
  if (param.dtype === 'f32') call.be.u8.copyWithin(p.ptr, call.ptr(param), call.ptr(param) + n * 4);
  else call.k.toF32(DTYPE_KIND[param.dtype], call.ptr(param), p.ptr, n);
  const mp = call.f32(m);
  const vp = call.f32(v);
  call.be.u8.copyWithin(mo.ptr, mp, mp + n * 4);
  call.be.u8.copyWithin(vo.ptr, vp, vp + n * 4);
  const { lr, beta1, beta2, eps, weightDecay, step, gradScale = 1 } = attrs as Record<string, number>;
  if (!Number.isInteger(step) || step < 1) throw new Error(`adamw: step must be an integer ≥ 1 (the first update is step 1), got ${step}.`);
  const stepSize = lr / (1 - beta1 ** step);
  const rsqrtBc2 = 1 / Math.sqrt(1 - beta2 ** step);
  let g = call.f32(grad);
  if (gradScale !== 1) {
    const scaled = call.tempF32(n);
    call.k.affine(g, scaled, n, gradScale, 0);
    g = scaled;
  }
  call.k.adamw(p.ptr, g, mo.ptr, vo.ptr, n, lr, beta1, beta2, eps, weightDecay, stepSize, rsqrtBc2);
  return [p.info(), mo.info, vo.info];
});

/** Σ x² over all inputs (float64 accumulation on the host side of the wasm memory). */
const sumSquares = wasmKernel((call, inputs) => {
  let total = 0;
  for (const x of inputs) {
    const start = call.f32(x) >> 2;
    const values = call.be.f32.subarray(start, start + sizeOf(x.shape));
    for (const value of values) total += value * value;
  }
  const out = call.raw([], 'f32');
  call.be.f32[out.ptr >> 2] = total;
  return [out.info];
});

export function elementwiseKernels(): Record<string, KernelFunc> {
  const table: Record<string, KernelFunc> = { affine, fill, cast, adamw, sumSquares };
  UNARY_OPS.forEach((name, code) => (table[name] = unaryKernel(code)));
  BINARY_OPS.forEach((name, code) => (table[name] = binaryKernel(name, code)));
  return table;
}

