import {
  encodePair,
  truncateLeft,
  type TokenizedLanguageModel,
  type LoglikelihoodOptions,
  type LoglikelihoodRequest,
  type LoglikelihoodResult,
  type ModelInput,
  type TokenizerInfo,
} from './language-model.js';

export interface TokenScore {
  logprob: number;
  isGreedy: boolean;
}

/** Continuations that share one (already truncated) context: a model can run the context once for all of them. */
export interface ContextGroup {
  contextIds: number[];
  continuations: number[][];
}

/** Scores every continuation of every group; `result[g][c]` belongs to `groups[g].continuations[c]`. */
export type ScoreGroupsFn = (groups: readonly ContextGroup[]) => Promise<TokenScore[][]>;

export interface TokenScoringModelOptions extends TokenizerInfo {
  scoreGroups: ScoreGroupsFn;
  /** Context groups per backend call (default 16). */
  batchSize?: number;
}

interface GroupedRequests {
  group: ContextGroup;
  /** For each continuation of the group, the indices of the requests it answers (identical requests share one). */
  requestIndices: number[][];
  /** The harness Collator's sort key: the longest context ++ continuation of the group. */
  longest: number[];
}

/**
 * Groups model inputs by identical context tokens, merging identical continuations, and orders the groups as the
 * harness's Collator does: longest context ++ continuation first, ties by token sequence.
 */
export function groupByContext(inputs: readonly ModelInput[]): GroupedRequests[] {
  const byContext = new Map<string, GroupedRequests & { byContinuation: Map<string, number> }>();
  inputs.forEach((input, index) => {
    const key = input.contextIds.join(',');
    let entry = byContext.get(key);
    if (!entry) {
      entry = { group: { contextIds: input.contextIds, continuations: [] }, requestIndices: [], longest: [], byContinuation: new Map() };
      byContext.set(key, entry);
    }
    const contKey = input.continuationIds.join(',');
    let slot = entry.byContinuation.get(contKey);
    if (slot === undefined) {
      slot = entry.group.continuations.length;
      entry.group.continuations.push(input.continuationIds);
      entry.requestIndices.push([]);
      entry.byContinuation.set(contKey, slot);
      const full = [...input.contextIds, ...input.continuationIds];
      if (compareForCollator(full, entry.longest) < 0) entry.longest = full;
    }
    entry.requestIndices[slot].push(index);
  });
  return [...byContext.values()]
    .map(({ group, requestIndices, longest }) => ({ group, requestIndices, longest }))
    .sort((a, b) => compareForCollator(a.longest, b.longest));
}

/** Collator order: longer first, then lexicographic by token id. */
function compareForCollator(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) return b.length - a.length;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/**
 * A `LanguageModel` over any token-level scorer: encodes requests with the harness's boundary rule, truncates on the
 * left to `maxLength`, groups requests that share a context so the backend can reuse one forward pass (or one
 * recurrent state) for all their continuations, and batches groups longest first.
 */
export class TokenScoringModel implements TokenizedLanguageModel {
  readonly batchSize: number;

  constructor(private readonly options: TokenScoringModelOptions) {
    this.batchSize = options.batchSize ?? 16;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) {
      throw new Error(`TokenScoringModel: batchSize must be a positive integer, got ${options.batchSize}.`);
    }
    if (!Number.isInteger(options.maxLength) || options.maxLength < 1) {
      throw new Error(`TokenScoringModel: maxLength must be a positive integer, got ${options.maxLength}.`);
    }
  }

  tokenize(text: string): number[] {
    return this.options.tokenize(text);
  }

  get maxLength(): number {
    return this.options.maxLength;
  }

  get eotTokenId(): number {
    return this.options.eotTokenId;
  }

  /** Encoded and truncated model inputs for requests, in request order. */
  prepare(requests: readonly LoglikelihoodRequest[]): ModelInput[] {
    return requests.map(({ context, continuation }) => {
      const input = truncateLeft(encodePair(this.options, context, continuation), this.options.maxLength);
      if (input.contextIds.length === 0) {
        throw new Error(`The context ${JSON.stringify(context)} encodes to no tokens after moving its trailing whitespace; nothing to condition on.`);
      }
      return input;
    });
  }

  async loglikelihood(requests: readonly LoglikelihoodRequest[], options: LoglikelihoodOptions = {}): Promise<LoglikelihoodResult[]> {
    const inputs = this.prepare(requests);
    const results: LoglikelihoodResult[] = new Array(requests.length);
    const groups = groupByContext(inputs);
    let done = 0;
    for (let start = 0; start < groups.length; start += this.batchSize) {
      const batch = groups.slice(start, start + this.batchSize);
      const scores = await this.options.scoreGroups(batch.map((g) => withoutEmpty(g.group)));
      if (scores.length !== batch.length) {
        throw new Error(`scoreGroups returned ${scores.length} groups for a batch of ${batch.length}.`);
      }
      batch.forEach((g, b) => {
        let next = 0;
        g.group.continuations.forEach((cont, c) => {
          // An empty continuation (the joint encoding merged it into the context) scores 0 and is greedy.
          const score = cont.length === 0 ? { logprob: 0, isGreedy: true } : scores[b][next++];
          if (score === undefined) throw new Error('scoreGroups returned fewer scores than continuations.');
          for (const i of g.requestIndices[c]) {
            results[i] = { logprob: score.logprob, isGreedy: score.isGreedy, truncated: inputs[i].truncated };
            done++;
          }
        });
      });
      options.onProgress?.(done, requests.length);
    }
    return results;
  }
}

function withoutEmpty(group: ContextGroup): ContextGroup {
  return { contextIds: group.contextIds, continuations: group.continuations.filter((c) => c.length > 0) };
}

/** Adapts a per-pair scorer `(contextIds, continuationIds) → score` into a group scorer (no sharing). */
export function perPairScorer(score: (contextIds: number[], continuationIds: number[]) => TokenScore | Promise<TokenScore>): ScoreGroupsFn {
  return async (groups) => {
    const out: TokenScore[][] = [];
    for (const g of groups) {
      const scores: TokenScore[] = [];
      for (const cont of g.continuations) scores.push(await score(g.contextIds, cont));
      out.push(scores);
    }
    return out;
  };
}

/**
 * Scores one continuation from next-token logits: `logits` holds rows of `vocabSize` values, row `firstRow + j`
 * being the distribution that predicts `continuationIds[j]`. Log-softmax in float64; ties in the argmax go to the
 * first index, as torch/numpy do.
 */
export function scoreFromLogits(
  logits: ArrayLike<number>,
  vocabSize: number,
  firstRow: number,
  continuationIds: readonly number[],
): TokenScore {
  let logprob = 0;
  let isGreedy = true;
  continuationIds.forEach((token, j) => {
    const offset = (firstRow + j) * vocabSize;
    let max = -Infinity;
    let argmax = 0;
    for (let v = 0; v < vocabSize; v++) {
      const x = logits[offset + v];
      if (x > max) {
        max = x;
        argmax = v;
      }
    }
    let sumExp = 0;
    for (let v = 0; v < vocabSize; v++) sumExp += Math.exp(logits[offset + v] - max);
    logprob += logits[offset + token] - max - Math.log(sumExp);
    if (argmax !== token) isGreedy = false;
  });
  return { logprob, isGreedy };
}
