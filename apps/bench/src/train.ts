import { AdamW, engine, memory, resetPeak, tensor, tidy, valueAndGrad, type Parameter, type Tensor } from '@mamba-ts/tensor';
import type { MambaLM } from '@mamba-ts/ssm';
import { applyLora, removeLora } from '@mamba-ts/peft';
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
}

export interface StepMeasurement {
  seconds: number[];
  peakBytes: number;
  activations: number;
  finalLoss: number;
}

const bytesOf = (ps: readonly Parameter[]): number => ps.reduce((n, p) => n + p.value.size * (p.value.dtype === 'f32' || p.value.dtype === 'i32' ? 4 : 2), 0);
const countOf = (ps: readonly Parameter[]): number => ps.reduce((n, p) => n + p.value.size, 0);

/**
 * Runs `warmup + steps` training steps; times each (ending with a read of the loss, which waits for the device)
 * and records the backend's peak bytes during it.
 */
export async function measureSteps(step: () => Tensor, gradientBytes: number, steps: number, warmup: number, onStep: () => void = () => {}): Promise<StepMeasurement> {
  const m: StepMeasurement = { seconds: [], peakBytes: 0, activations: 0, finalLoss: NaN };
  for (let i = 0; i < warmup + steps; i++) {
    await engine().sync();
    const before = memory().liveBytes;
    resetPeak();
    const t0 = performance.now();
    const loss = step();
    m.finalLoss = await loss.item();
    const elapsed = (performance.now() - t0) / 1000;
    loss.dispose();
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

/** One forward + backward + AdamW step of `lossOf` over `params`, as a function returning the loss. */
export function adamwStep(lossOf: () => Tensor, params: readonly Parameter[], optimizer: AdamW): () => Tensor {
  return () =>
    tidy(() => {
      const { value, grads } = valueAndGrad(lossOf, params.map((p) => p.value));
      optimizer.step(grads);
      return value;
    });
}

/**
 * Times training steps (forward, backward, AdamW) of one mode on random tokens. The model is restored afterwards
 * (LoRA removed, compute dtype reset), so modes can share one model.
 */
export async function benchTraining(model: MambaLM, mode: TrainMode, s: TrainSettings, onStep: () => void = () => {}): Promise<TrainResult> {
  const [method, precision] = mode.split('-') as ['full' | 'lora', 'fp32' | 'bf16' | 'f16'];
  if (method === 'lora') applyLora(model, { r: s.lora.rank, alpha: s.lora.alpha, targets: s.lora.targets, seed: s.seed });
  model.computeDType = precision === 'fp32' ? 'f32' : precision;
  const params = model.trainableParameters();
  const optimizer = new AdamW(params, { lr: 1e-4, weightDecay: 0 });
  const ids = tensor(randomIds(s.batchSize, s.seqLen, model.config.vocabSize, s.seed + 1), [s.batchSize, s.seqLen], 'i32');
  const tokens = s.batchSize * s.seqLen;
  const weights = bytesOf(model.parameters());
  let m: StepMeasurement;
  try {
    m = await measureSteps(adamwStep(() => model.loss(ids), params, optimizer), bytesOf(params), s.steps, s.warmup, onStep);
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
    tokensPerSecond: summarize(m.seconds.map((t) => tokens / t)),
    stepSeconds: summarize(m.seconds),
    peakBytes: m.peakBytes,
    peakBytesPerToken: m.peakBytes / tokens,
    memory: { weights, gradients: bytesOf(params), optimizer: 8 * countOf(params), activations: Math.max(0, m.activations) },
    trainableParameters: countOf(params),
    totalParameters: model.parameterCount(),
    finalLoss: m.finalLoss,
    skippedSteps: 0,
  };
}
