import { mulberry32 } from '@mamba-ts/tensor';

export interface SamplingOptions {
  /** 0 (default) picks the most likely token (greedy); above 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Keep only the k most likely tokens before sampling (0 = all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches topP (1 = all). */
  topP?: number;
  /** Seed of the sampling generator, so runs repeat. */
  seed?: number;
}

export function checkSamplingOptions({ temperature = 0, topK = 0, topP = 1 }: SamplingOptions): void {
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new Error(`generate: temperature must be a finite number ≥ 0, got ${temperature}.`);
  if (!Number.isInteger(topK) || topK < 0) throw new Error(`generate: topK must be an integer ≥ 0 (0 = no limit), got ${topK}.`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`generate: topP must be in (0, 1], got ${topP}.`);
}

export function argmaxOf(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/**
 * Picks the next token from one row of logits. Order as in Hugging Face generate: temperature, then top-k, then
 * top-p, then a draw from the renormalised distribution.
 */
export function createSampler({ temperature = 0, topK = 0, topP = 1, seed = 0 }: SamplingOptions = {}): (logits: ArrayLike<number>) => number {
  checkSamplingOptions({ temperature, topK, topP });
  if (temperature === 0) return argmaxOf;
  const random = mulberry32(seed);
  return (logits) => {
    const order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b] - logits[a]);
    const kept = topK > 0 ? order.slice(0, topK) : order;
    const max = logits[kept[0]] / temperature;
    const weights = kept.map((i) => Math.exp(logits[i] / temperature - max));
    const total = weights.reduce((s, w) => s + w, 0);
    let count = kept.length;
    if (topP < 1) {
      // Smallest prefix whose mass reaches topP (always at least one token).
      let mass = 0;
      for (count = 0; count < kept.length && mass < topP * total; count++) mass += weights[count];
    }
    const mass = weights.slice(0, count).reduce((s, w) => s + w, 0);
    let u = random() * mass;
    for (let i = 0; i < count; i++) {
      u -= weights[i];
      if (u < 0) return kept[i];
    }
    return kept[count - 1];
  };
}
