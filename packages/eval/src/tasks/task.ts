/**
 * A task in the shape of lm-evaluation-harness v0.4.2's `ConfigurableTask`: splits, a per-document text, target and
 * choices, and the output type that decides how requests are built and scored. One small file per task fills it in.
 */

export type Doc = Record<string, unknown>;

/** A field of the Hugging Face schema, as checked when a row is read. */
export interface FieldSpec {
  name: string;
  type: 'string' | 'integer' | 'string[]' | 'labeled-choices' | 'digit-string';
  /** Shown in error messages, e.g. `"1" or "2"`. */
  note?: string;
}

export type MetricName = 'acc' | 'acc_norm' | 'perplexity';

export interface TaskDefinition {
  name: string;
  /** Shown in the results table instead of the name (the harness's `task_alias`). */
  alias?: string;
  /** The group this task belongs to and that group's alias (MMLU subjects). */
  group?: { name: string; alias: string };
  version: number;
  /** Hugging Face dataset path, for the results' `configs` block. */
  datasetPath: string;
  datasetName?: string;
  evalSplit: string;
  fewshotSplit: string;
  /** `default` draws with `Random(1234).sample`, `first_n` takes the pool's first k documents. */
  sampler: 'default' | 'first_n';
  outputType: 'multiple_choice' | 'loglikelihood';
  metrics: readonly MetricName[];
  /** Prepended to every prompt (MMLU only). */
  description: string;
  schema: readonly FieldSpec[];
  /** Semantic checks beyond the field types; returns a sentence describing the problem, or undefined. */
  checkRow?(doc: Doc): string | undefined;
  /** The harness's `process_docs`, applied to every split that is loaded. */
  processDoc?(doc: Doc): Doc;
  /** The prompt text of a document; a number means "that choice is the text" (winogrande's partial scoring). */
  docToText(doc: Doc): string | number;
  /** A string target, or the gold choice index. */
  docToTarget(doc: Doc): string | number;
  docToChoice?(doc: Doc): string[];
  /** The remaining keys of the harness's dumped task config (templates as strings). */
  config: Record<string, unknown>;
}

export const TARGET_DELIMITER = ' ';
export const FEWSHOT_DELIMITER = '\n\n';

/** True when the prompt text is a choice index, i.e. the choices are contexts sharing one continuation. */
export function isMultipleInput(task: TaskDefinition, doc: Doc): boolean {
  return typeof task.docToText(doc) === 'number';
}

function choicesOf(task: TaskDefinition, doc: Doc): string[] {
  if (!task.docToChoice) throw new Error(`Task ${task.name} has no choices but its template returned a choice index.`);
  return task.docToChoice(doc);
}

/** The text of a document used as a demonstration (a choice index resolves to that choice). */
export function demoText(task: TaskDefinition, doc: Doc): string {
  const text = task.docToText(doc);
  return typeof text === 'number' ? choicesOf(task, doc)[text] : text;
}

/** The target of a document used as a demonstration (a gold index resolves to that choice). */
export function demoTarget(task: TaskDefinition, doc: Doc): string {
  const target = task.docToTarget(doc);
  return typeof target === 'number' ? String(choicesOf(task, doc)[target]) : target;
}

/** The few-shot block: each demo as `text + " " + target`, joined and followed by the few-shot delimiter. */
export function formatDemos(task: TaskDefinition, demos: readonly Doc[]): string {
  return demos.map((d) => demoText(task, d) + TARGET_DELIMITER + demoTarget(task, d)).join(FEWSHOT_DELIMITER) + FEWSHOT_DELIMITER;
}

export interface Request {
  context: string;
  continuation: string;
}

/**
 * The requests of one document, given its few-shot context (description + demos, without the document's text):
 * loglikelihood → one request (text, target); multiple choice → one per choice, either (text, " " + choice) or, for
 * multiple-input tasks, (choice, " " + target).
 */
export function buildRequests(task: TaskDefinition, doc: Doc, fewshotContext: string): Request[] {
  const text = task.docToText(doc);
  if (task.outputType === 'loglikelihood') {
    const target = task.docToTarget(doc);
    return [{ context: fewshotContext + String(text), continuation: String(target) }];
  }
  const choices = choicesOf(task, doc);
  if (typeof text === 'number') {
    const continuation = TARGET_DELIMITER + String(task.docToTarget(doc));
    return choices.map((choice) => ({ context: fewshotContext + choice, continuation }));
  }
  return choices.map((choice) => ({ context: fewshotContext + text, continuation: TARGET_DELIMITER + choice }));
}

/** The gold choice index of a multiple-choice document. */
export function goldIndex(task: TaskDefinition, doc: Doc): number {
  const gold = typeof task.docToText(doc) === 'number' ? task.docToText(doc) : task.docToTarget(doc);
  if (typeof gold !== 'number') throw new Error(`Task ${task.name}: the gold answer is not a choice index.`);
  return gold;
}
