import { AdamW, memory, resetPeak, tensor, tidy, valueAndGrad, engine, type Parameter } from '@mamba-ts/tensor';
import type { MambaLM } from '@mamba-ts/ssm';
import { applyLora, removeLora } from '@mamba-ts/peft';
import { randomIds } from './infer.js';
import type { TrainMode } from './options.js';
import { summarize, type Summary } from './stats.js';

export interface MemoryBreakdown {
  weights: number;
  gradients: number;
  optimizer: number;
  /** Peak during a step minus weights, optimizer state and gradients: activations and kernel workspace. */
  activations: number;
}

export interface TrainResult {
  mode: TrainMode;
  method: 'full' | 'lora';
  precision: 'fp32' | 'bf16' | 'f16';
  tokensPerStep: number;
  tokensPerSecond: Summary;
  stepSeconds: Summary;
  peakBytes: number;
  peakBytesPerToken: number;
  memory: MemoryBreakdown;
  trainableParameters: number;
  totalParameters: number;
  finalLoss: number;
  skippedSteps: number;
}

export interface TrainSettings {
  batchSize: number;
  seqLen: number;
  steps: number;
  warmup: number;
  seed: number;
  lora: { rank: number; alpha: number; targets: string[] };
}

const paramBytes = (ps: readonly Parameter[]): number => ps.reduce((n, p) => n + p.value.size * (p.value.dtype === 'f32' || p.value.dtype === 'i32' ? 4 : 2), 0);

/**
 * Times training steps (forward, backward, AdamW) of one mode on random tokens. The model is restored afterwards
 * (LoRA removed, compute dtype reset), so modes can share one model.
 */
export async function benchTraining(
  model: MambaLM,
  mode: TrainMode,
  s: TrainSettings,
  onStep: () => void = () => {},
): Promise<TrainResult> {
  const [method, precision] = mode.split('-') as ['full' | 'lora', 'fp32' | 'bf16' | 'f16'];
  if (method === 'lora') applyLora(model, { r: s.lora.rank, alpha: s.lora.alpha, targets: s.lora.targets, seed: s.seed });
  model.computeDType = precision === 'fp32' ? 'f32' : precision;
  const params = model.trainableParameters();
  const optimizer = new AdamW(params, { lr: 1e-4, weightDecay: 0 });
  const ids = tensor(randomIds(s.batchSize, s.seqLen, model.config.vocabSize, s.seed + 1), [s.batchSize, s.seqLen], 'i32');
  const tokens = s.batchSize * s.seqLen;
  const seconds: number[] = [];
  let peakBytes = 0;
  let activations = 0;
  let finalLoss = NaN;
  const gradientBytes = paramBytes(params);
  const weights = paramBytes(model.parameters());
  try {
    for (let i = 0; i < s.warmup + s.steps; i++) {
      await engine().sync();
      const before = memory().liveBytes;
      resetPeak();
      const t0 = performance.now();
      const loss = tidy(() => {
        const { value, grads } = valueAndGrad(() => model.loss(ids), params.map((p) => p.value));
        optimizer.step(grads);
        return value;
      });
      finalLoss = await loss.item();
      const elapsed = (performance.now() - t0) / 1000;
      loss.dispose();
      const peak = memory().peakBytes;
      if (i >= s.warmup) {
        seconds.push(elapsed);
        peakBytes = Math.max(peakBytes, peak);
        activations = Math.max(activations, peak - before - gradientBytes);
      }
      onStep();
    }
  } finally {
    ids.dispose();
    optimizer.dispose();
    if (method === 'lora') removeLora(model);
    model.computeDType = 'f32';
  }
  return {
    mode,
    method,
    precision,
    tokensPerStep: tokens,
    tokensPerSecond: summarize(seconds.map((t) => tokens / t)),
    stepSeconds: summarize(seconds),
    peakBytes,
    peakBytesPerToken: peakBytes / tokens,
    memory: { weights, gradients: gradientBytes, optimizer: 2 * 4 * params.reduce((n, p) => n + p.value.size, 0), activations: Math.max(0, activations) },
    trainableParameters: params.reduce((n, p) => n + p.value.size, 0),
    totalParameters: model.parameterCount(),
    finalLoss,
    skippedSteps: 0,
  };
}
