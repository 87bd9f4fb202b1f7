import { add, cast, concat, mul, narrow, neg, tensor, type DType, type Tensor } from '@mamba-ts/tensor';

/**
 * cos/sin tables of rotary position embeddings (HF GPT-NeoX convention): for position p and rotary dim i < R,
 * θ_i = base^(−2(i mod R/2)/R), cos[p, i] = cos(p·θ_i), sin[p, i] = sin(p·θ_i). The first and second halves repeat
 * the same frequencies because rotate_half pairs dimension i with i + R/2.
 */
export class RotaryTables {
  readonly #tables = new Map<DType, { cos: Tensor; sin: Tensor }>();

  constructor(
    readonly dims: number,
    readonly base: number,
    readonly maxPositions: number,
  ) {}

  /** (length, R) tables for positions start … start + length − 1 in `dtype`. */
  at(start: number, length: number, dtype: DType): { cos: Tensor; sin: Tensor } {
    if (start + length > this.maxPositions) {
      throw new Error(`rotary embeddings: positions up to ${start + length} exceed max_position_embeddings ${this.maxPositions}; use shorter inputs.`);
    }
    const full = this.#full(dtype);
    return { cos: narrow(full.cos, 0, start, length), sin: narrow(full.sin, 0, start, length) };
  }

  #full(dtype: DType): { cos: Tensor; sin: Tensor } {
    let t = this.#tables.get(dtype);
    if (t === undefined) {
      const R = this.dims;
      const half = R / 2;
      const cosValues = new Float32Array(this.maxPositions * R);
      const sinValues = new Float32Array(this.maxPositions * R);
      // inv_freq is a float32 tensor in HF, and position·inv_freq a float32 product; round the same way.
      const invFreq = Float32Array.from({ length: half }, (_, i) => 1 / Math.pow(this.base, (2 * i) / R));
      for (let p = 0; p < this.maxPositions; p++) {
        for (let i = 0; i < R; i++) {
          const angle = Math.fround(p * invFreq[i % half]);
          cosValues[p * R + i] = Math.cos(angle);
          sinValues[p * R + i] = Math.sin(angle);
        }
      }
      const shape = [this.maxPositions, R];
      const cos = tensor(cosValues, shape);
      const sin = tensor(sinValues, shape);
      t = dtype === 'f32' ? { cos, sin } : { cos: cast(cos, dtype), sin: cast(sin, dtype) };
      if (dtype !== 'f32') {
        cos.dispose();
        sin.dispose();
      }
      t.cos.keep();
      t.sin.keep();
      this.#tables.set(dtype, t);
    }
    return t;
  }

  dispose(): void {
    for (const { cos, sin } of this.#tables.values()) {
      cos.dispose();
      sin.dispose();
    }
    this.#tables.clear();
  }
}

/** rotate_half(x) = [−x₂, x₁] where x₁, x₂ are the two halves of the last axis. */
export function rotateHalf(x: Tensor): Tensor {
  const half = x.shape[x.rank - 1] / 2;
  const x1 = narrow(x, -1, 0, half);
  const x2 = narrow(x, -1, half, half);
  return concat([neg(x2), x1], -1);
}

/**
 * Applies rotary embeddings to the first R dims of the last axis of x (…, L, headSize); the rest pass through.
 * cos/sin are (L, R) and broadcast over the leading axes.
 */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const R = cos.shape[1];
  const D = x.shape[x.rank - 1];
  if (R === 0) return x;
  const rot = R === D ? x : narrow(x, -1, 0, R);
  const rotated = add(mul(rot, cos), mul(rotateHalf(rot), sin));
  return R === D ? rotated : concat([rotated, narrow(x, -1, R, D - R)], -1);
}
