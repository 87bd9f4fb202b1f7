import { pyRstrip } from './python-str.js';

export interface LoglikelihoodRequest {
  context: string;
  continuation: string;
}

export interface LoglikelihoodResult {
  /** Σ log P(continuation token | everything before it). */
  logprob: number;
  /** Every continuation token is the argmax of its distribution. */
  isGreedy: boolean;
  /** The input was cut on the left to fit the model's max length (counted in the results). */
  truncated?: boolean;
}

export interface LoglikelihoodOptions {
  /** Called after each batch with the number of requests scored so far. */
  onProgress?: (done: number, total: number) => void;
}

/** Anything that can score continuations. Results come back in request order. */
export interface LanguageModel {
  loglikelihood(requests: readonly LoglikelihoodRequest[], options?: LoglikelihoodOptions): Promise<LoglikelihoodResult[]>;
}

/** What the harness needs from a tokenizer-backed model (`tok_encode` without special tokens, max length, EOT). */
export interface TokenizerInfo {
  tokenize(text: string): number[];
  maxLength: number;
  eotTokenId: number;
  /** The token fed as context when the context is empty; the EOT token unless given. */
  prefixTokenId?: number;
}

/** A language model that also exposes its tokenizer facts (what `TokenScoringModel` provides). */
export interface TokenizedLanguageModel extends LanguageModel {
  tokenize(text: string): number[];
  readonly maxLength: number;
  readonly eotTokenId: number;
}

export interface EncodedPair {
  contextIds: number[];
  continuationIds: number[];
}

/**
 * The harness's `_encode_pair`: trailing whitespace of the context moves onto the continuation, then
 * `encode(context + continuation)` is split at the length of `encode(context)`. An empty context becomes the prefix
 * token and the continuation is encoded alone.
 */
export function encodePair(tok: TokenizerInfo, context: string, continuation: string): EncodedPair {
  if (context === '') {
    return { contextIds: [tok.prefixTokenId ?? tok.eotTokenId], continuationIds: tok.tokenize(continuation) };
  }
  const stripped = pyRstrip(context);
  const moved = context.slice(stripped.length);
  const whole = tok.tokenize(stripped + moved + continuation);
  const contextIds = tok.tokenize(stripped);
  return { contextIds, continuationIds: whole.slice(contextIds.length) };
}

export interface ModelInput {
  /** Context tokens after left truncation: the continuation is scored given exactly these. */
  contextIds: number[];
  continuationIds: number[];
  truncated: boolean;
}

/**
 * Left truncation as the harness does it: keep the last `maxLength + 1` tokens of context ++ continuation, the model
 * input being all but the last. Expressed here as a shortened context, since only the continuation is scored.
 */
export function truncateLeft(pair: EncodedPair, maxLength: number): ModelInput {
  const { contextIds, continuationIds } = pair;
  if (continuationIds.length > maxLength) {
    throw new Error(
      `A continuation of ${continuationIds.length} tokens does not fit the model's max length ${maxLength}; ` +
        `raise maxLength or shorten the continuation.`,
    );
  }
  const total = contextIds.length + continuationIds.length;
  const drop = Math.max(0, total - (maxLength + 1));
  if (drop === 0) return { contextIds, continuationIds, truncated: false };
  return { contextIds: contextIds.slice(drop), continuationIds, truncated: true };
}
