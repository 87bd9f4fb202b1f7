import * as T from '@mamba-ts/tensor';
import type { MambaLM } from '@mamba-ts/ssm';
import type { Batch } from './data.js';
import type { LossScaler } from './precision.js';

export interface TrainStepOptions {
  lr: number;
  /** Clip the global gradient norm to this (0 = no clipping). */
  maxGradNorm: number;
  /** Dynamic loss scaling (f16); null for fp32/bf16. */
  scaler: LossScaler | null;
}

export interface TrainStepResult {
  /** Mean loss over the micro-batches (unscaled). */
  loss: number;
  /** Global gradient norm before clipping (unscaled). */
  gradNorm: number;
  /** False when the gradients were not finite and the update was skipped. */
  applied: boolean;
  /** The loss scale the step ran with (1 without a scaler). */
  lossScale: number;
  tokens: number;
}

/**
 * One optimizer step over `microBatches` (gradient accumulation): scaled loss → backward → one read of the loss and
 * the squared gradient norm (inf/NaN anywhere makes it non-finite) → skip or unscale, clip and apply AdamW.
 */
export async function trainStep(
  model: MambaLM,
  params: readonly T.Parameter[],
  optimizer: T.AdamW,
  microBatches: readonly Batch[],
  { lr, maxGradNorm, scaler }: TrainStepOptions,
): Promise<TrainStepResult> {
  const scale = scaler?.scale ?? 1;
  const n = microBatches.length;
  let grads: T.Tensor[] | null = null;
  let lossSum: T.Tensor | null = null;
  for (const b of microBatches) {
    const { value, grads: g } = T.tidy(() => {
      const ids = T.tensor(b.ids, [b.batch, b.length], 'i32');
      const labels = T.tensor(b.labels, [b.batch, b.length], 'i32');
      return T.valueAndGrad(() => T.mulScalar(model.loss(ids, { labels }), scale / n), params.map((p) => p.value));
    });
    if (grads === null || lossSum === null) {
      grads = g;
      lossSum = value;
      continue;
    }
    const prev: T.Tensor[] = grads;
    const prevLoss: T.Tensor = lossSum;
    grads = T.tidy(() => prev.map((a, i) => T.add(a, g[i])));
    lossSum = T.tidy(() => T.add(prevLoss, value));
    T.dispose([...prev, ...g, prevLoss, value]);
  }
  const stats = T.tidy(() => {
    return T.concat([T.reshape(lossSum!, [1]), T.reshape(T.sumSquares(grads!), [1])]);
  });
  const [scaledLoss, sumSq] = await stats.data();
  T.dispose([stats, lossSum!]);
  const loss = scaledLoss / scale;
  const gradNorm = Math.sqrt(sumSq) / scale;
  const finite = Number.isFinite(gradNorm) && Number.isFinite(loss);
  const applied = scaler ? scaler.update(finite) : finite;
  if (applied) {
    const factor = (maxGradNorm > 0 ? Math.min(1, maxGradNorm / (gradNorm + 1e-6)) : 1) / scale;
    optimizer.step(grads!, lr, { gradScale: factor });
  }
  T.dispose(grads!);
  return { loss, gradNorm, applied, lossScale: scale, tokens: microBatches.reduce((s, b) => s + b.tokens, 0) };
}
