/**
 * In-context-learning analysis: the gain of k-shot over zero-shot per task and averaged over tasks, and the paper's
 * ratio (one model's gain divided by a reference model's gain, e.g. Mamba over Pythia).
 */
import { runEval, type RunEvalOptions } from './evaluator.js';
import { mean } from './metrics.js';
import { metricValue, type EvalResults } from './results.js';

/** The metric each task is quoted with (Mamba paper convention): acc_norm for these, acc for the rest. */
export const HEADLINE_METRICS: Readonly<Record<string, string>> = {
  hellaswag: 'acc_norm',
  arc_challenge: 'acc_norm',
  openbookqa: 'acc_norm',
};

export function headlineMetric(task: string, overrides: Readonly<Record<string, string>> = {}): string {
  return overrides[task] ?? HEADLINE_METRICS[task] ?? 'acc';
}

/** The few-shot count of a results object (all its tasks share one). */
export function shotCount(results: EvalResults): number {
  const counts = new Set(Object.values(results.configs).map((c) => c.num_fewshot as number));
  if (counts.size !== 1) {
    throw new Error(`A results object must hold one few-shot count, found ${[...counts].join(', ') || 'none'}.`);
  }
  return [...counts][0];
}

/** Top-level rows of a results object: standalone tasks and outermost groups (not indented subtasks). */
function topLevelTasks(results: EvalResults): string[] {
  return Object.entries(results.results)
    .filter(([, entry]) => !(typeof entry.alias === 'string' && entry.alias.startsWith(' ')))
    .map(([name]) => name);
}

export interface IclScores {
  /** Shot counts, ascending; the first is 0. */
  shots: number[];
  tasks: string[];
  metric: Record<string, string>;
  /** score[task][k] in the task's headline metric. */
  scores: Record<string, Record<number, number>>;
  /** gain[task][k] = score(k) − score(0). */
  gains: Record<string, Record<number, number>>;
  meanScore: Record<number, number>;
  meanGain: Record<number, number>;
}

export interface IclOptions {
  /** Task → metric overrides of the headline metric. */
  metrics?: Readonly<Record<string, string>>;
  /** Restrict to these tasks (default: every top-level task present at every shot count). */
  tasks?: readonly string[];
}

/** Per-task and mean scores and gains over zero-shot, from one results object per shot count. */
export function iclGains(resultsByShot: readonly EvalResults[], options: IclOptions = {}): IclScores {
  const byShot = new Map<number, EvalResults>();
  for (const r of resultsByShot) {
    const k = shotCount(r);
    if (byShot.has(k)) throw new Error(`Two results objects have ${k} shots; give one per shot count.`);
    byShot.set(k, r);
  }
  const shots = [...byShot.keys()].sort((a, b) => a - b);
  if (shots[0] !== 0) throw new Error(`The ICL gain needs a 0-shot result; got shot counts ${shots.join(', ')}.`);
  const candidates = options.tasks ?? topLevelTasks(byShot.get(0)!);
  const tasks = candidates.filter((t) => shots.every((k) => metricValue(byShot.get(k)!.results[t], headlineMetric(t, options.metrics)) !== undefined));
  if (tasks.length === 0) throw new Error('No task has its headline metric at every shot count; nothing to compare.');
  const metric = Object.fromEntries(tasks.map((t) => [t, headlineMetric(t, options.metrics)]));
  const scores: IclScores['scores'] = {};
  const gains: IclScores['gains'] = {};
  for (const t of tasks) {
    scores[t] = {};
    gains[t] = {};
    for (const k of shots) {
      scores[t][k] = metricValue(byShot.get(k)!.results[t], metric[t])!;
      gains[t][k] = scores[t][k] - scores[t][0];
    }
  }
  const meanScore: Record<number, number> = {};
  const meanGain: Record<number, number> = {};
  for (const k of shots) {
    meanScore[k] = mean(tasks.map((t) => scores[t][k]));
    meanGain[k] = mean(tasks.map((t) => gains[t][k]));
  }
  return { shots, tasks, metric, scores, gains, meanScore, meanGain };
}

/** A sweep's results: one harness-shaped results object per shot count, and the gains. */
export interface IclReport {
  byShot: Record<string, EvalResults>;
  icl: IclScores;
}

/** Runs `runEval` for each shot count (0 is always included) and computes the ICL gains. */
export async function runEvalSweep(options: Omit<RunEvalOptions, 'shots'> & { shots?: readonly number[]; icl?: IclOptions }): Promise<IclReport> {
  const { shots: requested, icl, ...evalOptions } = options;
  const shots = [...new Set([0, ...(requested ?? [0, 1, 3, 5])])].sort((a, b) => a - b);
  const byShot: Record<string, EvalResults> = {};
  for (const k of shots) byShot[String(k)] = await runEval({ ...evalOptions, shots: k });
  return { byShot, icl: iclGains(Object.values(byShot), icl) };
}

/** Either a sweep report or a list of single-shot results objects. */
export type IclSource = IclReport | readonly EvalResults[];

function toScores(source: IclSource, options: IclOptions): IclScores {
  if (Array.isArray(source)) return iclGains(source as readonly EvalResults[], options);
  const report = source as IclReport;
  return iclGains(Object.values(report.byShot), options);
}

