import { mulberry32 } from './ops/core.js';

/** How the next token is chosen from a row of logits (host-side, model-agnostic). */
export interface SamplingOptions {
  /** Take the most likely token (also implied by temperature 0). */
  greedy?: boolean;
  /** Softmax temperature (default 1; 0 means greedy). */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = all). */
  topP?: number;
  /** Seed of the sampling random stream, so runs repeat. */
  seed?: number;
}

export function checkSamplingOptions({ temperature = 1, topK = 0, topP = 1 }: SamplingOptions): void {
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new Error(`temperature must be a finite number ≥ 0 (0 = greedy), got ${temperature}.`);
  if (!Number.isInteger(topK) || topK < 0) throw new Error(`topK must be an integer ≥ 0 (0 = no limit), got ${topK}.`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`topP must be in (0, 1], got ${topP}.`);
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/**
 * A function picking the next token from one row of logits. Order as in Hugging Face generate: temperature, then
 * top-k, then top-p, then a draw from the renormalised distribution.
 */
/** Whether the options pick the most likely token (greedy, or temperature 0). */
export function isGreedy(opts: SamplingOptions): boolean {
  return opts.greedy === true || opts.temperature === 0;
}

export function createSampler(opts: SamplingOptions = {}): (logits: ArrayLike<number>) => number {
  const { temperature = 1, topK = 0, topP = 1, seed = 0 } = opts;
  checkSamplingOptions({ temperature, topK, topP });
  if (isGreedy(opts)) return argmax;
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
