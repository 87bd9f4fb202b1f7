import { AdamW, engine, memory, resetPeak, tidy, valueAndGrad, type Parameter, type Tensor } from '@mamba-ts/tensor';
import type { MambaLM, RecomputeMode } from '@mamba-ts/ssm';
import { LossScaler, applyLora, applyPrecision, removeLora, trainStep } from '@mamba-ts/peft';
import { randomIds } from './infer.js';
import type { TrainMode } from './options.js';
import { summarize, type Summary } from './stats.js';

export interface MemoryBreakdown {
  weights: number;
  gradients: number;
  optimizer: number;
  /** Peak during a step minus what was live before it and the gradients: activations and kernel workspace. */
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
  recompute: RecomputeMode;
}

export interface StepMeasurement {
  seconds: number[];
  peakBytes: number;
  activations: number;
  finalLoss: number;
  skipped: number;
}

const bytesOf = (ps: readonly Parameter[]): number => ps.reduce((n, p) => n + p.value.size * (p.value.dtype === 'f32' || p.value.dtype === 'i32' ? 4 : 2), 0);
const countOf = (ps: readonly Parameter[]): number => ps.reduce((n, p) => n + p.value.size, 0);

/** A training step that resolves to its loss and whether the update was applied, once the device is done. */
export type Step = () => Promise<{ loss: number; applied: boolean }>;

/** Runs `warmup + steps` training steps; times each and records the backend's peak bytes during it. */
export async function measureSteps(step: Step, gradientBytes: number, steps: number, warmup: number, onStep: () => void = () => {}): Promise<StepMeasurement> {
  const m: StepMeasurement = { seconds: [], peakBytes: 0, activations: 0, finalLoss: NaN, skipped: 0 };
  for (let i = 0; i < warmup + steps; i++) {
    await engine().sync();
    const before = memory().liveBytes;
    resetPeak();
    const t0 = performance.now();
    const { loss, applied } = await step();
    const elapsed = (performance.now() - t0) / 1000;
    m.finalLoss = loss;
    if (!applied) m.skipped++;
    const peak = memory().peakBytes;
    if (i >= warmup) {
      m.seconds.push(elapsed);
      m.peakBytes = Math.max(m.peakBytes, peak);
      m.activations = Math.max(m.activations, peak - before - gradientBytes);
    }
    onStep();
  }
  return m;
}

/** A plain forward + backward + AdamW step of `lossOf` over `params` (for models outside the fine-tuning loop). */
export function adamwStep(lossOf: () => Tensor, params: readonly Parameter[], optimizer: AdamW): Step {
  return async () => {
    const value = tidy(() => {
      const { value, grads } = valueAndGrad(lossOf, params.map((p) => p.value));
      optimizer.step(grads);
      return value;
    });
    const loss = await value.item();
    value.dispose();
    return { loss, applied: true };
  };
}

/**
 * Times the fine-tuning loop's own step (peft's `trainStep`: precision policy, f16 loss scaling, clipping, AdamW) of
 * one mode on random tokens. The model is restored afterwards (LoRA removed, fp32 compute), so modes share one model.
 */
export async function benchTraining(model: MambaLM, mode: TrainMode, s: TrainSettings, onStep: () => void = () => {}): Promise<TrainResult> {
  const [method, precision] = mode.split('-') as ['full' | 'lora', 'fp32' | 'bf16' | 'f16'];
  if (method === 'lora') applyLora(model, { r: s.lora.rank, alpha: s.lora.alpha, targets: s.lora.targets, seed: s.seed });
  applyPrecision(model, precision);
  model.recompute = s.recompute;
  const params = model.trainableParameters();
  const optimizer = new AdamW(params, { lr: 1e-4, weightDecay: 0 });
  const ids = randomIds(s.batchSize, s.seqLen, model.config.vocabSize, s.seed + 1);
  const batch = { ids, labels: ids, batch: s.batchSize, length: s.seqLen, tokens: s.batchSize * s.seqLen };
  const scaler = precision === 'f16' ? new LossScaler() : null;
  const tokens = batch.tokens;
  const weights = bytesOf(model.parameters());
  let m: StepMeasurement;
  try {
    const step: Step = async () => trainStep(model, params, optimizer, [batch], { lr: 1e-4, maxGradNorm: 1, scaler });
    m = await measureSteps(step, bytesOf(params), s.steps, s.warmup, onStep);
  } finally {
    optimizer.dispose();
    if (method === 'lora') removeLora(model);
    model.computeDType = 'f32';
    model.recompute = 'none';
  }
  return {
    mode,
    method,
    precision,
    tokensPerStep: tokens,
    tokensPerSecond: summarize(m.seconds.map((t) => tokens / t)),
    stepSeconds: summarize(m.seconds),
    peakBytes: m.peakBytes,
    peakBytesPerToken: m.peakBytes / tokens,
    memory: { weights, gradients: bytesOf(params), optimizer: 8 * countOf(params), activations: Math.max(0, m.activations) },
    trainableParameters: countOf(params),
    totalParameters: model.parameterCount(),
    finalLoss: m.finalLoss,
    skippedSteps: m.skipped,
  };
}
