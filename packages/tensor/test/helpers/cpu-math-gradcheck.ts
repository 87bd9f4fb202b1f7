/** Central finite differences and comparisons for the cpu reference-math gradient tests. */
import { expect } from 'vitest';

/** Σ_i w[i]·a[i]: the scalar loss whose gradient w.r.t. a is w. */
export function weightedSum(w: ArrayLike<number>, a: ArrayLike<number>): number {
  expect(a.length).toBe(w.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += w[i] * a[i];
  return s;
}

/** d loss / d x by central differences, perturbing x in place (and restoring it). */
export function numericGradient(loss: () => number, x: Float64Array, eps = 1e-6): Float64Array {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const original = x[i];
    x[i] = original + eps;
    const plus = loss();
    x[i] = original - eps;
    const minus = loss();
    x[i] = original;
    grad[i] = (plus - minus) / (2 * eps);
  }
  return grad;
}

/**
 * Element-wise |a − b| ≤ rtol·max(|a|, |b|) + atol·max(1, max|b|). Reports every mismatching index at once.
 */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  label: string,
  rtol = 1e-7,
  atol = 1e-8,
): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let scale = 1;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  const failures: string[] = [];
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const b = expected[i];
    const tol = rtol * Math.max(Math.abs(a), Math.abs(b)) + atol * scale;
    if (!(Math.abs(a - b) <= tol)) failures.push(`[${i}] got ${a}, expected ${b}`);
  }
  expect(failures, label).toEqual([]);
}

/** Checks an analytic gradient against central differences of `loss` w.r.t. `x`. */
export function expectGradient(label: string, loss: () => number, x: Float64Array, analytic: ArrayLike<number>): void {
  expectClose(analytic, numericGradient(loss, x), `gradient ${label}`);
}
