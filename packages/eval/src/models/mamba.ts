import { noGrad, tensor, tidy } from '@mamba-ts/tensor';
import { prefill, type MambaLM, type TextTokenizer } from '@mamba-ts/ssm';
import { TokenScoringModel, scoreFromLogits, type TokenScore } from '../token-scoring-model.js';

export interface ModelScoringOptions {
  /** Longest context ++ continuation scored (the harness's max_length; 2048 by default). */
  maxLength?: number;
  /** Context groups per batch (default 16). */
  batchSize?: number;
}

/**
 * A harness `LanguageModel` for Mamba that processes each shared context (e.g. the few-shot prefix plus the question)
 * once: the recurrent state after the context is kept, and every continuation continues from it.
 */
export function mambaLanguageModel(model: MambaLM, tokenizer: TextTokenizer, { maxLength = 2048, batchSize = 16 }: ModelScoringOptions = {}): TokenScoringModel {
  const V = model.config.vocabSize;
  return new TokenScoringModel({
    tokenize: (text) => tokenizer.encode(text),
    maxLength,
    eotTokenId: model.config.eosTokenId,
    batchSize,
    scoreGroups: async (groups) => {
      const out: TokenScore[][] = [];
      for (const group of groups) {
        const { logits: last, state } = prefill(model, group.contextIds);
        try {
          const lastRow = await last.toFloat32();
          const scores: TokenScore[] = [];
          for (const cont of group.continuations) {
            // Row 0 (after the context) predicts cont[0]; the continuation's own prefix predicts the rest.
            let rows = lastRow;
            if (cont.length > 1) {
              const logits = noGrad(() =>
                tidy(() => model.forward(tensor(Int32Array.from(cont.slice(0, -1)), [1, cont.length - 1], 'i32'), { state }).logits),
              );
              rows = new Float32Array(cont.length * V);
              rows.set(lastRow);
              rows.set(await logits.toFloat32(), V);
              logits.dispose();
            }
            scores.push(scoreFromLogits(rows, V, 0, cont));
          }
          out.push(scores);
        } finally {
          last.dispose();
          state.dispose();
        }
      }
      return out;
    },
  });
}
