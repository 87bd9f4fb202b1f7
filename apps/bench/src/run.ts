import { cpus, hostname, totalmem } from 'node:os';
import { tensor, type TensorData } from '@mamba-ts/tensor';
import { MambaLM, fromPretrained, presetConfig, readMambaConfig, type MambaConfig } from '@mamba-ts/ssm';
import { describeBackend, useBackend } from '@mamba-ts/cli';
import { benchDecode, benchPrefill, type InferResult } from './infer.js';
import { BenchUsageError, TRAIN_MODES, type BenchOptions, type TrainMode } from './options.js';
import { Progress } from './progress.js';
import { PAPER, type BenchReport, type ScalingPoint } from './report/schema.js';
import { benchTraining, type TrainResult } from './train.js';
import { comparableTransformer, transformerPoint } from './scaling.js';

/** Parameter count of a Mamba model, from its config alone. */
export function parameterCount(c: MambaConfig): number {
  const { hiddenSize: D, intermediateSize: E, stateSize: N, timeStepRank: R, convKernel: W, vocabSize: V } = c;
  const bias = c.useBias ? 2 * E + D : 0;
  const layer = 2 * E * D + E * W + (c.useConvBias ? E : 0) + (R + 2 * N) * E + R * E + E + E * N + E + D * E + D + bias;
  return V * D * (c.tieWordEmbeddings ? 1 : 2) + c.numLayers * layer + D;
}

/** Rough bytes a full fp32 training step needs: weights, gradients, AdamW state and saved activations. */
export function estimateTrainingBytes(cfg: MambaConfig, parameters: number, batch: number, length: number): number {
  const perTokenPerLayer = (10 * cfg.intermediateSize + 4 * cfg.hiddenSize + 2 * cfg.stateSize) * 4;
  return parameters * 16 + batch * length * cfg.numLayers * perTokenPerLayer;
}

async function snapshot(model: MambaLM): Promise<Map<string, TensorData>> {
  const out = new Map<string, TensorData>();
  for (const [name, p] of model.namedParameters()) out.set(name, await p.value.data());
  return out;
}

function restore(model: MambaLM, values: Map<string, TensorData>): void {
  for (const [name, p] of model.namedParameters()) p.assign(tensor(values.get(name)!, p.shape, p.value.dtype));
}

/** A scaling point that ran out of device memory is reported as such (the curve stops there), not as a crash. */
async function orOutOfMemory(model: ScalingPoint['model'], batch: number, length: number, measure: () => Promise<ScalingPoint>): Promise<ScalingPoint> {
  try {
    return await measure();
  } catch (e) {
    const message = (e as Error).message;
    if (!/out of (device )?memory/i.test(message)) throw e;
    return { model, seqLen: length, batchSize: batch, tokensPerSecond: NaN, peakBytesPerToken: NaN, error: message.split(';')[0] };
  }
}

