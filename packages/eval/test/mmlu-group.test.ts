import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MMLU_CATEGORIES, MMLU_SUBJECTS, runEval, type EvalResults } from '@mamba-ts/eval';
import { makeBigramModel } from './helpers/fake-model.js';

// Writes all 57 subjects with 2–4 test rows each (hand-made, deterministic) so that the group sizes differ.
const subjects = Object.keys(MMLU_SUBJECTS);
const sizeOf = (i: number) => 2 + (i % 3);
let dataDir: string;
let results: EvalResults;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'eval-mmlu-'));
  subjects.forEach((subject, i) => {
    const dir = join(dataDir, `mmlu_${subject}`);
    mkdirSync(dir);
    const row = (j: number) =>
      JSON.stringify({
        question: `Question ${j} about ${subject.replace(/_/g, ' ')}: which option is number ${(i + j) % 4}?`,
        subject,
        choices: ['zero', 'one', 'two', 'three'],
        answer: (i + j) % 4,
      });
    writeFileSync(join(dir, 'test.jsonl'), Array.from({ length: sizeOf(i) }, (_, j) => row(j)).join('\n') + '\n');
    writeFileSync(join(dir, 'dev.jsonl'), Array.from({ length: 5 }, (_, j) => row(100 + j)).join('\n') + '\n');
  });
  const { model } = makeBigramModel({ batchSize: 64 });
  results = await runEval({ model, tasks: ['mmlu', 'mmlu_stem', 'mmlu_anatomy'], shots: 1, dataDir, bootstrapIters: 100 });
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const acc = (name: string) => results.results[name]['acc,none'] as number;
const se = (name: string) => results.results[name]['acc_stderr,none'] as number;

function pooled(ses: number[], ns: number[]): number {
  const total = ns.reduce((a, b) => a + b, 0);
  return Math.sqrt(ns.reduce((s, n, i) => s + (n - 1) * ses[i] ** 2 * n, 0) / (total - ns.length) / total);
}

describe('the mmlu group', () => {
  it('lists the group, then each category and its subjects, sorted, with indented aliases', () => {
    const keys = Object.keys(results.results);
    expect(keys).toHaveLength(1 + 4 + 57);
    expect(keys[0]).toBe('mmlu');
    const categories = [...MMLU_CATEGORIES].sort();
    let at = 1;
    for (const c of categories) {
      expect(keys[at]).toBe(`mmlu_${c}`);
      const members = subjects.filter((s) => MMLU_SUBJECTS[s] === c).sort();
      expect(keys.slice(at + 1, at + 1 + members.length)).toEqual(members.map((s) => `mmlu_${s}`));
      at += 1 + members.length;
    }
    expect(results.results.mmlu.alias).toBe('mmlu');
    expect(results.results.mmlu_stem.alias).toBe(' - stem');
    expect(results.results.mmlu_anatomy.alias).toBe('  - anatomy');
    expect(Object.keys(results.groups!)).toEqual(['mmlu', ...categories.map((c) => `mmlu_${c}`)]);
    expect(results.group_subtasks.mmlu).toEqual(categories.map((c) => `mmlu_${c}`));
    expect(results['n-shot']).toMatchObject({ mmlu: 0, mmlu_stem: 0, mmlu_anatomy: 1 });
    expect(results.versions).toMatchObject({ mmlu: 'N/A', mmlu_anatomy: 0 });
  });

  it('category = size-weighted mean of subjects with pooled stderr; mmlu pools the categories', () => {
    const catSizes: number[] = [];
    const catSes: number[] = [];
    let allCorrect = 0;
    let allDocs = 0;
    for (const c of MMLU_CATEGORIES) {
      const members = subjects.filter((s) => MMLU_SUBJECTS[s] === c);
      const ns = members.map((s) => sizeOf(subjects.indexOf(s)));
      const accs = members.map((s) => acc(`mmlu_${s}`));
      const n = ns.reduce((a, b) => a + b, 0);
      expect(acc(`mmlu_${c}`)).toBeCloseTo(accs.reduce((s, a, i) => s + a * ns[i], 0) / n, 12);
      expect(se(`mmlu_${c}`)).toBeCloseTo(pooled(members.map((s) => se(`mmlu_${s}`)), ns), 12);
      catSizes.push(n);
      catSes.push(se(`mmlu_${c}`));
      allCorrect += accs.reduce((s, a, i) => s + a * ns[i], 0);
      allDocs += n;
    }
    expect(allDocs).toBe(subjects.reduce((s, _, i) => s + sizeOf(i), 0));
    expect(acc('mmlu')).toBeCloseTo(allCorrect / allDocs, 12);
    expect(se('mmlu')).toBeCloseTo(pooled(catSes, catSizes), 12);
    expect(results.groups!.mmlu['acc,none']).toBe(acc('mmlu'));
  });
});
