import type { DType } from '../dtype.js';

/**
 * How close a backend's result must be to the cpu oracle, per output dtype:
 *
 *   |actual − expected| ≤ atol · scale + rtol · |expected|,   scale = max(1, max |expected| over the tensor)
 *
 * The cpu backend computes in float64 and rounds once to the output dtype; a fast backend computes in float32.
 * - f32: rtol 1e-4, atol 1e-5 — room for float32 accumulation order over the small sizes used here.
 * - bf16: rtol 1.6e-2, atol 1e-2 (about 4 units in the last place of an 8-bit mantissa): a float32 result that
 *   lands next to a rounding boundary may round the other way, and op chains (gradients) compound that.
 * - f16: rtol 2e-3, atol 2e-3 (about 4 units in the last place of an 11-bit mantissa), for the same reason.
 * - i32: exact.
 * NaN must match NaN and ±Infinity must match exactly in every dtype.
 */
export interface Tolerance {
  rtol: number;
  atol: number;
}

export const DEFAULT_TOLERANCES: Readonly<Record<DType, Tolerance>> = {
  f32: { rtol: 1e-4, atol: 1e-5 },
  bf16: { rtol: 1.6e-2, atol: 1e-2 },
  f16: { rtol: 2e-3, atol: 2e-3 },
  i32: { rtol: 0, atol: 0 },
};

/** A description of the worst mismatch, or null when every element is within tolerance. */
export function mismatch(actual: Float32Array, expected: Float32Array, tol: Tolerance): string | null {
  if (actual.length !== expected.length) return `has ${actual.length} elements, expected ${expected.length}`;
  let scale = 1;
  for (const v of expected) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  let worst = -1;
  let worstRatio = 1;
  let bad = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) || !Number.isFinite(e)) {
      if (!Object.is(a, e) && !(Number.isNaN(a) && Number.isNaN(e))) {
        bad++;
        if (worst < 0 || worstRatio < Infinity) [worst, worstRatio] = [i, Infinity];
      }
      continue;
    }
    const allowed = tol.atol * scale + tol.rtol * Math.abs(e);
    const diff = Math.abs(a - e);
    if (!(diff <= allowed)) {
      bad++;
      const ratio = allowed > 0 ? diff / allowed : Infinity;
      if (Number.isNaN(diff) || ratio > worstRatio || worst < 0) [worst, worstRatio] = [i, Number.isNaN(diff) ? Infinity : ratio];
    }
  }
  if (bad === 0) return null;
  return (
    `${bad} of ${expected.length} elements out of tolerance (rtol ${tol.rtol}, atol ${tol.atol}·${scale.toPrecision(3)}); ` +
    `worst at index ${worst}: got ${actual[worst]}, expected ${expected[worst]}`
  );
}
