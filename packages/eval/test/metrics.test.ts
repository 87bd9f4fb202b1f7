import { describe, expect, it } from 'vitest';
import { argmax, bootstrapStderr, mean, meanStderr, multipleChoiceMetrics, perplexity, pooledStderr, weightedMean } from '@mamba-ts/eval';

// Expected values: CPython 3.11.7 running the harness's algorithms (mean, sample_stddev, perplexity, the chunked
// Random(i) bootstrap, pooled_sample_stderr, aggregate_subtask_metrics).
describe('metrics', () => {
  it('mean and its sample standard error', () => {
    const acc = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1];
    expect(mean(acc)).toBe(0.6);
    expect(meanStderr(acc)).toBe(0.16329931618554522);
  });

  it('perplexity is exp(−mean ll) over documents', () => {
    expect(perplexity([-1, -2, -3, -4, -5])).toBe(20.085536923187668);
  });

  it('deterministic bootstrap stderr, as the harness computes it', () => {
    expect(bootstrapStderr(perplexity, [-1, -2, -3, -4, -5], 1000)).toBe(18.12217559155873);
    expect(bootstrapStderr(perplexity, [-2.5, -0.1, -7, -3.3], 2500)).toBe(90.76978114194792);
    expect(bootstrapStderr(perplexity, [-1, -2, -3, -4, -5], 100000)).toBe(16.680682154605307);
  });

  it('group aggregation: size-weighted mean and pooled stderr', () => {
    expect(weightedMean([0.3, 0.5, 0.25], [10, 30, 7])).toBe(0.42021276595744683);
    expect(pooledStderr([0.05, 0.1, 0.02], [10, 30, 7])).toBe(0.06575627585495811);
  });

  it('argmax ties go to the first index; acc_norm divides by code points of the choice', () => {
    expect(argmax([-1, -0.5, -0.5])).toBe(1);
    // acc picks choice 0 (-4 > -6); per character: -4/2 = -2 vs -6/6 = -1 → acc_norm picks choice 1.
    expect(multipleChoiceMetrics([-4, -6], ['ab', 'abcdef'], 1)).toEqual({ acc: 0, acc_norm: 1 });
    // '😀😀' is 2 code points (4 UTF-16 units): -3/2 = -1.5 beats -8/4 = -2.
    expect(multipleChoiceMetrics([-3, -8], ['😀😀', 'abcd'], 0)).toEqual({ acc: 1, acc_norm: 1 });
  });
});
