import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyLimit, loadSplit } from './data.js';
import { FewshotSampler, fewshotPrefix } from './fewshot.js';
import type { LanguageModel, LoglikelihoodResult } from './language-model.js';
import { bootstrapStderr, mean, meanStderr, multipleChoiceMetrics, perplexity, pooledStderr, weightedMean } from './metrics.js';
import type { EvalResults, ResultEntry, Stderr } from './results.js';
import { leafTasks, resolveTasks, type TaskNode } from './tasks/registry.js';
import {
  FEWSHOT_DELIMITER,
  TARGET_DELIMITER,
  buildRequests,
  goldIndex,
  type Doc,
  type MetricName,
  type Request,
  type TaskDefinition,
} from './tasks/task.js';

export interface EvalProgress {
  stage: 'building' | 'scoring' | 'aggregating';
  /** Requests scored so far (scoring) or tasks done (building, aggregating). */
  done: number;
  total: number;
  task?: string;
}

export interface RunEvalOptions {
  model: LanguageModel;
  /** Task or group names: lambada_openai, hellaswag, piqa, arc_easy, arc_challenge, winogrande, openbookqa, mmlu, ... */
  tasks: readonly string[];
  /** Few-shot count k for every task. */
  shots: number;
  /** Holds `<task>/<split>.jsonl`. */
  dataDir: string;
  /** First N eval documents, or a fraction (< 1) of them rounded up. */
  limit?: number;
  /** When set, writes `<dir>/<task>.jsonl` with every document's requests, responses and metrics. */
  logSamplesDir?: string;
  /** Bootstrap resamples for perplexity's stderr (harness default 100000; 0 drops all stderrs). */
  bootstrapIters?: number;
  onProgress?: (progress: EvalProgress) => void;
  /** Recorded in the results' `config` block. */
  modelInfo?: { model?: string; modelArgs?: string; batchSize?: number | string; device?: string };
}

/** One evaluated document: everything needed for metrics and for the sample log. */
export interface DocRecord {
  docId: number;
  doc: Doc;
  requests: Request[];
  responses: LoglikelihoodResult[];
  metrics: Partial<Record<MetricName, number>>;
}

interface TaskRun {
  task: TaskDefinition;
  docs: DocRecord[];
}

/** Builds every document's requests in evaluation order (the few-shot stream is consumed per document). */
export function buildTaskRequests(task: TaskDefinition, dataDir: string, shots: number, limit?: number): DocRecord[] {
  const allEval = loadSplit(dataDir, task, task.evalSplit);
  const evalDocs = applyLimit(allEval, limit);
  const pool = shots === 0 ? [] : task.fewshotSplit === task.evalSplit ? allEval : loadSplit(dataDir, task, task.fewshotSplit);
  const sampler = new FewshotSampler(task, pool);
  return evalDocs.map((doc, docId) => ({
    docId,
    doc,
    requests: buildRequests(task, doc, fewshotPrefix(task, sampler, doc, shots)),
    responses: [],
    metrics: {},
  }));
}

/** Per-document metrics, in the order of the task's metric list. */
export function scoreDocument(task: TaskDefinition, doc: Doc, responses: readonly LoglikelihoodResult[]): Partial<Record<MetricName, number>> {
  let all: Record<MetricName, number>;
  if (task.outputType === 'loglikelihood') {
    const { logprob, isGreedy } = responses[0];
    all = { perplexity: logprob, acc: isGreedy ? 1 : 0, acc_norm: NaN };
  } else {
    const choices = task.docToChoice!(doc);
    const lls = responses.map((r) => r.logprob);
    all = { ...multipleChoiceMetrics(lls, choices, goldIndex(task, doc)), perplexity: NaN };
  }
  return Object.fromEntries(task.metrics.map((m) => [m, all[m]]));
}

function aggregate(metric: MetricName, items: readonly number[], bootstrapIters: number): { value: number; stderr?: Stderr } {
  const isPerplexity = metric === 'perplexity';
  const value = isPerplexity ? perplexity(items) : mean(items);
  if (bootstrapIters <= 0) return { value };
  if (items.length <= 1) return { value, stderr: 'N/A' };
  return { value, stderr: isPerplexity ? bootstrapStderr(perplexity, items, bootstrapIters) : meanStderr(items) };
}

