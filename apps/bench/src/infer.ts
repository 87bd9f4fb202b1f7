import { memory, narrow, noGrad, resetPeak, tensor, tidy, type DType } from '@mamba-ts/tensor';
import { Decoder, type MambaLM } from '@mamba-ts/ssm';
import { summarize, type Summary } from './stats.js';

export interface InferResult {
  mode: 'prefill' | 'decode';
  batchSize: number;
  /** Tokens per measured call: B·L for prefill, B per decode step. */
  tokensPerCall: number;
  tokensPerSecond: Summary;
  /** All timed tokens over the whole timed run: for a pipelined decode loop, steadier than the per-step intervals. */
  wholeRunTokensPerSecond: number;
  peakBytes: number;
  /** Decode: the compute dtype, whether the step ran as a replayed graph and with the fused decode kernels. */
  dtype?: DType;
  graph?: boolean;
  fused?: boolean;
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
  let timedSeconds = 0;
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
    if (r > 0) {
      // the first call warms up
      rates.push((batch * length) / seconds);
      timedSeconds += seconds;
    }
  }
  ids.dispose();
  return {
    mode: 'prefill', batchSize: batch, tokensPerCall: batch * length, tokensPerSecond: summarize(rates),
    wholeRunTokensPerSecond: (batch * length * repeats) / timedSeconds, peakBytes: peak,
  };
}

/**
 * Greedy decoding throughput in `dtype` (default bf16), as a streaming generator runs it: a Decoder (one replayed
 * graph per token where the backend can capture, the argmax taken on the device and fed back) advances `tokens`
 * times and every step's tokens are read back to the host, one step behind the device (the read of step t overlaps
 * step t+1). Rates are tokens per interval between consecutive reads, and all of them over the whole timed run; the
 * first step (graph capture) is not timed.
 */
export async function benchDecode(model: MambaLM, batch: number, tokens: number, seed: number, dtype: DType = 'bf16'): Promise<InferResult> {
  const previous = model.computeDType;
  model.computeDType = dtype;
  resetPeak();
  const decoder = new Decoder(model, batch);
  try {
    decoder.feed(randomIds(batch, 1, model.config.vocabSize, seed));
    await decoder.argmax();
    decoder.advance();
    let pending = decoder.argmax();
    const rates: number[] = [];
    const start = performance.now();
    let last = start;
    for (let t = 1; t < tokens; t++) {
      decoder.advance();
      await pending;
      pending = decoder.argmax();
      const now = performance.now();
      rates.push(batch / ((now - last) / 1000));
      last = now;
    }
    await pending;
    return {
      mode: 'decode', batchSize: batch, tokensPerCall: batch, tokensPerSecond: summarize(rates),
      wholeRunTokensPerSecond: (batch * rates.length) / ((last - start) / 1000), peakBytes: memory().peakBytes,
      dtype, graph: decoder.captured, fused: decoder.fused,
    };
  } finally {
    decoder.dispose();
    model.computeDType = previous;
  }
}
