import { expect } from 'vitest';
import { grad, mulberry32, noGrad, tensor, tidy, type Tensor } from '@mamba-ts/tensor';

/**
 * Compares autograd gradients of the scalar `f(...xs)` with central finite differences in float32.
 * `values` are the inputs' initial values; each is perturbed element by element.
 */
export function checkGradients(
  f: (...xs: Tensor[]) => Tensor,
  values: { data: number[] | Float32Array; shape: number[] }[],
  { eps = 1e-2, rtol = 2e-2, atol = 2e-3 } = {},
): void {
  tidy(() => {
    const xs = values.map((v) => tensor(v.data, v.shape));
    const analytic = grad(() => f(...xs), xs).map((g) => g.toFloat32Sync());
    values.forEach((v, k) => {
      const base = Float32Array.from(v.data);
      for (let i = 0; i < base.length; i++) {
        const at = (delta: number) =>
          noGrad(() =>
            tidy(() => {
              const pert = base.slice();
              pert[i] += delta;
              const inputs = xs.map((x, j) => (j === k ? tensor(pert, v.shape) : x));
              return f(...inputs).toFloat32Sync()[0];
            }),
          );
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        const a = analytic[k][i];
        expect(Math.abs(a - numeric), `input ${k} element ${i}: analytic ${a} vs numeric ${numeric}`).toBeLessThanOrEqual(
          atol + rtol * Math.abs(numeric),
        );
      }
    });
  });
}

export function seq(n: number, seed = 1, lo = -1, hi = 1): number[] {
  const rng = mulberry32(seed);
  return Array.from({ length: n }, () => lo + (hi - lo) * rng());
}
