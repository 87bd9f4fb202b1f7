import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { fromPretrained } from '@mamba-ts/ssm';
import { TransformerLM } from '@mamba-ts/transformer';
import { mambaLanguageModel, runEval, transformerLanguageModel, type LoglikelihoodRequest } from '@mamba-ts/eval';

const fixture = (rel: string) => fileURLToPath(new URL(`../../${rel}`, import.meta.url));
const DATA = fileURLToPath(new URL('./data', import.meta.url));

/** log P(continuation | context) by one full forward pass and a float64 log-softmax: the obviously-correct way. */
function bruteForce(logitsOf: (ids: number[]) => Float32Array, V: number, ctx: number[], cont: number[]): { logprob: number; isGreedy: boolean } {
  const all = [...ctx, ...cont];
  const logits = logitsOf(all);
  let logprob = 0;
  let isGreedy = true;
  cont.forEach((tok, j) => {
    const row = logits.subarray((ctx.length - 1 + j) * V, (ctx.length + j) * V);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    logprob += row[tok] - lse;
    if (row.indexOf(max) !== tok) isGreedy = false;
  });
  return { logprob, isGreedy };
}

const requests: LoglikelihoodRequest[] = [
  { context: 'Question: What is the capital of France?\nAnswer:', continuation: ' Paris' },
  { context: 'Question: What is the capital of France?\nAnswer:', continuation: ' the city of lights' },
  { context: 'The quick brown fox', continuation: ' jumps over the lazy dog' },
  { context: 'Hello ', continuation: 'world' },
];

describe('model scorers equal a brute-force computation', () => {
  test('Mamba: shared context state reused for every continuation', async () => {
    const { model, tokenizer } = await fromPretrained(fixture('ssm/test/fixtures/mamba-tiny'));
    const lm = mambaLanguageModel(model, tokenizer!);
    const got = await lm.loglikelihood(requests);
    const V = model.config.vocabSize;
    const logitsOf = (ids: number[]) => T.tidy(() => model.forward(T.tensor(ids, [1, ids.length], 'i32')).logits).toFloat32Sync();
    requests.forEach((r, i) => {
      const { contextIds, continuationIds } = lm.prepare([r])[0];
      const want = bruteForce(logitsOf, V, contextIds, continuationIds);
      expect(got[i].logprob).toBeCloseTo(want.logprob, 4);
      expect(got[i].isGreedy).toBe(want.isGreedy);
    });
    model.dispose();
  });

  test('GPT-NeoX baseline', async () => {
    const lm = await TransformerLM.fromPretrained(fixture('transformer/test/fixtures/neox-tiny'));
    const scorer = transformerLanguageModel(lm);
    const got = await scorer.loglikelihood(requests);
    const V = lm.config.vocabSize;
    const logitsOf = (ids: number[]) => T.tidy(() => lm.forward(T.tensor(ids, [1, ids.length], 'i32'))).toFloat32Sync();
    requests.forEach((r, i) => {
      const { contextIds, continuationIds } = scorer.prepare([r])[0];
      const want = bruteForce(logitsOf, V, contextIds, continuationIds);
      expect(got[i].logprob).toBeCloseTo(want.logprob, 4);
    });
    lm.dispose();
  });

  test('an end-to-end harness run on the fixture model and the sample data', async () => {
    const { model, tokenizer } = await fromPretrained(fixture('ssm/test/fixtures/mamba-tiny'));
    const results = await runEval({ model: mambaLanguageModel(model, tokenizer!), tasks: ['piqa', 'lambada_openai'], shots: 1, dataDir: DATA, bootstrapIters: 100 });
    expect(results.results.piqa['acc,none']).toBeGreaterThanOrEqual(0);
    expect(results.results.piqa['acc,none']).toBeLessThanOrEqual(1);
    expect(Number.isFinite(results.results.lambada_openai['perplexity,none'] as number)).toBe(true);
    expect(results['n-shot'].piqa).toBe(1);
    model.dispose();
  }, 60_000);
});
