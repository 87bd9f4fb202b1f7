import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildTaskRequests, formatMarkdown, getTask, runEval, type EvalResults } from '@mamba-ts/eval';
import { bruteForceLoglikelihood, makeBigramModel } from './helpers/fake-model.js';

const dataDir = fileURLToPath(new URL('./data', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'eval-scoring-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const TASKS = ['lambada_openai', 'hellaswag', 'piqa', 'arc_easy', 'arc_challenge', 'winogrande', 'openbookqa', 'mmlu_anatomy', 'mmlu_formal_logic'];

interface Sample {
  doc_id: number;
  doc: Record<string, unknown>;
  target: unknown;
  arguments: [string, string][];
  resps: [[number, boolean]][];
  filtered_resps: [number, boolean][];
  acc?: number;
  acc_norm?: number;
  perplexity?: number;
}

function readSamples(dir: string, task: string): Sample[] {
  return readFileSync(join(dir, `${task}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Sample);
}

/** Independent per-document metrics from brute-force log-likelihoods. */
function bruteMetrics(task: string, args: [string, string][], maxLength: number) {
  const scored = args.map(([c, x]) => bruteForceLoglikelihood(c, x, maxLength));
  if (task === 'lambada_openai') return { perplexity: scored[0].ll, acc: scored[0].greedy ? 1 : 0 };
  const lls = scored.map((s) => s.ll);
  const first = (xs: number[]) => xs.indexOf(Math.max(...xs));
  return { lls, pred: first(lls), predNorm: first(lls.map((ll, i) => ll / [...args[i][1].slice(1)].length)) };
}

function sampleStderr(xs: number[]): number {
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1)) / Math.sqrt(xs.length);
}

describe.each([0, 2])('runEval on a bigram fixture model, %i-shot, equals brute force', (shots) => {
  const logDir = join(tmp, `samples-${shots}`);
  let results: EvalResults;

  it('runs all tasks', async () => {
    const { model } = makeBigramModel();
    results = await runEval({ model, tasks: TASKS, shots, dataDir, logSamplesDir: logDir, bootstrapIters: 1000 });
    expect(Object.keys(results.results)).toEqual([...TASKS].sort());
  });

  it.each(TASKS)('%s: logged requests, responses and metrics match the brute-force reference', (task) => {
    const samples = readSamples(logDir, task);
    const expectedRequests = buildTaskRequests(getTask(task), dataDir, shots);
    expect(samples.map((s) => s.arguments)).toEqual(expectedRequests.map((d) => d.requests.map((r) => [r.context, r.continuation])));
    const entry = results.results[task];
    const accs: number[] = [];
    const lls: number[] = [];
    for (const s of samples) {
      s.arguments.forEach(([c, x], i) => {
        const ref = bruteForceLoglikelihood(c, x, 2048);
        expect(s.filtered_resps[i][0]).toBeCloseTo(ref.ll, 10);
        expect(s.filtered_resps[i][1]).toBe(ref.greedy);
        expect(s.resps[i]).toEqual([s.filtered_resps[i]]);
      });
      const ref = bruteMetrics(task, s.arguments, 2048);
      if (task === 'lambada_openai') {
        expect(s.perplexity).toBeCloseTo(ref.perplexity!, 10);
        expect(s.acc).toBe(ref.acc);
        expect(s.target).toBe(s.arguments[0][1]);
        lls.push(ref.perplexity!);
        accs.push(ref.acc!);
      } else {
        const gold = task === 'winogrande' ? ({ '1': 0, '2': 1 } as Record<string, number>)[s.doc.answer as string] : (s.target as number);
        expect(s.acc).toBe(ref.pred === gold ? 1 : 0);
        if (task === 'winogrande' || task.startsWith('mmlu_')) expect(s.acc_norm).toBeUndefined();
        else expect(s.acc_norm).toBe(ref.predNorm === gold ? 1 : 0);
        accs.push(ref.pred === gold ? 1 : 0);
      }
    }
    expect(entry['acc,none']).toBeCloseTo(accs.reduce((a, b) => a + b, 0) / accs.length, 12);
    if (accs.length > 1) expect(entry['acc_stderr,none']).toBeCloseTo(sampleStderr(accs), 12);
    else expect(entry['acc_stderr,none']).toBe('N/A');
    if (task === 'lambada_openai') {
      expect(entry['perplexity,none']).toBeCloseTo(Math.exp(-lls.reduce((a, b) => a + b, 0) / lls.length), 8);
      expect(typeof entry['perplexity_stderr,none']).toBe('number');
    }
    expect(results['n-shot'][task]).toBe(shots);
    expect(results.configs[task].num_fewshot).toBe(shots);
  });

  it('results JSON has the harness shape and the Markdown table lists every metric', () => {
    expect(results.results.arc_easy.alias).toBe('arc_easy');
    expect(Object.keys(results.results.arc_easy)).toEqual(['acc,none', 'acc_stderr,none', 'acc_norm,none', 'acc_norm_stderr,none', 'alias']);
    expect(Object.keys(results.results.lambada_openai)).toEqual(['perplexity,none', 'perplexity_stderr,none', 'acc,none', 'acc_stderr,none', 'alias']);
    expect(results.results.mmlu_anatomy.alias).toBe('anatomy');
    expect(results.versions).toMatchObject({ arc_easy: 1, mmlu_anatomy: 0 });
    expect(results.config.bootstrap_iters).toBe(1000);
    expect(results.configs.mmlu_anatomy.description).toBe('The following are multiple choice questions (with answers) about anatomy.\n\n');
    expect(results.truncation.hellaswag).toEqual({ requests: 12, truncated: 0 });
    const md = formatMarkdown(results);
    const acc = (results.results.arc_easy['acc,none'] as number).toFixed(4);
    expect(md).toMatch(new RegExp(`^\\|arc_easy +\\| +1\\|none +\\| +${shots}\\|acc +\\| *${acc}\\|±  \\|`, 'm'));
    expect(md.split('\n').filter((l) => /\|acc_norm /.test(l))).toHaveLength(5);
    expect(md).toContain('|perplexity');
  });
});

describe('left truncation to the model max length', () => {
  it('keeps the last maxLength + 1 tokens, scores like the brute force and counts truncated requests', async () => {
    const maxLength = 12;
    const { model } = makeBigramModel({ maxLength });
    const logDir = join(tmp, 'truncated');
    const results = await runEval({ model, tasks: ['arc_easy', 'lambada_openai'], shots: 2, dataDir, logSamplesDir: logDir, bootstrapIters: 0 });
    for (const task of ['arc_easy', 'lambada_openai']) {
      const samples = readSamples(logDir, task);
      let truncated = 0;
      for (const s of samples) {
        s.arguments.forEach(([c, x], i) => {
          const ref = bruteForceLoglikelihood(c, x, maxLength);
          expect(s.filtered_resps[i][0]).toBeCloseTo(ref.ll, 10);
          expect(s.filtered_resps[i][1]).toBe(ref.greedy);
          if (bruteForceLoglikelihood(c, x, 1e9).ll !== ref.ll) truncated++;
        });
      }
      expect(truncated).toBeGreaterThan(0);
      expect(results.truncation[task].truncated).toBeGreaterThanOrEqual(truncated);
      expect(results.truncation[task].truncated).toBe(results.truncation[task].requests); // all 2-shot prompts exceed 12 tokens
    }
    // bootstrapIters = 0 drops every stderr, as the harness does.
    expect(Object.keys(results.results.arc_easy)).toEqual(['acc,none', 'acc_norm,none', 'alias']);
    expect(formatMarkdown(results)).toMatch(/Left-truncated to the model max length: arc_easy 12 of 12 requests, lambada_openai 6 of 6 requests\./);
  });
});
