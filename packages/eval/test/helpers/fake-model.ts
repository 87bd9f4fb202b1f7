import { TokenScoringModel, scoreFromLogits, type ContextGroup, type TokenScore } from '@mamba-ts/eval';

/**
 * A tiny deterministic "language model" for tests: a word-piece tokenizer (" word", digit, punctuation, whitespace
 * pieces hashed into a 64-token vocabulary, EOT = 0) and a bigram scorer whose logits depend on the previous token
 * and on the first input token.
 */
export const VOCAB = 64;
export const EOT = 0;

const PIECES = / ?[A-Za-z]+| ?\d| ?[^\sA-Za-z\d]|\s/gu;

function pieceId(piece: string): number {
  let h = 2166136261;
  for (const ch of piece) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 16777619) >>> 0;
  }
  return 1 + (h % (VOCAB - 1));
}

export function tokenize(text: string): number[] {
  return (text.match(PIECES) ?? []).map(pieceId);
}

/**
 * Next-token logits after `prev`: a hash-like ramp plus a bump on one preferred token, plus a bump on the first
 * token of the input (so that left truncation changes the scores).
 */
export function bigramLogits(prev: number, first: number): number[] {
  return Array.from(
    { length: VOCAB },
    (_, v) => ((prev * 131 + v * 71) % 97) / 13 + (v === (prev * 7 + 3) % VOCAB ? 4 : 0) + (v === first ? 1.5 : 0),
  );
}

/** The bigram backend through the library's group interface; counts calls and scored groups. */
export function makeBigramModel(options: { maxLength?: number; batchSize?: number } = {}) {
  const stats = { calls: 0, groups: 0, continuations: 0, contextTokensRun: 0, batchSizes: [] as number[] };
  const scoreGroups = async (groups: readonly ContextGroup[]): Promise<TokenScore[][]> => {
    stats.calls++;
    stats.batchSizes.push(groups.length);
    return groups.map((g) => {
      stats.groups++;
      stats.contextTokensRun += g.contextIds.length; // a recurrent model would run the shared context once
      return g.continuations.map((cont) => {
        stats.continuations++;
        const seq = [...g.contextIds, ...cont];
        const rows = cont.flatMap((_, j) => bigramLogits(seq[g.contextIds.length + j - 1], seq[0]));
        return scoreFromLogits(rows, VOCAB, 0, cont);
      });
    });
  };
  const model = new TokenScoringModel({
    tokenize,
    maxLength: options.maxLength ?? 2048,
    eotTokenId: EOT,
    batchSize: options.batchSize ?? 4,
    scoreGroups,
  });
  return { model, stats };
}

/**
 * Brute force, straight from the harness description: move trailing whitespace, split the joint encoding, keep the
 * last maxLength + 1 tokens, feed all but the last, and read log-softmax at the continuation positions.
 */
export function bruteForceLoglikelihood(context: string, continuation: string, maxLength: number): { ll: number; greedy: boolean } {
  let ctxTokens: number[];
  let contTokens: number[];
  if (context === '') {
    ctxTokens = [EOT];
    contTokens = tokenize(continuation);
  } else {
    const trailing = /\s*$/.exec(context)![0];
    const ctx = context.slice(0, context.length - trailing.length);
    const whole = tokenize(ctx + trailing + continuation);
    ctxTokens = tokenize(ctx);
    contTokens = whole.slice(ctxTokens.length);
  }
  const all = [...ctxTokens, ...contTokens].slice(-(maxLength + 1));
  const inp = all.slice(0, -1);
  let ll = 0;
  let greedy = true;
  for (let i = 0; i < contTokens.length; i++) {
    const pos = inp.length - contTokens.length + i;
    const logits = bigramLogits(inp[pos], inp[0]);
    const target = contTokens[i];
    const logZ = Math.log(logits.reduce((s, x) => s + Math.exp(x), 0));
    ll += logits[target] - logZ;
    const best = logits.indexOf(Math.max(...logits));
    if (best !== target) greedy = false;
  }
  return { ll, greedy };
}
