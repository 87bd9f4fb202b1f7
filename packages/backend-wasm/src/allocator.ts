/**
 * Allocation of the wasm memory, owned by the host: blocks come from size-class free lists, else from the top of
 * the heap, growing the memory when needed. Blocks are 16-byte aligned (v128 loads). Memory never shrinks (wasm
 * cannot), so freed blocks are kept for reuse; `reservedBytes` reports them.
 *
 * Size classes: each power of two 2^k (k ≥ 4) is split in 4 steps (2^k, 1.25·2^k, 1.5·2^k, 1.75·2^k), so a block
 * wastes at most 25%.
 */
export class HeapAllocator {
  readonly #memory: WebAssembly.Memory;
  readonly #free = new Map<number, number[]>();
  #top: number;
  #freeBytes = 0;
  readonly onGrow: () => void;

  constructor(memory: WebAssembly.Memory, heapBase: number, onGrow: () => void) {
    this.#memory = memory;
    this.#top = align16(heapBase);
    this.onGrow = onGrow;
  }

  /** The capacity of the block that serves `bytes`. */
  static sizeClass(bytes: number): number {
    const n = Math.max(16, bytes);
    const k = 31 - Math.clz32(n); // 2^k ≤ n < 2^(k+1)
    const quarter = Math.max(4, k - 2); // steps of 2^(k−2), at least 16 bytes
    const step = 2 ** quarter;
    return Math.ceil(n / step) * step;
  }

  alloc(bytes: number): { ptr: number; capacity: number } {
    const capacity = HeapAllocator.sizeClass(bytes);
    const list = this.#free.get(capacity);
    if (list && list.length > 0) {
      this.#freeBytes -= capacity;
      return { ptr: list.pop()!, capacity };
    }
    const ptr = this.#top;
    this.#ensure(ptr + capacity, bytes);
    this.#top = ptr + capacity;
    return { ptr, capacity };
  }

  free(ptr: number, capacity: number): void {
    let list = this.#free.get(capacity);
    if (!list) this.#free.set(capacity, (list = []));
    list.push(ptr);
    this.#freeBytes += capacity;
  }

  /** Bytes in free lists plus the unused tail of the memory. */
  get reservedBytes(): number {
    return this.#freeBytes + (this.#memory.buffer.byteLength - this.#top);
  }

  get heapBytes(): number {
    return this.#memory.buffer.byteLength;
  }

  #ensure(end: number, requested: number): void {
    const have = this.#memory.buffer.byteLength;
    if (end <= have) return;
    // Grow by at least a quarter of the current size to keep the number of (view-invalidating) growths small.
    const needed = Math.ceil((end - have) / 65536);
    const pages = Math.max(needed, Math.ceil(have / 65536 / 4), 16);
    try {
      this.#memory.grow(pages);
    } catch {
      try {
        this.#memory.grow(needed);
      } catch {
        throw new Error(
          `backend-wasm: out of memory allocating ${requested} bytes (heap ${have} bytes); the WebAssembly heap is limited to 4 GiB — use smaller batches or another backend.`,
        );
      }
    }
    this.onGrow();
  }
}

export function align16(n: number): number {
  return (n + 15) & ~15;
}
