import { assertDType, type DType, type TensorData, isHalf, matchesDType } from '../dtype.js';
import { engine, type GradFunc, type GradSaves, type GradSavesRule } from '../engine.js';
import { encodeHalf } from '../half.js';
import { assertValidShape, formatShape, sizeOf, type Shape } from '../shape.js';
import type { Tensor } from '../tensor.js';

export function run(kernel: string, inputs: readonly Tensor[], attrs: Record<string, unknown> = {}): Tensor {
  return engine().runKernel(kernel, inputs, attrs)[0];
}

export function runMulti(kernel: string, inputs: readonly Tensor[], attrs: Record<string, unknown> = {}): Tensor[] {
  return engine().runKernel(kernel, inputs, attrs);
}

/** Registers a kernel's gradient and which of its tensors' values the gradient reads (default: all). */
export function defineGrad(kernel: string, fn: GradFunc, saves?: GradSavesRule): void {
  engine().registerGradient(kernel, fn, saves);
}

/** For gradients that read no values, only shapes and dtypes. */
export const SAVES_NOTHING: GradSaves = { inputs: [], outputs: [] };
/** For gradients that read only the output (y = f(x) with f' a function of y). */
export const SAVES_OUTPUT: GradSaves = { inputs: [], outputs: 'all' };
/** For gradients that read only the inputs. */
export const SAVES_INPUTS: GradSaves = { inputs: 'all', outputs: [] };

/**
 * Makes a tensor from values on the active backend. Float values given for f16/bf16 are rounded to nearest even;
 * a Uint16Array given for f16/bf16 is taken as raw bits.
 */
export function tensor(values: ArrayLike<number> | TensorData, shape?: Shape, dtype: DType = 'f32'): Tensor {
  assertDType(dtype, 'tensor');
  const finalShape = shape ?? [values.length];
  assertValidShape(finalShape, 'tensor');
  if (sizeOf(finalShape) !== values.length) {
    throw new Error(`tensor: ${values.length} values do not fill shape ${formatShape(finalShape)} (${sizeOf(finalShape)} elements).`);
  }
  let data: TensorData;
  if (ArrayBuffer.isView(values) && matchesDType(values, dtype)) data = values as TensorData;
  else if (isHalf(dtype)) data = encodeHalf(values, dtype);
  else if (dtype === 'i32') data = Int32Array.from(values as ArrayLike<number>);
  else data = Float32Array.from(values as ArrayLike<number>);
  const backend = engine().getBackend();
  return engine().makeTensor({ dataId: backend.upload(data, dtype), shape: [...finalShape], dtype }, backend);
}

export function scalar(value: number, dtype: DType = 'f32'): Tensor {
  return tensor([value], [], dtype);
}

export function full(shape: Shape, value: number, dtype: DType = 'f32'): Tensor {
  assertValidShape(shape, 'full');
  return run('fill', [], { shape: [...shape], dtype, value });
}

export function zeros(shape: Shape, dtype: DType = 'f32'): Tensor {
  return full(shape, 0, dtype);
}

export function ones(shape: Shape, dtype: DType = 'f32'): Tensor {
  return full(shape, 1, dtype);
}

export function zerosLike(t: Tensor): Tensor {
  return full(t.shape, 0, t.dtype);
}

/** Seeded pseudo-random generator (mulberry32) so initialisations are reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomUniform(shape: Shape, { low = 0, high = 1, seed = 0, dtype = 'f32' as DType } = {}): Tensor {
  const rng = mulberry32(seed);
  const values = new Float32Array(sizeOf(shape));
  for (let i = 0; i < values.length; i++) values[i] = low + (high - low) * rng();
  return tensor(values, shape, dtype);
}

export function randomNormal(shape: Shape, { mean = 0, std = 1, seed = 0, dtype = 'f32' as DType } = {}): Tensor {
  const rng = mulberry32(seed);
  const values = new Float32Array(sizeOf(shape));
  for (let i = 0; i < values.length; i += 2) {
    const u1 = Math.max(rng(), 1e-12);
    const u2 = rng();
    const r = Math.sqrt(-2 * Math.log(u1));
    values[i] = mean + std * r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < values.length) values[i + 1] = mean + std * r * Math.sin(2 * Math.PI * u2);
  }
  return tensor(values, shape, dtype);
}

export function assertSameDType(what: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) {
    throw new Error(`${what}: dtypes differ (${a.dtype} and ${b.dtype}); cast one input first.`);
  }
}

export function assertShape(what: string, t: Tensor, expected: Shape): void {
  if (t.shape.length !== expected.length || t.shape.some((d, i) => expected[i] >= 0 && d !== expected[i])) {
    const exp = expected.map((d) => (d < 0 ? '*' : String(d))).join(', ');
    throw new Error(`${what}: expected shape [${exp}], got ${formatShape(t.shape)}.`);
  }
}

export function assertFloat(what: string, t: Tensor): void {
  if (t.dtype === 'i32') throw new Error(`${what}: expected a floating-point tensor, got i32.`);
}

/** A copy of `t` on another backend (waits for the source backend's data). */
export async function toBackend(t: Tensor, backendName: string): Promise<Tensor> {
  const target = engine().findBackend(backendName);
  const data = await t.data();
  return engine().makeTensor({ dataId: target.upload(data, t.dtype), shape: [...t.shape], dtype: t.dtype }, target);
}