export async function runBench(opts: BenchOptions): Promise<BenchReport> {
  const started = performance.now();
  let backend: string;
  try {
    backend = await useBackend(opts.backend);
  } catch (e) {
    if (opts.backendExplicit) throw new BenchUsageError((e as Error).message);
    throw e;
  }
  const cfg = opts.model ? await readMambaConfig(opts.model) : presetConfig(opts.preset);
  const parameters = parameterCount(cfg);
  const trainModes = opts.modes.filter((m): m is TrainMode => (TRAIN_MODES as readonly string[]).includes(m));
  const needed = estimateTrainingBytes(cfg, parameters, opts.batchSize, opts.seqLen);
  const described = await describeBackend();
  const limit = 0.9 * described.memoryBytes;
  if (trainModes.length > 0 && needed > limit) {
    throw new BenchUsageError(
      `batch ${opts.batchSize} × ${opts.seqLen} tokens needs about ${(needed / 2 ** 30).toFixed(1)} GiB for full fp32 training, ` +
        `more than the ${(limit / 2 ** 30).toFixed(1)} GiB available on ${backend}; lower --batch-size or --seq-len.`,
    );
  }
  const model = opts.model ? (await fromPretrained(opts.model, { tokenizer: false })).model : new MambaLM(cfg, { seed: opts.seed });
  const name = opts.model ?? `preset ${opts.preset}`;
  const scaling = trainModes.includes('full-fp32') ? opts.scalingLengths.flatMap((l) => opts.scalingBatches.map((b) => [b, l] as const)) : [];
  const totalWork =
    trainModes.length * (opts.steps + opts.warmup) +
    (opts.modes.includes('prefill') ? 4 : 0) +
    (opts.modes.includes('decode') ? 2 * (opts.decodeTokens + 1) : 0) +
    scaling.length * 6;
  const progress = new Progress(totalWork, !opts.quiet && !opts.json);
  const settings = { batchSize: opts.batchSize, seqLen: opts.seqLen, steps: opts.steps, warmup: opts.warmup, seed: opts.seed, lora: { rank: opts.loraRank, alpha: opts.loraAlpha, targets: opts.loraTargets }, recompute: opts.recompute };

  const training: TrainResult[] = [];
  const inference: InferResult[] = [];
  const points: ScalingPoint[] = [];
  try {
    // Every mode starts from the same weights, so their losses compare; the copy lives on the host, not in the
    // backend's memory figures.
    const initial = await snapshot(model);
    for (const mode of trainModes) {
      training.push(await benchTraining(model, mode, settings, () => progress.tick(mode)));
      restore(model, initial);
    }
    if (opts.modes.includes('prefill')) {
      inference.push(await benchPrefill(model, opts.batchSize, opts.seqLen, 3, opts.seed));
      progress.tick('prefill', 4);
    }
    if (opts.modes.includes('decode')) {
      for (const batch of [...new Set([1, opts.decodeBatch])]) {
        inference.push(await benchDecode(model, batch, opts.decodeTokens, opts.seed));
        progress.tick(`decode b${batch}`, opts.decodeTokens + 1);
      }
    }
    const transformer = scaling.length > 0 ? comparableTransformer(cfg, Math.max(...opts.scalingLengths), opts.seed) : null;
    try {
      for (const [batch, length] of scaling) {
        if (estimateTrainingBytes(cfg, parameters, batch, length) > limit) continue;
        points.push(
          await orOutOfMemory('mamba', batch, length, async () => {
            const r = await benchTraining(model, 'full-fp32', { ...settings, batchSize: batch, seqLen: length, steps: 2, warmup: 1 });
            return { model: 'mamba', seqLen: length, batchSize: batch, tokensPerSecond: r.tokensPerSecond.median, peakBytesPerToken: r.peakBytesPerToken };
          }),
        );
        progress.tick(`scaling mamba b${batch} L${length}`, 3);
        points.push(await orOutOfMemory('transformer', batch, length, () => transformerPoint(transformer!, batch, length, opts.seed)));
        progress.tick(`scaling transformer b${batch} L${length}`, 3);
      }
    } finally {
      transformer?.dispose();
    }
  } finally {
    progress.finish();
    model.dispose();
  }

  const base = training.find((t) => t.mode === 'full-fp32');
  const ratios = base
    ? training.map((t) => ({
        mode: t.mode,
        tokensPerSecond: t.tokensPerSecond.median / base.tokensPerSecond.median,
        memoryPerTokenReduction: 1 - t.peakBytesPerToken / base.peakBytesPerToken,
      }))
    : [];
  return {
    schema: 'mamba-ts-bench/1',
    createdAt: new Date().toISOString(),
    machine: {
      hostname: hostname(), platform: process.platform, arch: process.arch, cpu: cpus()[0]?.model ?? 'unknown',
      cpuCount: cpus().length, totalMemoryBytes: totalmem(), node: process.version,
    },
    backend: { name: backend, device: described.device },
    model: {
      source: opts.model ? 'checkpoint' : 'preset', name, hiddenSize: cfg.hiddenSize, numLayers: cfg.numLayers,
      intermediateSize: cfg.intermediateSize, stateSize: cfg.stateSize, vocabSize: cfg.vocabSize, parameters,
    },
    settings: { ...settings, modes: opts.modes },
    training,
    ratios,
    inference,
    scaling: points,
    paper: PAPER,
    seconds: (performance.now() - started) / 1000,
  };
}