export interface IclComparison {
  /** Shot counts > 0 present on both sides. */
  shots: number[];
  tasks: string[];
  metric: Record<string, string>;
  gainA: Record<string, Record<number, number>>;
  gainB: Record<string, Record<number, number>>;
  /** gainA / gainB per task and k; null when the reference gain is 0. */
  ratio: Record<string, Record<number, number | null>>;
  meanGainA: Record<number, number>;
  meanGainB: Record<number, number>;
  meanRatio: Record<number, number | null>;
  /** Mean over k > 0 of the mean gains, and their ratio: the paper's single number. */
  overall: { gainA: number; gainB: number; ratio: number | null };
}

const safeRatio = (a: number, b: number): number | null => (b === 0 ? null : a / b);

/**
 * The paper's ICL ratio of model A (e.g. Mamba) to reference model B (e.g. Pythia): on the tasks and shot counts
 * both have, gain_A / gain_B per task and k, of the task-mean gains per k, and of the gains averaged over k > 0.
 */
export function compareResults(a: IclSource, b: IclSource, options: IclOptions = {}): IclComparison {
  const sa = toScores(a, options);
  const sb = toScores(b, options);
  const tasks = sa.tasks.filter((t) => sb.tasks.includes(t));
  const shots = sa.shots.filter((k) => k > 0 && sb.shots.includes(k));
  if (tasks.length === 0) throw new Error('The two results share no task; nothing to compare.');
  if (shots.length === 0) throw new Error('The two results share no shot count above 0; nothing to compare.');
  const pick = (s: IclScores) => Object.fromEntries(tasks.map((t) => [t, Object.fromEntries(shots.map((k) => [k, s.gains[t][k]]))]));
  const gainA = pick(sa);
  const gainB = pick(sb);
  const ratio = Object.fromEntries(
    tasks.map((t) => [t, Object.fromEntries(shots.map((k) => [k, safeRatio(gainA[t][k], gainB[t][k])]))]),
  );
  const meanGainA: Record<number, number> = {};
  const meanGainB: Record<number, number> = {};
  const meanRatio: Record<number, number | null> = {};
  for (const k of shots) {
    meanGainA[k] = mean(tasks.map((t) => gainA[t][k]));
    meanGainB[k] = mean(tasks.map((t) => gainB[t][k]));
    meanRatio[k] = safeRatio(meanGainA[k], meanGainB[k]);
  }
  const overallA = mean(shots.map((k) => meanGainA[k]));
  const overallB = mean(shots.map((k) => meanGainB[k]));
  return {
    shots,
    tasks,
    metric: Object.fromEntries(tasks.map((t) => [t, sa.metric[t]])),
    gainA,
    gainB,
    ratio,
    meanGainA,
    meanGainB,
    meanRatio,
    overall: { gainA: overallA, gainB: overallB, ratio: safeRatio(overallA, overallB) },
  };
}

const pct = (v: number) => (100 * v).toFixed(2);
const signed = (v: number) => (v >= 0 ? '+' : '') + pct(v);

/** Scores per shot count and gains over zero-shot, in percentage points. */
export function formatIclMarkdown(icl: IclScores): string {
  const header = ['Task', 'Metric', ...icl.shots.map((k) => `${k}-shot`), ...icl.shots.slice(1).map((k) => `gain@${k}`)];
  const row = (name: string, metric: string, scores: Record<number, number>, gains: Record<number, number>) => [
    name,
    metric,
    ...icl.shots.map((k) => pct(scores[k])),
    ...icl.shots.slice(1).map((k) => signed(gains[k])),
  ];
  const rows = icl.tasks.map((t) => row(t, icl.metric[t], icl.scores[t], icl.gains[t]));
  rows.push(row('mean', '', icl.meanScore, icl.meanGain));
  return [header, header.map(() => '---'), ...rows].map((r) => `|${r.join('|')}|`).join('\n') + '\n';
}

/** Gains of both models and their ratio per task and shot count, plus the overall ratio. */
export function formatComparisonMarkdown(cmp: IclComparison, names: { a?: string; b?: string } = {}): string {
  const a = names.a ?? 'A';
  const b = names.b ?? 'B';
  const ratioText = (r: number | null) => (r === null ? 'n/a' : `${(100 * r).toFixed(1)}%`);
  const header = ['Task', 'k', `gain ${a}`, `gain ${b}`, `${a}/${b}`];
  const rows: string[][] = [];
  for (const t of cmp.tasks) for (const k of cmp.shots) rows.push([t, String(k), signed(cmp.gainA[t][k]), signed(cmp.gainB[t][k]), ratioText(cmp.ratio[t][k])]);
  for (const k of cmp.shots) rows.push(['mean', String(k), signed(cmp.meanGainA[k]), signed(cmp.meanGainB[k]), ratioText(cmp.meanRatio[k])]);
  rows.push(['overall', cmp.shots.join(','), signed(cmp.overall.gainA), signed(cmp.overall.gainB), ratioText(cmp.overall.ratio)]);
  return [header, header.map(() => '---'), ...rows].map((r) => `|${r.join('|')}|`).join('\n') + '\n';
}
