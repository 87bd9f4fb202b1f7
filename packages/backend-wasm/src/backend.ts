import type { Backend, BackendMemory, BufferCopy, DataId, DType, TensorData } from '@mamba-ts/tensor';
import { bytesPerElement } from '@mamba-ts/tensor';
import { HeapAllocator } from './allocator.js';
import type { KernelExports } from './wasm-module.js';

/** A tensor buffer in wasm memory. */
export class WasmBuffer {
  constructor(
    readonly ptr: number,
    /** Bytes the tensor uses. */
    readonly bytes: number,
    /** Bytes of the block (its size class). */
    readonly capacity: number,
  ) {}
}

/** Float kinds as the wasm conversion kernels number them. */
export const DTYPE_KIND: Record<DType, number> = { f32: 0, bf16: 1, f16: 2, i32: 3 };

/**
 * The `wasm` backend: tensors live in one WebAssembly memory, kernels are AssemblyScript SIMD functions over raw
 * pointers. The host owns allocation (HeapAllocator) and re-creates its typed-array views whenever memory grows.
 */
export class WasmBackend implements Backend {
  readonly name = 'wasm';
  readonly k: KernelExports;
  readonly #heap: HeapAllocator;
  #u8!: Uint8Array;
  #f32!: Float32Array;
  #i32!: Int32Array;
  #u16!: Uint16Array;
  #live = 0;
  #peak = 0;
  /** A small block for passing shapes and strides to kernels. */
  readonly params: number;
  /** Persistent scratch for the GEMM's packed panels. */
  readonly gemmScratch: number;

  constructor(kernels: KernelExports) {
    this.k = kernels;
    this.#heap = new HeapAllocator(kernels.memory, kernels.heapBase(), () => this.#refreshViews());
    this.#refreshViews();
    this.params = this.#heap.alloc(1024).ptr;
    this.gemmScratch = this.#heap.alloc(kernels.gemmScratchBytes()).ptr;
  }

  #refreshViews(): void {
    const buffer = this.k.memory.buffer;
    this.#u8 = new Uint8Array(buffer);
    this.#f32 = new Float32Array(buffer);
    this.#i32 = new Int32Array(buffer);
    this.#u16 = new Uint16Array(buffer);
  }

  /** Views of the whole memory, re-created after growth (a grown memory detaches the old buffer). */
  get u8(): Uint8Array {
    if (this.#u8.buffer !== this.k.memory.buffer) this.#refreshViews();
    return this.#u8;
  }
  get f32(): Float32Array {
    if (this.#f32.buffer !== this.k.memory.buffer) this.#refreshViews();
    return this.#f32;
  }
  get i32(): Int32Array {
    if (this.#i32.buffer !== this.k.memory.buffer) this.#refreshViews();
    return this.#i32;
  }
  get u16(): Uint16Array {
    if (this.#u16.buffer !== this.k.memory.buffer) this.#refreshViews();
    return this.#u16;
  }

  // ---- raw blocks (kernel scratch) ----

  allocBytes(bytes: number, zero = false): WasmBuffer {
    const { ptr, capacity } = this.#heap.alloc(bytes);
    this.#live += bytes;
    if (this.#live > this.#peak) this.#peak = this.#live;
    if (zero) this.u8.fill(0, ptr, ptr + bytes);
    return new WasmBuffer(ptr, bytes, capacity);
  }

  freeBytes(buffer: WasmBuffer): void {
    this.#live -= buffer.bytes;
    this.#heap.free(buffer.ptr, buffer.capacity);
  }

  // ---- Backend ----

  alloc(dtype: DType, size: number): DataId {
    return this.allocBytes(size * bytesPerElement(dtype), true);
  }

  upload(values: TensorData, dtype: DType): DataId {
    const bytes = values.length * bytesPerElement(dtype);
    const buffer = this.allocBytes(bytes);
    this.u8.set(new Uint8Array(values.buffer, values.byteOffset, bytes), buffer.ptr);
    return buffer;
  }

  free(dataId: DataId): void {
    this.freeBytes(dataId as WasmBuffer);
  }

  write(dataId: DataId, values: TensorData, dtype: DType): void {
    this.u8.set(new Uint8Array(values.buffer, values.byteOffset, values.length * bytesPerElement(dtype)), (dataId as WasmBuffer).ptr);
  }

  copy(pairs: readonly BufferCopy[]): void {
    for (const { dst, src, size, dtype } of pairs) {
      const from = (src as WasmBuffer).ptr;
      this.u8.copyWithin((dst as WasmBuffer).ptr, from, from + size * bytesPerElement(dtype));
    }
  }

  async read(dataId: DataId, dtype: DType, size: number): Promise<TensorData> {
    return this.readSync(dataId, dtype, size);
  }

  readSync(dataId: DataId, dtype: DType, size: number): TensorData {
    const { ptr } = dataId as WasmBuffer;
    if (dtype === 'f32') return this.f32.slice(ptr >> 2, (ptr >> 2) + size);
    if (dtype === 'i32') return this.i32.slice(ptr >> 2, (ptr >> 2) + size);
    return this.u16.slice(ptr >> 1, (ptr >> 1) + size);
  }

  async sync(): Promise<void> {}

  memory(): BackendMemory {
    return { liveBytes: this.#live, peakBytes: this.#peak, reservedBytes: this.#heap.reservedBytes };
  }

  resetPeak(): void {
    this.#peak = this.#live;
  }

  /** Total size of the WebAssembly memory. */
  get heapBytes(): number {
    return this.#heap.heapBytes;
  }
}

export function bufferOf(dataId: DataId): WasmBuffer {
  return dataId as WasmBuffer;
}
