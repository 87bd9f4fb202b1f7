import { checkSamplingOptions, concat, createSampler, isGreedy, engine, narrow, reshape, tensor, type SamplingOptions, type Tensor } from '@mamba-ts/tensor';
import type { MambaLM } from './model.js';
import { Decoder } from './decoder.js';
import { MambaState } from './state.js';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens?: number;
  /** Generation of a sequence stops after it produces one of these (default: the config's EOS). */
  stopTokens?: readonly number[];
  /** Called with each new token as soon as it is chosen. */
  onToken?: (token: number, sequence: number) => void;
}

/** Runs the prompt through the parallel path; returns the last position's logits (1, V) and the state. */
export function prefill(model: MambaLM, promptIds: readonly number[], state?: MambaState | null): { logits: Tensor; state: MambaState } {
  checkIds(model, promptIds);
  return engine().noGrad(() =>
    engine().tidy(() => {
      const ids = tensor(Int32Array.from(promptIds), [1, promptIds.length], 'i32');
      const { hidden, state: next } = model.hidden(ids, { state });
      next.keep();
      const last = narrow(hidden, 1, promptIds.length - 1, 1);
      return { logits: reshape(model.logits(last), [1, -1]), state: next };
    }),
  );
}

/**
 * Generates continuations of a batch of prompts of any lengths: each prompt is prefilled on its own (no padding),
 * then all sequences advance together through a `Decoder` (one replayed graph per token where the backend can
 * capture). Greedy decoding picks tokens on the device; sampling reads the logits. Returns the new ids of each prompt.
 */
export async function generate(model: MambaLM, prompts: readonly (readonly number[])[], opts: GenerateOptions = {}): Promise<number[][]> {
  const { maxNewTokens = 32, stopTokens = [model.config.eosTokenId], onToken } = opts;
  checkSamplingOptions(opts);
  if (prompts.length === 0) return [];
  const sample = createSampler(opts);
  const greedy = isGreedy(opts);
  const V = model.config.vocabSize;

  const starts = prompts.map((p) => prefill(model, p));
  const state = MambaState.concat(starts.map((s) => s.state));
  const first = engine().tidy(() => reshape(concat(starts.map((s) => s.logits), 0), [prompts.length, V])).keep();
  for (const s of starts) {
    s.state.dispose();
    s.logits.dispose();
  }
  const decoder = new Decoder(model, prompts.length, { state });
  state.dispose();

  const out: number[][] = prompts.map(() => []);
  const done = prompts.map(() => maxNewTokens <= 0);
  /** Records each live sequence's token; returns the ids to feed next. */
  const take = (tokens: ArrayLike<number>): Int32Array =>
    Int32Array.from(prompts, (_, b) => {
      if (done[b]) return stopTokens[0] ?? 0;
      const token = tokens[b];
      out[b].push(token);
      onToken?.(token, b);
      if (stopTokens.includes(token) || out[b].length >= maxNewTokens) done[b] = true;
      return token;
    });
  const sampleRows = async (logits: Tensor): Promise<number[]> => {
    const rows = await logits.toFloat32();
    return prompts.map((_, b) => sample(rows.subarray(b * V, (b + 1) * V)));
  };
  try {
    const next = done.every(Boolean) ? null : take(await sampleRows(first));
    if (next && !done.every(Boolean)) {
      decoder.feed(next);
      if (greedy) {
        // One step ahead: the device computes step t+1 while the host reads step t's tokens.
        let pending = decoder.argmax();
        while (!done.every(Boolean)) {
          decoder.advance();
          const tokens = await pending;
          pending = decoder.argmax();
          take(tokens);
        }
        await pending;
      } else {
        while (!done.every(Boolean)) {
          const next = take(await sampleRows(decoder.logits));
          if (!done.every(Boolean)) decoder.feed(next);
        }
      }
    }
  } finally {
    first.dispose();
    decoder.dispose();
  }
  return out;
}

/** Streams the new tokens of one prompt as they are produced. */
export async function* streamTokens(model: MambaLM, promptIds: readonly number[], opts: GenerateOptions = {}): AsyncGenerator<number> {
  const queue: number[] = [];
  let finished = false;
  let wake: (() => void) | null = null;
  let failure: unknown = null;
  const run = generate(model, [promptIds], {
    ...opts,
    onToken: (t, b) => {
      queue.push(t);
      opts.onToken?.(t, b);
      wake?.();
    },
  }).then(
    () => void (finished = true),
    (e) => void ((failure = e), (finished = true)),
  ).finally(() => wake?.());
  while (true) {
    if (queue.length > 0) {
      yield queue.shift()!;
      continue;
    }
    if (finished) break;
    await new Promise<void>((r) => (wake = r));
    wake = null;
  }
  await run;
  if (failure) throw failure;
}

function checkIds(model: MambaLM, ids: readonly number[]): void {
  if (ids.length === 0) throw new Error('The prompt is empty: give at least one token.');
  const V = model.config.vocabSize;
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= V) {
      throw new Error(`Token id ${id} at position ${i} is outside the vocabulary [0, ${V}).`);
    }
  });
}
