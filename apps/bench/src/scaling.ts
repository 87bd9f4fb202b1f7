import { AdamW, tensor } from '@mamba-ts/tensor';
import type { MambaConfig } from '@mamba-ts/ssm';
import { GPTNeoXModel, gptNeoXConfig } from '@mamba-ts/transformer';
import { randomIds } from './infer.js';
import type { ScalingPoint } from './report/schema.js';
import { adamwStep, measureSteps } from './train.js';

/**
 * The Transformer to set beside a Mamba of the same width: half the layers (one attention + MLP pair per two
 * Mamba blocks), heads of 64 dimensions, the same vocabulary.
 */
export function comparableTransformer(cfg: MambaConfig, maxLength: number, seed: number): GPTNeoXModel {
  const heads = Math.max(1, Math.round(cfg.hiddenSize / 64));
  return new GPTNeoXModel(
    gptNeoXConfig({
      vocabSize: cfg.vocabSize,
      hiddenSize: heads * Math.floor(cfg.hiddenSize / heads),
      numHiddenLayers: Math.max(1, Math.round(cfg.numLayers / 2)),
      numAttentionHeads: heads,
      intermediateSize: 4 * cfg.hiddenSize,
      maxPositionEmbeddings: maxLength,
    }),
    { seed },
  );
}

/** Full fp32 training tokens/s and peak bytes per token of the comparable Transformer at one size. */
export async function transformerPoint(model: GPTNeoXModel, batch: number, length: number, seed: number): Promise<ScalingPoint> {
  const params = model.trainableParameters();
  const optimizer = new AdamW(params, { lr: 1e-4, weightDecay: 0 });
  const ids = tensor(randomIds(batch, length, model.config.vocabSize, seed), [batch, length], 'i32');
  try {
    const gradientBytes = params.reduce((n, p) => n + 4 * p.value.size, 0);
    const m = await measureSteps(adamwStep(() => model.loss(ids), params, optimizer), gradientBytes, 2, 1);
    const tokens = batch * length;
    const seconds = [...m.seconds].sort((a, b) => a - b)[m.seconds.length >> 1];
    return { model: 'transformer', seqLen: length, batchSize: batch, tokensPerSecond: tokens / seconds, peakBytesPerToken: m.peakBytes / tokens };
  } finally {
    ids.dispose();
    optimizer.dispose();
  }
}
