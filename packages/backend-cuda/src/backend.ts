import {
  bytesPerElement,
  formatShape,
  sizeOf,
  type Backend,
  type BackendMemory,
  type BufferCopy,
  type CapturedGraph,
  type DataId,
  type DType,
  type Shape,
  type TensorData,
  type TensorInfo,
} from '@mamba-ts/tensor';
import type { NativeAddon } from './native.js';

/** A device buffer: its address and size. The engine sees it as an opaque DataId. */
export class CudaBuffer {
  freed = false;
  constructor(
    readonly address: number,
    readonly bytes: number,
  ) {}
}

/** dtype codes shared with native/common.h. */
export const DTYPE_CODE: Record<DType, number> = { f32: 0, f16: 1, bf16: 2, i32: 3 };

/** A launch argument list: numbers, with tensors written as (address, dtype code); absent tensors as (0, 0). */
export type LaunchArg = number | boolean;

/**
 * The CUDA backend: device memory through the addon's caching allocator, all work enqueued on one stream.
 * Nothing here waits for the GPU: `read` and `sync` return promises settled from worker threads.
 */
export class CudaBackend implements Backend {
  readonly name = 'cuda';
  readonly #native: NativeAddon;
  readonly #ops: Map<string, number>;
  readonly #labels = new Map<string, number>();
  /** Launch arguments are packed here (one buffer for every launch: no allocation per op). */
  #packed = new Float64Array(256);

  constructor(native: NativeAddon) {
    this.#native = native;
    this.#ops = new Map(native.opNames().map((name, i) => [name, i]));
  }

  get native(): NativeAddon {
    return this.#native;
  }

  alloc(dtype: DType, size: number): DataId {
    const buffer = this.#allocate(size * bytesPerElement(dtype), () => `alloc ${dtype} × ${size}`);
    this.launch('fill', 'alloc', [buffer.address, DTYPE_CODE[dtype], size, 0]);
    return buffer;
  }

  upload(values: TensorData, dtype: DType): DataId {
    const bytes = values.length * bytesPerElement(dtype);
    if (values.byteLength !== bytes) {
      throw new Error(`cuda upload: ${values.constructor.name} of ${values.length} values does not hold ${dtype} data.`);
    }
    const buffer = this.#allocate(bytes, () => `upload ${dtype} × ${values.length}`);
    if (bytes > 0) this.#native.upload(buffer.address, values);
    return buffer;
  }

  free(dataId: DataId): void {
    const buffer = this.buffer(dataId, 'free');
    buffer.freed = true;
    if (buffer.bytes > 0) this.#native.free(buffer.address);
  }

  async read(dataId: DataId, dtype: DType, size: number): Promise<TensorData> {
    const buffer = this.buffer(dataId, 'read');
    const bytes = size * bytesPerElement(dtype);
    if (bytes > buffer.bytes) throw new Error(`cuda read: ${bytes} bytes requested from a buffer of ${buffer.bytes}.`);
    const data = await this.#native.read(buffer.address, bytes);
    if (dtype === 'f32') return new Float32Array(data);
    if (dtype === 'i32') return new Int32Array(data);
    return new Uint16Array(data);
  }

  sync(): Promise<void> {
    return this.#native.sync();
  }

  write(dataId: DataId, values: TensorData, dtype: DType): void {
    const buffer = this.buffer(dataId, 'write');
    if (values.length * bytesPerElement(dtype) > buffer.bytes) throw new Error(`cuda write: ${values.length} ${dtype} values do not fit a buffer of ${buffer.bytes} bytes.`);
    if (values.length > 0) this.#native.upload(buffer.address, values);
  }

  copy(pairs: readonly BufferCopy[]): void {
    const args: number[] = [pairs.length];
    for (const { dst, src, size, dtype } of pairs) {
      args.push(this.buffer(dst, 'assign').address, this.buffer(src, 'assign').address, size * bytesPerElement(dtype));
    }
    this.launch('copyMany', 'assign', args);
  }

  /** A CUDA graph of the kernels `record` launches (see Engine.capture). */
  capture(record: () => void): CapturedGraph {
    const native = this.#native;
    native.captureBegin();
    try {
      record();
    } catch (e) {
      native.captureAbort();
      throw e;
    }
    const graph = native.captureEnd();
    let live = true;
    return {
      replay: () => {
        if (!live) throw new Error('replay: this captured graph was disposed.');
        native.graphLaunch(graph);
      },
      dispose: () => {
        if (live) native.graphDestroy(graph);
        live = false;
      },
    };
  }

  memory(): BackendMemory {
    const m = this.#native.memory();
    return { liveBytes: m.liveBytes, peakBytes: m.peakBytes, reservedBytes: m.reservedBytes - m.liveBytes };
  }

  resetPeak(): void {
    this.#native.resetPeak();
  }

  /** Returns cached device memory to CUDA. */
  dispose(): void {
    this.#native.emptyCache();
  }

  // ---- for kernels ----

  /** The live device buffer behind a tensor of this backend; a clear error otherwise. */
  buffer(dataId: DataId, where: string): CudaBuffer {
    if (!(dataId instanceof CudaBuffer)) {
      throw new Error(`${where}: the tensor does not live on the cuda backend; move it to cuda first.`);
    }
    if (dataId.freed) throw new Error(`${where}: the tensor's device memory was already freed (use after dispose).`);
    return dataId;
  }

  /** Address of a tensor's buffer (0 for an absent optional input). */
  address(info: TensorInfo | undefined, where: string): number {
    return info ? this.buffer(info.dataId, where).address : 0;
  }

  /** (address, dtype code) of a tensor, or (0, 0) when absent: how ops read an In/Out argument. */
  ref(info: TensorInfo | undefined, where: string): [number, number] {
    return info ? [this.address(info, where), DTYPE_CODE[info.dtype]] : [0, 0];
  }

  /** A new, uninitialised output tensor. */
  output(shape: Shape, dtype: DType, kernel: string): TensorInfo {
    const size = sizeOf(shape);
    const buffer = this.#allocate(size * bytesPerElement(dtype), () => `${kernel} output ${dtype}${formatShape(shape)}`);
    return { dataId: buffer, shape: [...shape], dtype };
  }

  /** Frees an intermediate made by a kernel (safe at once: later work on the one stream runs after its users). */
  release(info: TensorInfo): void {
    this.free(info.dataId);
  }

  /** Enqueues native op `op`; `label` (the engine kernel) names it in errors. */
  launch(op: string, label: string, args: readonly LaunchArg[]): void {
    const index = this.#ops.get(op);
    if (index === undefined) throw new Error(`internal: the cuda addon has no op "${op}"`);
    let labelId = this.#labels.get(label);
    if (labelId === undefined) this.#labels.set(label, (labelId = this.#native.label(label)));
    if (args.length > this.#packed.length) this.#packed = new Float64Array(2 * args.length);
    const packed = this.#packed;
    for (let i = 0; i < args.length; i++) packed[i] = +args[i];
    this.#native.launch(index, packed, args.length, labelId);
  }

  /** `what` names the request in an out-of-memory error (built only then: this runs for every op). */
  #allocate(bytes: number, what: () => string): CudaBuffer {
    if (bytes === 0) return new CudaBuffer(0, 0);
    try {
      return new CudaBuffer(this.#native.malloc(bytes), bytes);
    } catch (e) {
      throw new Error(`${what()}: ${(e as Error).message}`);
    }
  }
}
