import { PythonRandom } from './python-random.js';
import { formatDemos, type Doc, type TaskDefinition } from './tasks/task.js';

/** The harness's fixed sampler seed (`random.Random(1234)`, later exposed as `--fewshot_random_seed`). */
export const FEWSHOT_SEED = 1234;

/**
 * One task's few-shot sampler. Its random stream is shared by all documents of the task, so documents must ask for
 * their context in evaluation order, exactly once each, as the harness does.
 */
export class FewshotSampler {
  private readonly rnd: PythonRandom;

  constructor(
    readonly task: TaskDefinition,
    readonly pool: readonly Doc[],
    seed: number = FEWSHOT_SEED,
  ) {
    this.rnd = new PythonRandom(seed);
  }

  /**
   * The demos for one document: draw k pool documents (`sample`, or the first k for `first_n`), then drop any that
   * equal the evaluated document by content. For every task here the harness draws k, not k + 1 (its
   * `fewshot_split` is never configured equal to `test_split`), so a dropped draw leaves k − 1 demos.
   */
  demos(doc: Doc, k: number): Doc[] {
    if (k > this.pool.length) {
      throw new Error(
        `${this.task.name}: ${k}-shot needs at least ${k} documents in the few-shot pool (split "${this.task.fewshotSplit}"), ` +
          `but it has ${this.pool.length}; lower the shot count or provide a larger split.`,
      );
    }
    const drawn = this.task.sampler === 'first_n' ? this.pool.slice(0, k) : this.rnd.sample(this.pool, k);
    return drawn.filter((d) => !deepEqual(d, doc)).slice(0, k);
  }

  /** The few-shot block for one document ("" at 0 shots; no random draws happen then). */
  context(doc: Doc, k: number): string {
    if (k === 0) return '';
    return formatDemos(this.task, this.demos(doc, k));
  }
}

/** Description + few-shot block: everything in the prompt before the document's own text. */
export function fewshotPrefix(task: TaskDefinition, sampler: FewshotSampler, doc: Doc, k: number): string {
  return task.description + sampler.context(doc, k);
}

/** Python `==` on JSON values (dict equality ignores key order). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => deepEqual(v, bb[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual((a as Doc)[k], (b as Doc)[k]));
}
