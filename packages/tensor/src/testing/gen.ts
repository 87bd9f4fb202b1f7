import type { DType } from '../dtype.js';
import { mulberry32, tensor } from '../ops/core.js';
import { sizeOf, type Shape } from '../shape.js';
import type { Tensor } from '../tensor.js';

/** Seeded random tensors for conformance cases, created on whatever backend is active (the suite makes it cpu). */
export class Gen {
  readonly #rng: () => number;

  constructor(seed: number) {
    this.#rng = mulberry32(seed);
  }

  uniformValues(n: number, lo: number, hi: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.#rng();
    return out;
  }

  normalValues(n: number, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u1 = Math.max(this.#rng(), 1e-12);
      out[i] = std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * this.#rng());
    }
    return out;
  }

  normal(shape: Shape, dtype: DType, std = 1): Tensor {
    return tensor(this.normalValues(sizeOf(shape), std), shape, dtype);
  }

  uniform(shape: Shape, dtype: DType, lo: number, hi: number): Tensor {
    return tensor(this.uniformValues(sizeOf(shape), lo, hi), shape, dtype);
  }

  /** Integers in [lo, hi) (as i32, or as float values when dtype is a float type). */
  ints(shape: Shape, lo: number, hi: number, dtype: DType = 'i32'): Tensor {
    const n = sizeOf(shape);
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) values[i] = lo + Math.floor((hi - lo) * this.#rng());
    return tensor(values, shape, dtype);
  }

  /** Integer class targets in [0, vocab), with every `ignoreEvery`-th one set to `ignoreIndex`. */
  targets(rows: number, vocab: number, ignoreIndex: number, ignoreEvery = 4): Tensor {
    const values = new Int32Array(rows);
    for (let i = 0; i < rows; i++) values[i] = (i + 1) % ignoreEvery === 0 ? ignoreIndex : Math.floor(vocab * this.#rng());
    return tensor(values, [rows], 'i32');
  }
}
