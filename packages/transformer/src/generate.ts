import { noGrad, narrow, tensor, tidy, type DType, type Tensor } from '@mamba-ts/tensor';
import type { LayerKV } from './attention.js';
import type { GPTNeoXModel } from './model.js';
import { createSampler, type SamplingOptions } from '@mamba-ts/tensor';

export interface GenerateOptions extends SamplingOptions {
  /** How many tokens to add (default 32). */
  maxNewTokens?: number;
  /** A row stops after producing this token (default: config eos_token_id; null never stops early). */
  eosTokenId?: number | null;
  /** Activation dtype (default: the weights' dtype). */
  dtype?: DType;
  /** Called after every step with the token chosen for each row (rows that already stopped are left out). */
  onToken?: (tokens: { row: number; id: number }[]) => void;
}

function disposeCache(cache: readonly LayerKV[]): void {
  for (const { keys, values } of cache) {
    keys.dispose();
    values.dispose();
  }
}

/** Rows of last-position logits as host arrays. */
async function lastLogits(logits: Tensor): Promise<Float32Array[]> {
  const [B, , V] = logits.shape;
  const values = await logits.toFloat32();
  return Array.from({ length: B }, (_, b) => values.subarray(b * V, (b + 1) * V));
}

/**
 * Continues each prompt (all of equal length) with a key/value cache: one forward over the prompts, then one
 * token per step. Returns only the new ids of each row; a row that produced eosTokenId ends there (eos included).
 */
export async function generateIds(model: GPTNeoXModel, prompts: readonly (readonly number[])[], opts: GenerateOptions = {}): Promise<number[][]> {
  const { maxNewTokens = 32, dtype } = opts;
  const eos = opts.eosTokenId === undefined ? model.config.eosTokenId : opts.eosTokenId;
  const B = prompts.length;
  const L = prompts[0]?.length ?? 0;
  if (B === 0 || L === 0) throw new Error('generate: give at least one non-empty prompt.');
  if (prompts.some((p) => p.length !== L)) throw new Error(`generate: prompts have different lengths (${prompts.map((p) => p.length)}); pass them one at a time or pad them yourself.`);
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new Error(`generate: maxNewTokens must be an integer ≥ 0, got ${maxNewTokens}.`);
  const limit = model.config.maxPositionEmbeddings;
  if (L + maxNewTokens > limit) {
    throw new Error(`generate: prompt length ${L} + maxNewTokens ${maxNewTokens} exceeds the model's maximum length ${limit}; shorten the prompt or ask for fewer tokens.`);
  }
  const sample = createSampler({ ...opts, temperature: opts.temperature ?? 0 }); // greedy unless a temperature is given
  const out: number[][] = prompts.map(() => []);
  const done = new Array<boolean>(B).fill(false);
  if (maxNewTokens === 0) return out;

  const step = (ids: number[], length: number, cache?: LayerKV[]): { last: Tensor; cache: LayerKV[] } =>
    noGrad(() =>
      tidy(() => {
        const input = tensor(Int32Array.from(ids), [B, length], 'i32');
        const r = model.gpt_neox.forward(input, { ...(cache ? { cache } : {}), ...(dtype ? { dtype } : {}) });
        // Only the last position's logits are needed: skip the (B, L, vocab) product over the prompt.
        return { last: model.embed_out.forward(narrow(r.hidden, 1, length - 1, 1)), cache: r.cache };
      }),
    );

  let { last, cache } = step(prompts.flat(), L);
  try {
    for (let t = 0; t < maxNewTokens; t++) {
      const rows = await lastLogits(last);
      last.dispose();
      const chosen = rows.map((row) => sample(row));
      const emitted: { row: number; id: number }[] = [];
      chosen.forEach((id, b) => {
        if (done[b]) return;
        out[b].push(id);
        emitted.push({ row: b, id });
        if (eos !== null && id === eos) done[b] = true;
      });
      opts.onToken?.(emitted);
      if (done.every(Boolean) || t === maxNewTokens - 1) break;
      // Finished rows keep being fed (their outputs are ignored) so the batch stays rectangular.
      const next = step(chosen, 1, cache);
      disposeCache(cache);
      ({ last, cache } = next);
    }
  } finally {
    if (!last.isDisposed) last.dispose();
    disposeCache(cache);
  }
  return out;
}
