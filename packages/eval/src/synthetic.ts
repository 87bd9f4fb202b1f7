/**
 * Synthetic in-context-learning tasks for small models trained by this toolkit: multi-query associative recall and
 * induction-style copying. Examples are space-separated symbol strings generated from a seeded Python-compatible
 * RNG; every query is one loglikelihood request whose continuation is " " + the expected symbol.
 */
import type { LanguageModel, LoglikelihoodRequest } from './language-model.js';
import { argmax } from './metrics.js';
import { PythonRandom } from './python-random.js';

export interface SyntheticQuery {
  /** Text of the example up to the point where the answer is due (no trailing space). */
  prefix: string;
  /** The expected symbol. */
  answer: string;
}

export interface SyntheticExample {
  /** The whole example with every answer filled in (used verbatim as a demonstration). */
  text: string;
  queries: SyntheticQuery[];
}

export interface SyntheticTask {
  name: string;
  examples: SyntheticExample[];
  /** Every symbol an answer can be (scored against each other for choice accuracy). */
  candidates: string[];
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('');
const DIGITS = '0123456789'.split('');

export interface AssociativeRecallOptions {
  seed: number;
  numExamples: number;
  /** Key–value pairs per example (distinct keys). */
  numPairs: number;
  /** Keys queried per example (distinct, drawn from that example's keys). */
  numQueries: number;
  keys?: readonly string[];
  values?: readonly string[];
}

/**
 * Multi-query associative recall: "k1 v1 k2 v2 ... : q1 a1 q2 a2 ...". Each query key asks for the value it was
 * bound to; earlier queries appear with their answers (teacher forcing).
 */
export function associativeRecallTask(options: AssociativeRecallOptions): SyntheticTask {
  const keys = options.keys ?? LETTERS;
  const values = options.values ?? DIGITS;
  const { numPairs, numQueries } = options;
  if (numPairs > keys.length) throw new Error(`associativeRecallTask: numPairs ${numPairs} exceeds the ${keys.length} distinct keys.`);
  if (numQueries > numPairs) throw new Error(`associativeRecallTask: numQueries ${numQueries} exceeds numPairs ${numPairs}.`);
  const rnd = new PythonRandom(options.seed);
  const examples: SyntheticExample[] = [];
  for (let e = 0; e < options.numExamples; e++) {
    const pairKeys = rnd.sample(keys, numPairs);
    const binding = new Map(pairKeys.map((k) => [k, rnd.choice(values)]));
    let text = pairKeys.map((k) => `${k} ${binding.get(k)}`).join(' ') + ' :';
    const queries: SyntheticQuery[] = [];
    for (const q of rnd.sample(pairKeys, numQueries)) {
      const prefix = `${text} ${q}`;
      const answer = binding.get(q)!;
      queries.push({ prefix, answer });
      text = `${prefix} ${answer}`;
    }
    examples.push({ text, queries });
  }
  return { name: 'associative_recall', examples, candidates: [...new Set(values)] };
}

export interface InductionOptions {
  seed: number;
  numExamples: number;
  /** Symbols in the random segment that is then copied. */
  length: number;
  alphabet?: readonly string[];
}

/**
 * Induction copying: a random segment, "|", then the segment again; every symbol of the copy is a query (predict
 * the next symbol of a sequence seen before).
 */
export function inductionTask(options: InductionOptions): SyntheticTask {
  const alphabet = options.alphabet ?? LETTERS;
  if (options.length < 1) throw new Error(`inductionTask: length must be at least 1, got ${options.length}.`);
  const rnd = new PythonRandom(options.seed);
  const examples: SyntheticExample[] = [];
  for (let e = 0; e < options.numExamples; e++) {
    const segment = Array.from({ length: options.length }, () => rnd.choice(alphabet));
    let text = `${segment.join(' ')} |`;
    const queries: SyntheticQuery[] = [];
    for (const symbol of segment) {
      queries.push({ prefix: text, answer: symbol });
      text = `${text} ${symbol}`;
    }
    examples.push({ text, queries });
  }
  return { name: 'induction', examples, candidates: [...new Set(alphabet)] };
}

/** The k-shot prompt prefix: demonstrations joined by the separator, followed by it. */
export function formatKShot(demos: readonly SyntheticExample[], separator = '\n'): string {
  return demos.length === 0 ? '' : demos.map((d) => d.text).join(separator) + separator;
}

export interface SyntheticEvalOptions {
  shots: number;
  /** Demonstrations are drawn from here (generate them with another seed than the evaluated examples). */
  demoPool?: readonly SyntheticExample[];
  /** Seed of the demo draws (one `sample` per example, in order). */
  seed?: number;
  separator?: string;
  /** Also score every candidate and report argmax accuracy (costs one request per candidate per query). */
  scoreChoices?: boolean;
}

export interface SyntheticResult {
  task: string;
  shots: number;
  queries: number;
  /** Fraction of queries whose answer is the model's greedy continuation. */
  accuracy: number;
  /** Fraction of queries whose answer has the highest log-likelihood among the candidates (if requested). */
  choiceAccuracy?: number;
}

/** The loglikelihood requests of a task at k shots: per query, the answer, then (optionally) every candidate. */
export function syntheticRequests(task: SyntheticTask, options: SyntheticEvalOptions): LoglikelihoodRequest[][] {
  const pool = options.demoPool ?? [];
  if (options.shots > pool.length) {
    throw new Error(`${task.name}: ${options.shots}-shot needs at least ${options.shots} demonstrations, the demo pool has ${pool.length}.`);
  }
  const rnd = new PythonRandom(options.seed ?? 1234);
  const perQuery: LoglikelihoodRequest[][] = [];
  for (const example of task.examples) {
    const prefix = formatKShot(options.shots > 0 ? rnd.sample(pool, options.shots) : [], options.separator);
    for (const q of example.queries) {
      const context = prefix + q.prefix;
      const requests = [{ context, continuation: ` ${q.answer}` }];
      if (options.scoreChoices) for (const c of task.candidates) requests.push({ context, continuation: ` ${c}` });
      perQuery.push(requests);
    }
  }
  return perQuery;
}

/** Accuracy of a model on a synthetic task at k shots. */
export async function evaluateSynthetic(model: LanguageModel, task: SyntheticTask, options: SyntheticEvalOptions): Promise<SyntheticResult> {
  const perQuery = syntheticRequests(task, options);
  const results = await model.loglikelihood(perQuery.flat());
  const answers = task.examples.flatMap((e) => e.queries.map((q) => q.answer));
  let greedy = 0;
  let chosen = 0;
  let offset = 0;
  perQuery.forEach((requests, i) => {
    if (results[offset].isGreedy) greedy++;
    if (options.scoreChoices) {
      const lls = results.slice(offset + 1, offset + requests.length).map((r) => r.logprob);
      if (task.candidates[argmax(lls)] === answers[i]) chosen++;
    }
    offset += requests.length;
  });
  const n = perQuery.length;
  return {
    task: task.name,
    shots: options.shots,
    queries: n,
    accuracy: greedy / n,
    ...(options.scoreChoices ? { choiceAccuracy: chosen / n } : {}),
  };
}
