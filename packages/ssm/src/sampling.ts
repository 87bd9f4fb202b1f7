import { mulberry32 } from '@mamba-ts/tensor';

export interface SamplingOptions {
  /** Always take the most likely token (ignores temperature, topK, topP). */
  greedy?: boolean;
  /** Softmax temperature (> 0). */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = all). */
  topP?: number;
  /** Seed of the sampling random stream. */
  seed?: number;
}

export function checkSamplingOptions({ temperature = 1, topK = 0, topP = 1 }: SamplingOptions): void {
  if (!(temperature > 0)) throw new Error(`temperature must be > 0, got ${temperature}; use greedy for deterministic output.`);
  if (!Number.isInteger(topK) || topK < 0) throw new Error(`topK must be a non-negative integer, got ${topK}.`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`topP must be in (0, 1], got ${topP}.`);
}

/** Picks the next token from one row of logits, using `random` for sampling. */
export function sampleToken(logits: Float32Array, opts: SamplingOptions, random: () => number): number {
  if (opts.greedy) return argmax(logits);
  const { temperature = 1, topK = 0, topP = 1 } = opts;
  let order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
  if (topK > 0) order = order.slice(0, topK);
  const max = logits[order[0]];
  const weights = order.map((i) => Math.exp((logits[i] - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let keep = order.length;
  if (topP < 1) {
    let cum = 0;
    for (let k = 0; k < order.length; k++) {
      cum += weights[k] / total;
      if (cum >= topP) {
        keep = k + 1;
        break;
      }
    }
  }
  const kept = weights.slice(0, keep);
  const keptTotal = kept.reduce((a, b) => a + b, 0);
  let r = random() * keptTotal;
  for (let k = 0; k < keep; k++) {
    r -= kept[k];
    if (r <= 0) return order[k];
  }
  return order[keep - 1];
}

export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

export function samplerRandom(seed = 0): () => number {
  return mulberry32(seed);
}
