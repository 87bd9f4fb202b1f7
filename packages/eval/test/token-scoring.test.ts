import { describe, expect, it } from 'vitest';
import {
  TokenScoringModel,
  encodePair,
  groupByContext,
  perPairScorer,
  scoreFromLogits,
  truncateLeft,
  type ContextGroup,
} from '@mamba-ts/eval';
import { EOT, makeBigramModel, tokenize } from './helpers/fake-model.js';

const tok = { tokenize, maxLength: 2048, eotTokenId: EOT };
const id = (piece: string) => {
  const ids = tokenize(piece);
  expect(ids).toHaveLength(1);
  return ids[0];
};

describe('encodePair (the harness _encode_pair)', () => {
  it('moves trailing context whitespace onto the continuation', () => {
    expect(encodePair(tok, 'Hello ', 'world')).toEqual({ contextIds: [id('Hello')], continuationIds: [id(' world')] });
    expect(encodePair(tok, 'Answer:\n', 'B')).toEqual({ contextIds: [id('Answer'), id(':')], continuationIds: [id('\n'), id('B')] });
  });

  it('splits the joint encoding at the context length, even when the pieces merged across the boundary', () => {
    // "abc1" → ["abc", "1"], "ab" → ["ab"]: the model is fed ["ab", "1"], not the joint encoding.
    expect(encodePair(tok, 'ab', 'c1')).toEqual({ contextIds: [id('ab')], continuationIds: [id('1')] });
    // "foobar" is one piece: the continuation encodes to nothing.
    expect(encodePair(tok, 'foo', 'bar')).toEqual({ contextIds: [id('foo')], continuationIds: [] });
  });

  it('an empty context becomes [EOT] and the continuation is encoded alone', () => {
    expect(encodePair(tok, '', ' word')).toEqual({ contextIds: [EOT], continuationIds: [id(' word')] });
  });
});

describe('truncateLeft', () => {
  it('keeps the last maxLength + 1 tokens of context ++ continuation', () => {
    const pair = { contextIds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], continuationIds: [11, 12] };
    expect(truncateLeft(pair, 5)).toEqual({ contextIds: [7, 8, 9, 10], continuationIds: [11, 12], truncated: true });
    expect(truncateLeft(pair, 11)).toEqual({ ...pair, truncated: false });
    expect(truncateLeft(pair, 10)).toEqual({ contextIds: [2, 3, 4, 5, 6, 7, 8, 9, 10], continuationIds: [11, 12], truncated: true });
  });

  it('rejects a continuation longer than the max length', () => {
    expect(() => truncateLeft({ contextIds: [1], continuationIds: [2, 3, 4] }, 2)).toThrow(/continuation of 3 tokens does not fit the model's max length 2/);
  });
});

describe('scoreFromLogits', () => {
  it('sums log-softmax at the continuation rows; greedy needs every token to be the first argmax', () => {
    const rows = [0, Math.log(3), 1, 1]; // row 0: p = [1/4, 3/4]; row 1: a tie
    expect(scoreFromLogits(rows, 2, 0, [1]).logprob).toBeCloseTo(Math.log(3 / 4), 14);
    expect(scoreFromLogits(rows, 2, 0, [1]).isGreedy).toBe(true);
    expect(scoreFromLogits(rows, 2, 0, [0]).isGreedy).toBe(false);
    const both = scoreFromLogits(rows, 2, 0, [1, 0]);
    expect(both.logprob).toBeCloseTo(Math.log(3 / 4) + Math.log(1 / 2), 14);
    expect(both.isGreedy).toBe(true); // the tie goes to index 0
    expect(scoreFromLogits(rows, 2, 0, [1, 1]).isGreedy).toBe(false);
    expect(scoreFromLogits(rows, 2, 1, [0]).logprob).toBeCloseTo(Math.log(1 / 2), 14);
  });
});

describe('TokenScoringModel', () => {
  it('shares one context across its continuations, merges duplicates, and answers in request order', async () => {
    const { model, stats } = makeBigramModel({ batchSize: 2 });
    const ctx = 'Question: which?\nAnswer:';
    const requests = [' A', ' B', ' C', ' D', ' B'].map((continuation) => ({ context: ctx, continuation }));
    requests.push({ context: 'Other context', continuation: ' A' });
    const results = await model.loglikelihood(requests);
    expect(stats.groups).toBe(2);
    expect(stats.continuations).toBe(5); // " B" asked twice, scored once
    expect(results[1]).toEqual(results[4]);
    const single = await makeBigramModel().model.loglikelihood([requests[2]]);
    expect(results[2]).toEqual(single[0]);
  });

  it('orders groups longest first, batches by batchSize and reports progress', async () => {
    const seen: ContextGroup[] = [];
    const progress: number[] = [];
    const model = new TokenScoringModel({
      ...tok,
      batchSize: 2,
      scoreGroups: async (groups) => {
        seen.push(...groups);
        return groups.map((g) => g.continuations.map(() => ({ logprob: -1, isGreedy: false })));
      },
    });
    const requests = ['a', 'a b c d', 'a b', 'a b c'].map((context) => ({ context, continuation: ' z' }));
    const results = await model.loglikelihood(requests, { onProgress: (done) => progress.push(done) });
    expect(seen.map((g) => g.contextIds.length)).toEqual([4, 3, 2, 1]);
    expect(progress).toEqual([2, 4]);
    expect(results.every((r) => r.logprob === -1 && r.truncated === false)).toBe(true);
  });

  it('an empty continuation scores 0 and greedy without reaching the backend', async () => {
    const { model, stats } = makeBigramModel();
    const [r] = await model.loglikelihood([{ context: 'foo', continuation: 'bar' }]);
    expect(r).toEqual({ logprob: 0, isGreedy: true, truncated: false });
    expect(stats.continuations).toBe(0);
  });

  it('groupByContext keys on the truncated context', () => {
    const groups = groupByContext([
      { contextIds: [1, 2], continuationIds: [3], truncated: false },
      { contextIds: [1, 2], continuationIds: [4, 5], truncated: false },
      { contextIds: [2], continuationIds: [3], truncated: true },
    ]);
    expect(groups.map((g) => g.group)).toEqual([
      { contextIds: [1, 2], continuations: [[3], [4, 5]] },
      { contextIds: [2], continuations: [[3]] },
    ]);
    expect(groups[0].requestIndices).toEqual([[0], [1]]);
  });

  it('perPairScorer adapts a per-pair function', async () => {
    const calls: string[] = [];
    const scorer = perPairScorer((c, x) => {
      calls.push(`${c.join(',')}|${x.join(',')}`);
      return { logprob: -x.length, isGreedy: true };
    });
    expect(await scorer([{ contextIds: [1], continuations: [[2], [3, 4]] }])).toEqual([[{ logprob: -1, isGreedy: true }, { logprob: -2, isGreedy: true }]]);
    expect(calls).toEqual(['1|2', '1|3,4']);
  });

  it('rejects bad options', () => {
    const scoreGroups = async () => [];
    expect(() => new TokenScoringModel({ ...tok, batchSize: 0, scoreGroups })).toThrow(/batchSize must be a positive integer/);
    expect(() => new TokenScoringModel({ ...tok, maxLength: 0, scoreGroups })).toThrow(/maxLength must be a positive integer/);
  });
});
