import type { Backend, DataId } from './backend.js';
import { isHalf, type DType, type TensorData } from './dtype.js';
import { decodeHalf } from './half.js';
import { formatShape, sizeOf, type Shape } from './shape.js';
import { engine } from './engine.js';

/** A backend buffer shared by every tensor that views it (reshape shares storage). */
export interface Storage {
  readonly dataId: DataId;
  readonly backend: Backend;
  readonly dtype: DType;
  readonly size: number;
  refs: number;
}

let nextTensorId = 1;

/** An immutable n-dimensional array living on one backend. Contiguous, row-major. */
export class Tensor {
  readonly id = nextTensorId++;
  readonly size: number;
  #disposed = false;

  constructor(
    readonly storage: Storage,
    readonly shape: Shape,
    readonly dtype: DType,
  ) {
    this.size = sizeOf(shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get backend(): string {
    return this.storage.backend.name;
  }

  get isDisposed(): boolean {
    return this.#disposed;
  }

  /** Copies the values out (async: GPU backends finish their queued work first). f16/bf16 come as raw bits. */
  async data(): Promise<TensorData> {
    this.assertAlive('data()');
    return this.storage.backend.read(this.storage.dataId, this.dtype, this.size);
  }

  /** Synchronous read; only backends that keep data in host memory (cpu, wasm) support it. */
  dataSync(): TensorData {
    this.assertAlive('dataSync()');
    const backend = this.storage.backend;
    if (!backend.readSync) {
      throw new Error(`dataSync() is not available on backend "${backend.name}"; use await tensor.data() instead.`);
    }
    return backend.readSync(this.storage.dataId, this.dtype, this.size);
  }

  /** Values as float32 (halves decoded, ints converted). */
  async toFloat32(): Promise<Float32Array> {
    return asFloat32(await this.data(), this.dtype);
  }

  toFloat32Sync(): Float32Array {
    return asFloat32(this.dataSync(), this.dtype);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item(): the tensor has shape ${formatShape(this.shape)}, not exactly one element.`);
    return (await this.toFloat32())[0];
  }

  /** Removes this tensor from the enclosing `tidy` scope so it outlives it. */
  keep(): this {
    engine().keep(this);
    return this;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    engine().releaseTensor(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  assertAlive(what: string): void {
    if (this.#disposed) {
      throw new Error(`${what}: tensor #${this.id} with shape ${formatShape(this.shape)} was already disposed.`);
    }
  }

  toString(): string {
    return `Tensor(${formatShape(this.shape)}, ${this.dtype}, ${this.backend})`;
  }
}

export function asFloat32(data: TensorData, dtype: DType): Float32Array {
  if (isHalf(dtype)) return decodeHalf(data as Uint16Array, dtype);
  if (data instanceof Float32Array) return data;
  return Float32Array.from(data);
}
