/** Element types a Tensor can hold. f16 and bf16 are stored as raw 16-bit patterns in a Uint16Array. */
export type DType = 'f32' | 'f16' | 'bf16' | 'i32';

export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'i32'];

export type TypedArrayFor<D extends DType> = D extends 'f32'
  ? Float32Array
  : D extends 'i32'
    ? Int32Array
    : Uint16Array;

export type TensorData = Float32Array | Int32Array | Uint16Array;

export function bytesPerElement(dtype: DType): number {
  return dtype === 'f32' || dtype === 'i32' ? 4 : 2;
}

export function isFloat(dtype: DType): boolean {
  return dtype !== 'i32';
}

export function isHalf(dtype: DType): dtype is 'f16' | 'bf16' {
  return dtype === 'f16' || dtype === 'bf16';
}

export function allocArray(dtype: DType, size: number): TensorData {
  if (dtype === 'f32') return new Float32Array(size);
  if (dtype === 'i32') return new Int32Array(size);
  return new Uint16Array(size);
}

export function assertDType(dtype: unknown, what: string): asserts dtype is DType {
  if (!DTYPES.includes(dtype as DType)) {
    throw new Error(`${what}: unknown dtype ${JSON.stringify(dtype)}; use one of ${DTYPES.join(', ')}.`);
  }
}

/** Is `data` the storage kind that `dtype` uses? */
export function matchesDType(data: ArrayBufferView, dtype: DType): boolean {
  if (dtype === 'f32') return data instanceof Float32Array;
  if (dtype === 'i32') return data instanceof Int32Array;
  return data instanceof Uint16Array;
}