function taskEntry(run: TaskRun, bootstrapIters: number): ResultEntry {
  const entry: ResultEntry = {};
  for (const metric of run.task.metrics) {
    const { value, stderr } = aggregate(metric, run.docs.map((d) => d.metrics[metric]!), bootstrapIters);
    entry[`${metric},none`] = value;
    if (stderr !== undefined) entry[`${metric}_stderr,none`] = stderr;
  }
  return entry;
}

/** A group's row from its children's rows and sizes: size-weighted values, pooled stderrs. */
function groupEntry(children: readonly { entry: ResultEntry; size: number }[]): ResultEntry {
  const entry: ResultEntry = {};
  const keys = [...new Set(children.flatMap((c) => Object.keys(c.entry)))].filter((k) => !k.includes('_stderr') && k !== 'alias');
  for (const key of keys) {
    const having = children.filter((c) => typeof c.entry[key] === 'number');
    const sizes = having.map((c) => c.size);
    entry[key] = weightedMean(having.map((c) => c.entry[key] as number), sizes);
    const stderrKey = key.replace(',', '_stderr,');
    const stderrs = children.filter((c) => stderrKey in c.entry).map((c) => c.entry[stderrKey]);
    if (stderrs.length === 0) continue;
    entry[stderrKey] = stderrs.includes('N/A') ? 'N/A' : pooledStderr(stderrs as number[], sizes);
  }
  return entry;
}

function writeSamples(dir: string, run: TaskRun): void {
  mkdirSync(dir, { recursive: true });
  const lines = run.docs.map((d) =>
    JSON.stringify({
      doc_id: d.docId,
      doc: d.doc,
      target: run.task.docToTarget(d.doc),
      arguments: d.requests.map((r) => [r.context, r.continuation]),
      resps: d.responses.map((r) => [[r.logprob, r.isGreedy]]),
      filtered_resps: d.responses.map((r) => [r.logprob, r.isGreedy]),
      ...d.metrics,
    }),
  );
  writeFileSync(join(dir, `${run.task.name}.jsonl`), lines.join('\n') + '\n');
}

function dumpConfig(task: TaskDefinition, shots: number): Record<string, unknown> {
  const { task_alias, group, group_alias, description, ...rest } = task.config as Record<string, unknown>;
  const config: Record<string, unknown> = { task: task.name };
  if (task_alias !== undefined) config.task_alias = task_alias;
  if (group !== undefined) config.group = group;
  if (group_alias !== undefined) config.group_alias = group_alias;
  config.dataset_path = task.datasetPath;
  if (task.datasetName !== undefined) config.dataset_name = task.datasetName;
  const { metric_list, output_type, should_decontaminate, doc_to_decontamination_query, ...templates } = rest;
  Object.assign(config, templates);
  config.description = description ?? task.description;
  config.target_delimiter = TARGET_DELIMITER;
  config.fewshot_delimiter = FEWSHOT_DELIMITER;
  config.num_fewshot = shots;
  config.metric_list = metric_list;
  config.output_type = output_type;
  config.repeats = 1;
  config.should_decontaminate = should_decontaminate;
  if (doc_to_decontamination_query !== undefined) config.doc_to_decontamination_query = doc_to_decontamination_query;
  config.metadata = { version: task.version };
  return config;
}

/**
 * Evaluates a model on tasks with lm-evaluation-harness v0.4.2 semantics and returns the harness-shaped results
 * (`results`, `groups`, `group_subtasks`, `configs`, `versions`, `n-shot`, `config`), plus per-task truncation counts.
 */
