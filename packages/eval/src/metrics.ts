import { PythonRandom } from './python-random.js';
import { codePointLength } from './python-str.js';

/** Python's `sum` on floats in 3.11: plain left-to-right addition. */
export function pySum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

export function mean(xs: readonly number[]): number {
  return pySum(xs) / xs.length;
}

/** Sample standard deviation (n − 1 denominator). */
export function sampleStddev(xs: readonly number[]): number {
  const mu = mean(xs);
  return Math.sqrt(pySum(xs.map((x) => (x - mu) ** 2)) / (xs.length - 1));
}

/** Standard error of a mean: sampleStddev / √n. */
export function meanStderr(xs: readonly number[]): number {
  return sampleStddev(xs) / Math.sqrt(xs.length);
}

/** exp(−mean(log-likelihoods)): a document-level mean, not token-weighted. */
export function perplexity(lls: readonly number[]): number {
  return Math.exp(-mean(lls));
}

/**
 * The harness's deterministic bootstrap: chunks of min(1000, iters) resamples, chunk i drawing with a fresh
 * `Random(i)`; each resample is `choices(items, k = n)` passed through `statistic`; the result is the sample
 * standard deviation of all resampled statistics in chunk order.
 */
export function bootstrapStderr(statistic: (xs: readonly number[]) => number, items: readonly number[], iters: number): number {
  const chunkSize = Math.min(1000, iters);
  const chunks = Math.floor(iters / chunkSize);
  const stats: number[] = [];
  const n = items.length;
  const resample = new Array<number>(n);
  for (let i = 0; i < chunks; i++) {
    const rnd = new PythonRandom(i);
    for (let r = 0; r < chunkSize; r++) {
      for (let j = 0; j < n; j++) resample[j] = items[Math.floor(rnd.random() * n)];
      stats.push(statistic(resample));
    }
  }
  return sampleStddev(stats);
}

/** numpy `argmax`: the first index of the maximum. */
export function argmax(xs: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/** acc and acc_norm of one multiple-choice document; acc_norm divides by the choice's length in code points. */
export function multipleChoiceMetrics(lls: readonly number[], choices: readonly string[], gold: number): { acc: number; acc_norm: number } {
  const pred = argmax(lls);
  const predNorm = argmax(lls.map((ll, i) => ll / codePointLength(choices[i])));
  return { acc: pred === gold ? 1 : 0, acc_norm: predNorm === gold ? 1 : 0 };
}

/** Size-weighted mean of subtask values (a group's metric). */
export function weightedMean(values: readonly number[], sizes: readonly number[]): number {
  return pySum(values.map((v, i) => v * sizes[i])) / pySum(sizes);
}

/** Pooled standard error of a group: sqrt(Σ (n_i − 1)·se_i²·n_i / (Σ n_i − #subtasks) / Σ n_i). */
export function pooledStderr(stderrs: readonly number[], sizes: readonly number[]): number {
  const total = pySum(sizes);
  const pooledVariance = pySum(stderrs.map((se, i) => (sizes[i] - 1) * se ** 2 * sizes[i])) / (total - sizes.length);
  return Math.sqrt(pooledVariance / total);
}
