import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compareResults, formatComparisonMarkdown, formatIclMarkdown, iclGains, runEvalSweep, type EvalResults } from '@mamba-ts/eval';
import { makeBigramModel } from './helpers/fake-model.js';

const dataDir = fileURLToPath(new URL('./data', import.meta.url));

/** A minimal results object: task → {metric: value} at k shots. */
function fake(shots: number, scores: Record<string, Record<string, number>>): EvalResults {
  const results: EvalResults['results'] = {};
  const configs: EvalResults['configs'] = {};
  for (const [task, metrics] of Object.entries(scores)) {
    results[task] = { ...Object.fromEntries(Object.entries(metrics).map(([m, v]) => [`${m},none`, v])), alias: task };
    configs[task] = { num_fewshot: shots };
  }
  return { results, configs, group_subtasks: {}, versions: {}, 'n-shot': {}, config: {} as EvalResults['config'], git_hash: null, date: 0, truncation: {} };
}

const mamba = [
  fake(0, { hellaswag: { acc: 0.3, acc_norm: 0.35 }, piqa: { acc: 0.64, acc_norm: 0.6 } }),
  fake(5, { hellaswag: { acc: 0.31, acc_norm: 0.37 }, piqa: { acc: 0.65, acc_norm: 0.7 } }),
];
const pythia = [
  fake(0, { hellaswag: { acc: 0.28, acc_norm: 0.3 }, piqa: { acc: 0.62, acc_norm: 0.6 } }),
  fake(5, { hellaswag: { acc: 0.3, acc_norm: 0.34 }, piqa: { acc: 0.66, acc_norm: 0.6 } }),
];

describe('ICL gain', () => {
  it('per task in its headline metric (hellaswag acc_norm, piqa acc), and averaged', () => {
    const icl = iclGains(mamba);
    expect(icl.shots).toEqual([0, 5]);
    expect(icl.metric).toEqual({ hellaswag: 'acc_norm', piqa: 'acc' });
    expect(icl.gains.hellaswag[5]).toBeCloseTo(0.02, 12);
    expect(icl.gains.piqa[5]).toBeCloseTo(0.01, 12);
    expect(icl.meanGain[5]).toBeCloseTo(0.015, 12);
    expect(icl.meanScore[0]).toBeCloseTo((0.35 + 0.64) / 2, 12);
    expect(formatIclMarkdown(icl)).toContain('|hellaswag|acc_norm|35.00|37.00|+2.00|');
  });

  it('the paper ratio: gain of A over gain of B', () => {
    const cmp = compareResults(mamba, pythia);
    expect(cmp.shots).toEqual([5]);
    expect(cmp.ratio.hellaswag[5]).toBeCloseTo(0.02 / 0.04, 12);
    expect(cmp.ratio.piqa[5]).toBeCloseTo(0.01 / 0.04, 12);
    expect(cmp.meanRatio[5]).toBeCloseTo(0.015 / 0.04, 12);
    expect(cmp.overall.ratio).toBeCloseTo(0.375, 12);
    expect(formatComparisonMarkdown(cmp, { a: 'mamba', b: 'pythia' })).toContain('|overall|5|+1.50|+4.00|37.5%|');
  });

  it('needs a zero-shot result and one result per shot count', () => {
    expect(() => iclGains([mamba[1]])).toThrow(/needs a 0-shot result; got shot counts 5/);
    expect(() => iclGains([mamba[0], mamba[0]])).toThrow(/Two results objects have 0 shots/);
  });

  it('runEvalSweep evaluates every shot count (0 included) and gains equal score differences', async () => {
    const { model } = makeBigramModel();
    const report = await runEvalSweep({ model, tasks: ['arc_easy', 'piqa'], shots: [2, 1], dataDir, bootstrapIters: 0 });
    expect(Object.keys(report.byShot)).toEqual(['0', '1', '2']);
    expect(report.icl.shots).toEqual([0, 1, 2]);
    for (const k of [1, 2]) {
      const arc = report.byShot[String(k)].results.arc_easy['acc,none'] as number;
      expect(report.icl.gains.arc_easy[k]).toBeCloseTo(arc - (report.byShot['0'].results.arc_easy['acc,none'] as number), 12);
    }
    expect(compareResults(report, report).overall.gainA).toBe(compareResults(report, report).overall.gainB);
  });
});