export async function runEval(options: RunEvalOptions): Promise<EvalResults> {
  const { model, dataDir, shots, limit } = options;
  const bootstrapIters = options.bootstrapIters ?? 100000;
  if (!Number.isInteger(shots) || shots < 0) throw new Error(`shots must be a non-negative integer, got ${shots}.`);
  if (!Number.isInteger(bootstrapIters) || bootstrapIters < 0) {
    throw new Error(`bootstrapIters must be a non-negative integer, got ${bootstrapIters}.`);
  }
  const tree = resolveTasks(options.tasks);
  const tasks = leafTasks(tree);

  // 1. Requests, task by task, documents in order.
  const runs: TaskRun[] = tasks.map((task, i) => {
    const docs = buildTaskRequests(task, dataDir, shots, limit);
    options.onProgress?.({ stage: 'building', done: i + 1, total: tasks.length, task: task.name });
    return { task, docs };
  });

  // 2. One loglikelihood call for everything, so the model can sort and share contexts across tasks.
  const flat = runs.flatMap((run) => run.docs.flatMap((d) => d.requests));
  const responses = await model.loglikelihood(flat, {
    onProgress: (done, total) => options.onProgress?.({ stage: 'scoring', done, total }),
  });
  if (responses.length !== flat.length) {
    throw new Error(`The model returned ${responses.length} loglikelihood results for ${flat.length} requests.`);
  }
  let next = 0;
  for (const run of runs) {
    for (const d of run.docs) {
      d.responses = responses.slice(next, next + d.requests.length);
      next += d.requests.length;
      d.metrics = scoreDocument(run.task, d.doc, d.responses);
    }
  }

  // 3. Aggregation, groups, and the harness's print order and aliases.
  const out: EvalResults = {
    results: {},
    group_subtasks: {},
    configs: {},
    versions: {},
    'n-shot': {},
    config: {
      model: options.modelInfo?.model ?? 'mamba-ts',
      model_args: options.modelInfo?.modelArgs ?? '',
      batch_size: options.modelInfo?.batchSize ?? null,
      batch_sizes: [],
      device: options.modelInfo?.device ?? null,
      use_cache: null,
      limit: limit ?? null,
      bootstrap_iters: bootstrapIters,
      gen_kwargs: null,
    },
    git_hash: null,
    date: Date.now() / 1000,
    truncation: {},
  };
  const runByName = new Map(runs.map((r) => [r.task.name, r]));
  const groups: Record<string, ResultEntry> = {};

  const visit = (node: TaskNode, depth: number): { entry: ResultEntry; size: number } => {
    const tab = depth > 0 ? ' '.repeat(depth) + '- ' : '';
    if (node.kind === 'task') {
      const run = runByName.get(node.name)!;
      const metrics = taskEntry(run, bootstrapIters);
      const entry: ResultEntry = node.task.alias !== undefined ? { alias: tab + node.task.alias, ...metrics } : { ...metrics, alias: tab + node.name };
      out.results[node.name] = entry;
      out.group_subtasks[node.name] = [];
      out.versions[node.name] = node.task.version;
      out['n-shot'][node.name] = shots;
      return { entry: metrics, size: run.docs.length };
    }
    // Claim the group's key before its children's so the row comes first (reassigning a key keeps its position).
    out.results[node.name] = {};
    groups[node.name] = {};
    const children = [...node.children].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const childRows = children.map((c) => visit(c, depth + 1));
    const metrics = groupEntry(childRows);
    const entry: ResultEntry = node.alias !== undefined ? { alias: tab + node.alias, ...metrics } : { ...metrics, alias: tab + node.name };
    out.results[node.name] = entry;
    groups[node.name] = { ...entry };
    out.group_subtasks[node.name] = children.map((c) => c.name);
    out.versions[node.name] = 'N/A';
    out['n-shot'][node.name] = 0;
    return { entry: metrics, size: childRows.reduce((s, c) => s + c.size, 0) };
  };
  tree.forEach((node) => visit(node, 0));
  if (Object.keys(groups).length > 0) out.groups = groups;

  for (const run of [...runs].sort((a, b) => (a.task.name < b.task.name ? -1 : 1))) {
    out.configs[run.task.name] = dumpConfig(run.task, shots);
    const requests = run.docs.reduce((s, d) => s + d.requests.length, 0);
    const truncated = run.docs.reduce((s, d) => s + d.responses.filter((r) => r.truncated).length, 0);
    out.truncation[run.task.name] = { requests, truncated };
    if (options.logSamplesDir !== undefined) writeSamples(options.logSamplesDir, run);
  }
  out.versions = sortKeys(out.versions);
  out['n-shot'] = sortKeys(out['n-shot']);
  options.onProgress?.({ stage: 'aggregating', done: runs.length, total: runs.length });
  return out;
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
