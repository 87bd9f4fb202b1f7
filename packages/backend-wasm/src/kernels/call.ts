import type { DType, KernelFunc, Shape, TensorInfo } from '@mamba-ts/tensor';
import { bytesPerElement, sizeOf, stridesOf } from '@mamba-ts/tensor';
import { bufferOf, DTYPE_KIND, type WasmBackend, type WasmBuffer } from '../backend.js';

/** An output tensor whose values a kernel writes as float32 at `ptr`; `info()` stores them in the final dtype. */
export interface F32Output {
  readonly ptr: number;
  info(): TensorInfo;
}

/**
 * One kernel invocation: hands out float32 views of inputs (converting f16/bf16/i32 into scratch), scratch blocks
 * and outputs, and frees the scratch when done (and the outputs too if the kernel throws).
 */
export class Call {
  readonly #temps: WasmBuffer[] = [];
  readonly #outputs: WasmBuffer[] = [];

  constructor(readonly be: WasmBackend) {}

  get k() {
    return this.be.k;
  }

  ptr(info: TensorInfo): number {
    return bufferOf(info.dataId).ptr;
  }

  temp(bytes: number, zero = false): number {
    const b = this.be.allocBytes(bytes, zero);
    this.#temps.push(b);
    return b.ptr;
  }

  tempF32(count: number, zero = false): number {
    return this.temp(count * 4, zero);
  }

  /** A pointer to the input's values as float32: the buffer itself for f32, else a converted scratch copy. */
  f32(info: TensorInfo): number {
    const src = this.ptr(info);
    if (info.dtype === 'f32') return src;
    const n = sizeOf(info.shape);
    const dst = this.tempF32(n);
    this.k.toF32(DTYPE_KIND[info.dtype], src, dst, n);
    return dst;
  }

  /** f32 values of an optional input, or 0 (a null pointer for the kernels) when absent. */
  optF32(info: TensorInfo | undefined): number {
    return info ? this.f32(info) : 0;
  }

  /** A new output buffer of `dtype` that the kernel fills directly (raw bytes). */
  raw(shape: Shape, dtype: DType, zero = false): { ptr: number; info: TensorInfo } {
    const b = this.be.allocBytes(sizeOf(shape) * bytesPerElement(dtype), zero);
    this.#outputs.push(b);
    return { ptr: b.ptr, info: { dataId: b, shape: [...shape], dtype } };
  }

  /** An output computed in float32 and stored as `dtype`. */
  out(shape: Shape, dtype: DType, zero = false): F32Output {
    if (dtype === 'f32') {
      const { ptr, info } = this.raw(shape, 'f32', zero);
      return { ptr, info: () => info };
    }
    const n = sizeOf(shape);
    const ptr = this.tempF32(n, zero);
    return {
      ptr,
      info: () => {
        const final = this.raw(shape, dtype);
        this.k.fromF32(DTYPE_KIND[dtype], ptr, final.ptr, n);
        return final.info;
      },
    };
  }

  /** Writes i32 values into the shared params block and returns its pointer. */
  params(values: readonly number[]): number {
    const base = this.be.params >> 2;
    if (values.length > 256) throw new Error(`backend-wasm: ${values.length} kernel parameters exceed the 256-slot block.`);
    this.be.i32.set(values, base);
    return this.be.params;
  }

  finish(ok: boolean): void {
    for (const t of this.#temps) this.be.freeBytes(t);
    if (!ok) for (const o of this.#outputs) this.be.freeBytes(o);
  }
}

/** Wraps a kernel body so every invocation gets a Call and releases its scratch. */
export function wasmKernel(body: (call: Call, inputs: readonly TensorInfo[], attrs: Record<string, unknown>) => TensorInfo[]): KernelFunc {
  return (inputs, attrs, backend) => {
    const call = new Call(backend as WasmBackend);
    let ok = false;
    try {
      const outs = body(call, inputs, attrs);
      ok = true;
      return outs;
    } finally {
      call.finish(ok);
    }
  };
}

export { stridesOf };

/** Offset (in elements) of each broadcast batch index of `inShape` within `outShape`. */
export function broadcastOffsets(inShape: Shape, outShape: Shape, blockSize: number): number[] {
  const n = sizeOf(outShape);
  const rank = outShape.length;
  const inStrides = stridesOf(inShape);
  const strides = outShape.map((_, d) => {
    const i = d - (rank - inShape.length);
    return i < 0 || inShape[i] === 1 ? 0 : inStrides[i];
  });
  const out: number[] = [];
  const counter = new Array<number>(rank).fill(0);
  for (let p = 0; p < n; p++) {
    out.push(counter.reduce((acc, c, d) => acc + c * strides[d], 0) * blockSize);
    for (let d = rank - 1; d >= 0; d--) {
      if (++counter[d] < outShape[d]) break;
      counter[d] = 0;
    }
  }
  return out;
}
