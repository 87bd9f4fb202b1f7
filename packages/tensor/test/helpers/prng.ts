/** Small seeded PRNG for reproducible tests: mulberry32 returns uniform numbers in [0, 1). */
export type Rng = () => number;

export { mulberry32 } from '../../src/ops/core.js';

/** n uniform numbers in [lo, hi) as a Float64Array. */
export function randArray(rng: Rng, n: number, lo: number, hi: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rng();
  return out;
}
