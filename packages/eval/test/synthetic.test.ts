import { describe, expect, it } from 'vitest';
import {
  associativeRecallTask,
  evaluateSynthetic,
  formatKShot,
  inductionTask,
  syntheticRequests,
  type LanguageModel,
  type LoglikelihoodRequest,
} from '@mamba-ts/eval';

// Expected texts from CPython 3.11 running the same draws:
// r = Random(0); pk = r.sample(letters, 3); b = {k: r.choice(digits) for k in pk}; q = r.sample(pk, 2)
// → 'm 0 y 4 n 8 : y 4 n 8', then 'z 5 j 9 p 3 : p 3 z 5'.
// r = Random(5); [r.choice(letters) for _ in range(4)] → t i x l, then z w x u.
describe('associative recall', () => {
  it('is generated with the Python-compatible RNG', () => {
    const task = associativeRecallTask({ seed: 0, numExamples: 2, numPairs: 3, numQueries: 2 });
    expect(task.examples.map((e) => e.text)).toEqual(['m 0 y 4 n 8 : y 4 n 8', 'z 5 j 9 p 3 : p 3 z 5']);
    expect(task.examples[0].queries).toEqual([
      { prefix: 'm 0 y 4 n 8 : y', answer: '4' },
      { prefix: 'm 0 y 4 n 8 : y 4 n', answer: '8' },
    ]);
    expect(task.candidates).toEqual('0123456789'.split(''));
  });

  it('rejects impossible sizes', () => {
    expect(() => associativeRecallTask({ seed: 0, numExamples: 1, numPairs: 27, numQueries: 1 })).toThrow(/numPairs 27 exceeds the 26 distinct keys/);
    expect(() => associativeRecallTask({ seed: 0, numExamples: 1, numPairs: 2, numQueries: 3 })).toThrow(/numQueries 3 exceeds numPairs 2/);
  });
});

describe('induction', () => {
  it('copies a random segment; every copied symbol is a query', () => {
    const task = inductionTask({ seed: 5, numExamples: 2, length: 4 });
    expect(task.examples[0].text).toBe('t i x l | t i x l');
    expect(task.examples[1].text).toBe('z w x u | z w x u');
    expect(task.examples[0].queries.map((q) => [q.prefix, q.answer])).toEqual([
      ['t i x l |', 't'],
      ['t i x l | t', 'i'],
      ['t i x l | t i', 'x'],
      ['t i x l | t i x', 'l'],
    ]);
  });
});

/** Knows associative recall: reads the binding from the context's pairs. */
function recallOracle(): LanguageModel {
  const answer = (context: string) => {
    const lastLine = context.split('\n').pop()!;
    const [pairs, queries] = lastLine.split(' : ');
    const tokens = pairs.split(' ');
    const key = (queries ?? '').split(' ').pop()!;
    const at = tokens.findIndex((t, i) => i % 2 === 0 && t === key);
    return ' ' + tokens[at + 1];
  };
  return {
    loglikelihood: async (requests: readonly LoglikelihoodRequest[]) =>
      requests.map((r) => {
        const right = r.continuation === answer(r.context);
        return { logprob: right ? -0.1 : -5, isGreedy: right };
      }),
  };
}

describe('evaluation', () => {
  const task = associativeRecallTask({ seed: 1, numExamples: 6, numPairs: 4, numQueries: 3 });
  const demos = associativeRecallTask({ seed: 2, numExamples: 5, numPairs: 4, numQueries: 3 }).examples;

  it('k-shot prefix: demos joined by the separator', () => {
    expect(formatKShot(demos.slice(0, 2))).toBe(`${demos[0].text}\n${demos[1].text}\n`);
    expect(formatKShot([])).toBe('');
    const perQuery = syntheticRequests(task, { shots: 2, demoPool: demos, seed: 7 });
    expect(perQuery).toHaveLength(18);
    const prefix = perQuery[0][0].context.slice(0, -task.examples[0].queries[0].prefix.length);
    expect(prefix.split('\n')).toHaveLength(3);
    expect(prefix.split('\n').slice(0, 2).every((line) => demos.some((d) => d.text === line))).toBe(true);
    expect(() => syntheticRequests(task, { shots: 6, demoPool: demos })).toThrow(/6-shot needs at least 6 demonstrations, the demo pool has 5/);
  });

  it('an oracle scores 1; a model that always says "0" scores the share of "0" answers', async () => {
    const oracle = await evaluateSynthetic(recallOracle(), task, { shots: 2, demoPool: demos, scoreChoices: true });
    expect(oracle).toEqual({ task: 'associative_recall', shots: 2, queries: 18, accuracy: 1, choiceAccuracy: 1 });
    const zeros: LanguageModel = {
      loglikelihood: async (rs) => rs.map((r) => ({ logprob: r.continuation === ' 0' ? -1 : -2, isGreedy: r.continuation === ' 0' })),
    };
    const share = task.examples.flatMap((e) => e.queries).filter((q) => q.answer === '0').length / 18;
    const result = await evaluateSynthetic(zeros, task, { shots: 0, scoreChoices: true });
    expect(result.accuracy).toBe(share);
    expect(result.choiceAccuracy).toBe(share);
  });
});
