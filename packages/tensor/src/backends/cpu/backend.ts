import type { Backend, BackendMemory, BufferCopy, DataId } from '../../backend.js';
import { allocArray, bytesPerElement, type DType, type TensorData } from '../../dtype.js';

/** A cpu buffer: a typed array of the dtype's storage kind. */
export interface CpuBuffer {
  readonly data: TensorData;
}

/** The reference backend: plain TypeScript over typed arrays in host memory. */
export class CpuBackend implements Backend {
  readonly name: string = 'cpu';
  #live = 0;
  #peak = 0;

  alloc(dtype: DType, size: number): DataId {
    return this.#adopt(allocArray(dtype, size));
  }

  upload(values: TensorData, dtype: DType): DataId {
    const data = allocArray(dtype, values.length);
    data.set(values as never);
    return this.#adopt(data);
  }

  /** Wraps an array this backend now owns (no copy). */
  adopt(data: TensorData): DataId {
    return this.#adopt(data);
  }

  #adopt(data: TensorData): CpuBuffer {
    this.#live += data.byteLength;
    if (this.#live > this.#peak) this.#peak = this.#live;
    return { data };
  }

  free(dataId: DataId): void {
    this.#live -= (dataId as CpuBuffer).data.byteLength;
  }

  async read(dataId: DataId, dtype: DType, size: number): Promise<TensorData> {
    return this.readSync(dataId, dtype, size);
  }

  readSync(dataId: DataId, _dtype: DType, _size: number): TensorData {
    return (dataId as CpuBuffer).data.slice();
  }

  write(dataId: DataId, values: TensorData): void {
    bufferOf(dataId).set(values as never);
  }

  copy(pairs: readonly BufferCopy[]): void {
    for (const { dst, src, size } of pairs) bufferOf(dst).set(bufferOf(src).subarray(0, size) as never);
  }

  async sync(): Promise<void> {}

  memory(): BackendMemory {
    return { liveBytes: this.#live, peakBytes: this.#peak };
  }

  resetPeak(): void {
    this.#peak = this.#live;
  }
}

export function bufferOf(dataId: DataId): TensorData {
  return (dataId as CpuBuffer).data;
}

export { bytesPerElement };
