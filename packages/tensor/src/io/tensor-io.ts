import type { DType } from '../dtype.js';
import { decodeHalf, encodeHalf } from '../half.js';
import { tensor } from '../ops/core.js';
import type { Tensor } from '../tensor.js';
import type { SafetensorsDType, SafetensorsTensor } from './safetensors.js';

const TO_SAFETENSORS: Record<DType, SafetensorsDType> = { f32: 'F32', f16: 'F16', bf16: 'BF16', i32: 'I32' };

/** Makes a tensor of `dtype` (default: the file's own when supported) from a safetensors entry. */
export function tensorFromSafetensors(entry: SafetensorsTensor, dtype?: DType, source = 'safetensors'): Tensor {
  const native: DType | undefined = { F32: 'f32', F16: 'f16', BF16: 'bf16', I32: 'i32' }[entry.dtype as string] as DType | undefined;
  const target = dtype ?? native;
  if (!target) throw new Error(`${source}: dtype ${entry.dtype} has no tensor equivalent; convert it to F32 first.`);
  if (target === native) return tensor(entry.data as Float32Array, entry.shape, target);
  let values: ArrayLike<number>;
  if (entry.dtype === 'F16' || entry.dtype === 'BF16') {
    values = decodeHalf(entry.data as Uint16Array, entry.dtype === 'F16' ? 'f16' : 'bf16');
  } else if (entry.data instanceof BigInt64Array || entry.data instanceof BigUint64Array) {
    values = Array.from(entry.data, Number);
  } else {
    values = entry.data as ArrayLike<number>;
  }
  if (target === 'f16' || target === 'bf16') return tensor(encodeHalf(values, target), entry.shape, target);
  return tensor(values, entry.shape, target);
}

/** A safetensors entry ({dtype, shape, data}) holding a copy of the tensor's values. */
export async function safetensorsEntry(t: Tensor): Promise<{ dtype: SafetensorsDType; shape: number[]; data: ArrayBufferView }> {
  return { dtype: TO_SAFETENSORS[t.dtype], shape: [...t.shape], data: await t.data() };
}

