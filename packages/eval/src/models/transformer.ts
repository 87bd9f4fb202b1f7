import { narrow, noGrad, tensor, tidy } from '@mamba-ts/tensor';
import type { TransformerLM } from '@mamba-ts/transformer';
import { TokenScoringModel, perPairScorer, scoreFromLogits } from '../token-scoring-model.js';
import type { ModelScoringOptions } from './mamba.js';

/** A harness `LanguageModel` for the GPT-NeoX / Pythia baseline: one forward pass over context ++ continuation. */
export function transformerLanguageModel(lm: TransformerLM, { maxLength, batchSize = 16 }: ModelScoringOptions = {}): TokenScoringModel {
  const V = lm.config.vocabSize;
  return new TokenScoringModel({
    tokenize: (text) => lm.encode(text),
    maxLength: maxLength ?? lm.maxLength,
    eotTokenId: lm.config.eosTokenId ?? 0,
    batchSize,
    scoreGroups: perPairScorer(async (contextIds, cont) => {
      const input = [...contextIds, ...cont.slice(0, -1)];
      const logits = noGrad(() =>
        tidy(() => narrow(lm.forward(tensor(Int32Array.from(input), [1, input.length], 'i32')), 1, contextIds.length - 1, cont.length)),
      );
      const rows = await logits.toFloat32();
      logits.dispose();
      return scoreFromLogits(rows, V, 0, cont);
    }),
  });
}
