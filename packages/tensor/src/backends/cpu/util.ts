import type { Backend, TensorInfo } from '../../backend.js';
import { isHalf, type DType } from '../../dtype.js';
import { decodeHalf, encodeHalf } from '../../half.js';
import { sizeOf, type Shape } from '../../shape.js';
import { bufferOf, type CpuBackend } from './backend.js';

/** The input's values as float32 (a view for f32, a decoded copy otherwise). */
export function f32(info: TensorInfo): Float32Array {
  const data = bufferOf(info.dataId);
  if (data instanceof Float32Array) return data;
  if (isHalf(info.dtype)) return decodeHalf(data as Uint16Array, info.dtype);
  return Float32Array.from(data);
}

export function i32(info: TensorInfo, what: string): Int32Array {
  const data = bufferOf(info.dataId);
  if (!(data instanceof Int32Array)) throw new Error(`${what}: expected an i32 tensor, got ${info.dtype}.`);
  return data;
}

/** Stores float values as a new tensor of `dtype` (rounding to nearest even for halves). */
export function output(backend: Backend, shape: Shape, dtype: DType, values: Float32Array | Float64Array): TensorInfo {
  const cpu = backend as CpuBackend;
  let data;
  if (dtype === 'f32') data = values instanceof Float32Array ? values : Float32Array.from(values);
  else if (dtype === 'i32') data = Int32Array.from(values, Math.trunc);
  else data = encodeHalf(values, dtype);
  if (data.length !== sizeOf(shape)) throw new Error(`internal: output of ${data.length} values for shape [${shape}]`);
  return { dataId: cpu.adopt(data), shape: [...shape], dtype };
}

/** Overwrites a float tensor's storage with `values` (rounded to nearest even for halves). */
export function overwrite(info: TensorInfo, values: Float32Array): void {
  const data = bufferOf(info.dataId);
  if (data.length !== values.length) throw new Error(`internal: ${values.length} values written over a buffer of ${data.length}`);
  if (data instanceof Float32Array) data.set(values);
  else if (isHalf(info.dtype)) encodeHalf(values, info.dtype, data as Uint16Array);
  else throw new Error(`internal: overwrite of a ${info.dtype} tensor`);
}

export function outputI32(backend: Backend, shape: Shape, values: Int32Array): TensorInfo {
  return { dataId: (backend as CpuBackend).adopt(values), shape: [...shape], dtype: 'i32' };
}

/** Optional inputs are passed in order; `names` (an attr) says which ones are present. */
export function namedInputs(inputs: readonly TensorInfo[], names: readonly string[]): Record<string, TensorInfo | undefined> {
  const out: Record<string, TensorInfo | undefined> = {};
  names.forEach((n, i) => (out[n] = inputs[i]));
  return out;
}
