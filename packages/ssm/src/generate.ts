import { checkSamplingOptions, concat, createSampler, engine, narrow, reshape, tensor, type SamplingOptions, type Tensor } from '@mamba-ts/tensor';
import type { MambaLM } from './model.js';
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
 * then all sequences advance together through the recurrent step. Returns the new ids of each prompt.
 */
export async function generate(model: MambaLM, prompts: readonly (readonly number[])[], opts: GenerateOptions = {}): Promise<number[][]> {
  const { maxNewTokens = 32, stopTokens = [model.config.eosTokenId], onToken } = opts;
  checkSamplingOptions(opts);
  if (prompts.length === 0) return [];
  const sample = createSampler(opts);
  const V = model.config.vocabSize;

  const starts = prompts.map((p) => prefill(model, p));
  let state = MambaState.concat(starts.map((s) => s.state));
  let logits = engine().tidy(() => reshape(concat(starts.map((s) => s.logits), 0), [prompts.length, V]));
  logits.keep();
  for (const s of starts) {
    s.state.dispose();
    s.logits.dispose();
  }

  const out: number[][] = prompts.map(() => []);
  const done = prompts.map(() => maxNewTokens <= 0);
  try {
    while (!done.every(Boolean)) {
      const rows = await logits.toFloat32();
      const next = prompts.map((_, b) => {
        if (done[b]) return stopTokens[0] ?? 0;
        const token = sample(rows.subarray(b * V, (b + 1) * V));
        out[b].push(token);
        onToken?.(token, b);
        if (stopTokens.includes(token) || out[b].length >= maxNewTokens) done[b] = true;
        return token;
      });
      if (done.every(Boolean)) break;
      const stepped = engine().noGrad(() =>
        engine().tidy(() => {
          const r = model.step(tensor(Int32Array.from(next), [next.length], 'i32'), state);
          r.state.keep();
          return r;
        }),
      );
      state.dispose();
      logits.dispose();
      state = stepped.state;
      logits = stepped.logits.keep();
    }
  } finally {
    state.dispose();
    logits.dispose();
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
