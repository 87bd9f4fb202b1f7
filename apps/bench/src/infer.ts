import { engine, memory, narrow, noGrad, resetPeak, tensor, tidy, type Tensor } from '@mamba-ts/tensor';
import type { MambaLM } from '@mamba-ts/ssm';
import { summarize, type Summary } from './stats.js';

export interface InferResult {
  mode: 'prefill' | 'decode';
  batchSize: number;
  /** Tokens per measured call: B·L for prefill, B per decode step. */
  tokensPerCall: number;
  tokensPerSecond: Summary;
  peakBytes: number;
}

function randomIds(batch: number, length: number, vocab: number, seed: number): Int32Array {
  let s = seed >>> 0 || 1;
  return Int32Array.from({ length: batch * length }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % vocab;
  });
}

export { randomIds };

/** Prefill throughput: the parallel forward over (B, L) tokens, no gradients, logits of the last position. */
export async function benchPrefill(model: MambaLM, batch: number, length: number, repeats: number, seed: number): Promise<InferResult> {
  const ids = tensor(randomIds(batch, length, model.config.vocabSize, seed), [batch, length], 'i32');
  const rates: number[] = [];
  let peak = 0;
  for (let r = 0; r <= repeats; r++) {
    resetPeak();
    const t0 = performance.now();
    const last = noGrad(() =>
      tidy(() => {
        const { hidden } = model.hidden(ids);
        return model.logits(narrow(hidden, 1, length - 1, 1));
      }),
    );
    await last.data();
    const seconds = (performance.now() - t0) / 1000;
    last.dispose();
    peak = Math.max(peak, memory().peakBytes);
    if (r > 0) rates.push((batch * length) / seconds); // the first call warms up
  }
  ids.dispose();
  return { mode: 'prefill', batchSize: batch, tokensPerCall: batch * length, tokensPerSecond: summarize(rates), peakBytes: peak };
}

/** Decode throughput: the recurrent step, one token per sequence per call, logits read back each step. */
export async function benchDecode(model: MambaLM, batch: number, tokens: number, seed: number): Promise<InferResult> {
  const vocab = model.config.vocabSize;
  let state = model.emptyState(batch).keep();
  const rates: number[] = [];
  let peak = 0;
  resetPeak();
  const ids = randomIds(batch, tokens + 1, vocab, seed);
  for (let t = 0; t <= tokens; t++) {
    const t0 = performance.now();
    const { logits, next } = noGrad(() =>
      tidy(() => {
        const r = model.step(tensor(ids.subarray(t * batch, (t + 1) * batch), [batch], 'i32'), state);
        r.state.keep();
        return { logits: r.logits as Tensor, next: r.state };
      }),
    );
    await logits.data();
    const seconds = (performance.now() - t0) / 1000;
    logits.dispose();
    state.dispose();
    state = next;
    if (t > 0) rates.push(batch / seconds);
  }
  peak = memory().peakBytes;
  state.dispose();
  await engine().sync();
  return { mode: 'decode', batchSize: batch, tokensPerCall: batch, tokensPerSecond: summarize(rates), peakBytes: peak };
}
