import { createHash } from 'node:crypto';
import { appendFile, copyFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import * as T from '@mamba-ts/tensor';
import { writeSafetensorsFile } from '@mamba-ts/tensor/node';
import { fromPretrained, mambaConfigToJson, parseRecomputeMode, type MambaLM, type RecomputeMode } from '@mamba-ts/ssm';
import { saveAdapter } from './adapter.js';
import { findCheckpoint, loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import {
  BatchStream, makeRows, readJsonl, splitRecords, stackRows, targetCount, tokenizeRecord, type BadLinePolicy, type Encoder, type Row,
  type SourcedRecord,
} from './data.js';
import { pathExists, writeDirAtomic, writeFileAtomic } from './fs-atomic.js';
import { applyLora, setLoraDropoutRng, trainableReport, type TrainableReport } from './lora.js';
import { trainStep } from './train-step.js';
import { LossScaler, applyPrecision, parsePrecision, type LossScalerOptions, type Precision } from './precision.js';
import { ProgressBar, type ProgressStream } from './progress.js';
import { Rng } from './rng.js';

export type FinetuneMode = 'full' | 'lora';
export type ScheduleName = 'constant' | 'linear' | 'cosine';

/** Options of `mamba-ts finetune` (CLI flag names in brackets). */
export interface FinetuneOptions {
  /** Model directory: config.json, weights, tokenizer.json [--model]. */
  model: string;
  /** JSONL training data [--data]. */
  data: string;
  /** Output directory, written only when the run completes [--out]. */
  out: string;
  /** Full fine-tuning (HF checkpoint out) or LoRA (PEFT adapter out) [--mode], default lora. */
  mode?: FinetuneMode;
  /** fp32 | bf16 | f16 (fp16 accepted) [--precision], default fp32. */
  precision?: Precision | 'fp16';
  /** LoRA targets (names or path patterns) [--lora-targets], default in_proj, x_proj, dt_proj, out_proj, embeddings. */
  loraTargets?: readonly string[];
  /** [--rank], default 8. */
  rank?: number;
  /** [--alpha], default 2·rank. */
  alpha?: number;
  loraDropout?: number;
  rslora?: boolean;
  /** Peak learning rate [--lr], default 2e-3 for LoRA, 1e-4 for full. */
  lr?: number;
  /** Optimizer steps [--steps], default one epoch. */
  steps?: number;
  /** Rows per micro-batch [--batch-size], default 4. */
  batchSize?: number;
  /** Micro-batches per optimizer step, default 1. */
  gradAccum?: number;
  /** Row length in tokens [--seq-len], default 512. */
  seqLen?: number;
  /** Pack examples into full rows (default) or pad one example per row. */
  packing?: boolean;
  /** Without packing: cut over-long examples instead of refusing them. */
  truncate?: boolean;
  schedule?: ScheduleName;
  warmupSteps?: number;
  /** Clip the global gradient norm to this (0 = no clipping), default 1. */
  maxGradNorm?: number;
  /** AdamW weight decay on matrices (not A_log, D, norms, biases), default 0. */
  weightDecay?: number;
  /** Held-out data file for the evaluation loss. */
  evalData?: string;
  /** Without evalData: hold out this fraction of the records, default 0. */
  evalFraction?: number;
  /** Evaluate every N steps (0 = only at the end). */
  evalEvery?: number;
  /** Save a checkpoint every N steps (0 = never), default 50. */
  checkpointEvery?: number;
  /** Where checkpoints go, default `<out>.checkpoint`. */
  checkpointDir?: string;
  /** Continue from the checkpoint in checkpointDir [--resume]. */
  resume?: boolean;
  /** JSONL metrics, default `<out>.metrics.jsonl`. */
  metricsLog?: string;
  seed?: number;
  /** Malformed data lines: stop (default) or skip with a warning. */
  onBadLine?: BadLinePolicy;
  /** f16 loss-scaling settings. */
  lossScale?: LossScalerOptions;
  /** Activation recomputation (see MambaLM.recompute): 'none' (default), 'ssm' or 'layer'. */
  recompute?: RecomputeMode;
  /** No progress bar or messages. */
  quiet?: boolean;
  /** Where progress goes (default process.stderr). */
  progressStream?: ProgressStream;
  /** Warnings (default: written to the progress stream). */
  warn?: (message: string) => void;
  /** Called after every step (after any checkpoint); throwing stops the run (nothing is written to out). */
  onStep?: (info: StepInfo) => void | Promise<void>;
}

export interface StepInfo {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  skipped: boolean;
  lossScale: number;
  tokens: number;
  tokensPerSecond: number;
}

export interface FinetuneResult {
  out: string;
  mode: FinetuneMode;
  precision: Precision;
  totalSteps: number;
  /** The step this run started from (0, or the checkpoint's step on resume). */
  startStep: number;
  /** Training loss of every step this run took. */
  losses: number[];
  evalLoss: number | null;
  skippedSteps: number;
  lossScale: number | null;
  tokensPerSecond: number;
  trainable: TrainableReport;
  checkpointDir: string;
  metricsLog: string;
}

const DEFAULT_TARGETS = ['in_proj', 'x_proj', 'dt_proj', 'out_proj', 'embeddings'];

interface Resolved extends Required<Omit<FinetuneOptions, 'steps' | 'evalData' | 'onStep' | 'progressStream' | 'warn' | 'lossScale' | 'precision'>> {
  precision: Precision;
  steps: number | undefined;
  evalData: string | undefined;
  lossScale: LossScalerOptions;
}

function resolveOptions(o: FinetuneOptions): Resolved {
  const need = (cond: boolean, message: string): void => {
    if (!cond) throw new Error(message);
  };
  const posInt = (v: number | undefined, flag: string): void => need(v === undefined || (Number.isInteger(v) && v > 0), `${flag} must be a positive integer, got ${v}.`);
  const nonNegInt = (v: number | undefined, flag: string): void => need(v === undefined || (Number.isInteger(v) && v >= 0), `${flag} must be an integer ≥ 0, got ${v}.`);
  for (const [k, flag] of [['model', '--model'], ['data', '--data'], ['out', '--out']] as const) {
    need(typeof o[k] === 'string' && o[k] !== '', `${flag} is required.`);
  }
  const mode = o.mode ?? 'lora';
  need(mode === 'full' || mode === 'lora', `--mode must be full or lora, got "${mode}".`);
  posInt(o.steps, '--steps');
  posInt(o.batchSize, '--batch-size');
  posInt(o.gradAccum, '--grad-accum');
  posInt(o.seqLen, '--seq-len');
  need(o.rank === undefined || (Number.isInteger(o.rank) && o.rank > 0), `--rank must be a positive integer, got ${o.rank}.`);
  need(o.alpha === undefined || (Number.isFinite(o.alpha) && o.alpha > 0), `--alpha must be a positive number, got ${o.alpha}.`);
  need(o.lr === undefined || (Number.isFinite(o.lr) && o.lr > 0), `--lr must be a positive number, got ${o.lr}.`);
  need(o.maxGradNorm === undefined || o.maxGradNorm >= 0, `--max-grad-norm must be ≥ 0, got ${o.maxGradNorm}.`);
  nonNegInt(o.warmupSteps, '--warmup-steps');
  nonNegInt(o.evalEvery, '--eval-every');
  nonNegInt(o.checkpointEvery, '--checkpoint-every');
  const schedule = o.schedule ?? 'linear';
  need(['constant', 'linear', 'cosine'].includes(schedule), `--schedule must be constant, linear or cosine, got "${schedule}".`);
  const rank = o.rank ?? 8;
  const out = resolve(o.out);
  return {
    model: o.model,
    data: o.data,
    out,
    mode,
    precision: parsePrecision(o.precision ?? 'fp32', '--precision'),
    loraTargets: o.loraTargets ?? DEFAULT_TARGETS,
    rank,
    alpha: o.alpha ?? 2 * rank,
    loraDropout: o.loraDropout ?? 0,
    rslora: o.rslora ?? false,
    recompute: parseRecomputeMode(o.recompute ?? 'none', 'recompute'),
    lr: o.lr ?? (mode === 'lora' ? 2e-3 : 1e-4),
    steps: o.steps,
    batchSize: o.batchSize ?? 4,
    gradAccum: o.gradAccum ?? 1,
    seqLen: o.seqLen ?? 512,
    packing: o.packing ?? true,
    truncate: o.truncate ?? false,
    schedule,
    warmupSteps: o.warmupSteps ?? 0,
    maxGradNorm: o.maxGradNorm ?? 1,
    weightDecay: o.weightDecay ?? 0,
    evalData: o.evalData,
    evalFraction: o.evalFraction ?? 0,
    evalEvery: o.evalEvery ?? 0,
    checkpointEvery: o.checkpointEvery ?? 50,
    checkpointDir: resolve(o.checkpointDir ?? `${out}.checkpoint`),
    resume: o.resume ?? false,
    metricsLog: resolve(o.metricsLog ?? `${out}.metrics.jsonl`),
    seed: o.seed ?? 0,
    onBadLine: o.onBadLine ?? 'stop',
    lossScale: o.lossScale ?? {},
    quiet: o.quiet ?? false,
  };
}

function scheduleOf(o: Resolved, totalSteps: number): (step: number) => number {
  const args = { lr: o.lr, warmupSteps: o.warmupSteps, totalSteps };
  if (o.schedule === 'cosine') return T.cosineSchedule(args);
  if (o.schedule === 'constant') return T.constantSchedule(args);
  return T.linearSchedule(args);
}

/** Weight decay applies to matrices only: never to A_log, D, norms, biases (Mamba's recipe). */
function decays(name: string, p: T.Parameter): boolean {
  return p.shape.length >= 2 && !/(^|\.)A_log$/.test(name);
}

async function loadRows(
  path: string,
  records: SourcedRecord[] | null,
  tok: Encoder,
  o: Resolved,
  eosId: number,
  padId: number,
  warn: (m: string) => void,
): Promise<{ rows: Row[]; records: SourcedRecord[]; skipped: number }> {
  let skipped = 0;
  if (records === null) {
    const file = await readJsonl(path, { onBadLine: o.onBadLine, warn });
    records = file.records;
    skipped = file.skipped.length;
  }
  if (records.length === 0) {
    throw new Error(`${path}: no training records${skipped ? ` (${skipped} malformed line(s) skipped)` : ''}; each line must be {"text": …} or {"instruction", "input", "output"}.`);
  }
  const examples = records.map((r) => tokenizeRecord(r, tok, eosId));
  const rows = makeRows(examples, { seqLen: o.seqLen, packing: o.packing, truncate: o.truncate, padId, source: path });
  if (rows.length === 0) throw new Error(`${path}: no token carries a loss (every record is empty or all prompt); the dataset is empty.`);
  return { rows, records, skipped };
}

async function fileHash(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex').slice(0, 16);
}

/** Keeps only metrics lines up to `step`, so a resumed run's log reads as one uninterrupted run. */
async function truncateMetrics(path: string, step: number): Promise<void> {
  const text = await readFile(path, 'utf8').catch(() => null);
  if (text === null) return;
  const kept = text.split('\n').filter((line) => {
    if (line.trim() === '') return false;
    try {
      return (JSON.parse(line) as { step?: number }).step! <= step;
    } catch {
      return false;
    }
  });
  await writeFileAtomic(path, kept.map((l) => `${l}\n`).join(''));
}

/** Writes a Hugging Face checkpoint directory (config.json + model.safetensors + tokenizer files) atomically. */
export async function saveFullCheckpoint(model: MambaLM, out: string, tokenizerDir?: string): Promise<void> {
  const entries: [string, Awaited<ReturnType<typeof T.safetensorsEntry>>][] = [];
  for (const [name, p] of model.namedParameters()) entries.push([name, await T.safetensorsEntry(p.value)]);
  await writeDirAtomic(out, async (tmp) => {
    await writeSafetensorsFile(join(tmp, 'model.safetensors'), entries, { format: 'pt' });
    await writeFileAtomic(join(tmp, 'config.json'), `${JSON.stringify(mambaConfigToJson(model.config), null, 2)}\n`);
    if (tokenizerDir) {
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
        if (await pathExists(join(tokenizerDir, f))) await copyFile(join(tokenizerDir, f), join(tmp, f));
      }
    }
  });
}

/**
 * Fine-tunes a Mamba checkpoint on JSONL data, full or LoRA, in fp32/bf16/f16, and writes the result to `out`
 * only when the run completes (an HF checkpoint for full mode, a PEFT adapter for LoRA). Checkpoints (written
 * atomically) let `resume` continue the same run bit for bit.
 */
export async function runFinetune(options: FinetuneOptions): Promise<FinetuneResult> {
  const o = resolveOptions(options);
  const progress = o.quiet ? null : new ProgressBar(options.progressStream ?? process.stderr);
  const say = (m: string): void => progress?.message(m);
  const warn = options.warn ?? ((m: string) => (options.progressStream ?? process.stderr).write(`warning: ${m}\n`));
  if (await pathExists(o.out)) throw new Error(`--out ${o.out}: already exists; choose another directory or remove it.`);
  const existing = await findCheckpoint(o.checkpointDir);
  if (o.resume && !existing) throw new Error(`--resume: no checkpoint in ${o.checkpointDir}; start without --resume.`);
  if (!o.resume && existing) {
    throw new Error(`${o.checkpointDir}: a checkpoint of an earlier run is there; pass --resume to continue it or remove the directory.`);
  }

  const { model, tokenizer } = await fromPretrained(o.model, { dtype: 'f32', warn });
  let optimizer: T.AdamW | null = null;
  try {
    if (!tokenizer) throw new Error(`${join(o.model, 'tokenizer.json')}: file not found; fine-tuning needs the tokenizer to encode the data.`);
    applyPrecision(model, o.precision);
    model.recompute = o.recompute;
    if (o.mode === 'lora') {
      applyLora(model, { r: o.rank, alpha: o.alpha, dropout: o.loraDropout, useRslora: o.rslora, targets: o.loraTargets, seed: o.seed }, '--lora-targets');
    }
    const trainable = trainableReport(model);
    say(trainable.summary);

    const { eosTokenId: eosId, padTokenId: padId } = model.config;
    const all = await readJsonl(o.data, { onBadLine: o.onBadLine, warn });
    const split = o.evalData ? { train: all.records, evaluation: [] } : splitRecords(all.records, o.evalFraction, o.seed);
    if (all.records.length === 0) {
      throw new Error(`${o.data}: no training records${all.skipped.length ? ` (${all.skipped.length} malformed line(s) skipped)` : ''}; the dataset is empty.`);
    }
    const train = await loadRows(o.data, split.train, tokenizer, o, eosId, padId, warn);
    const evalRows = o.evalData
      ? (await loadRows(o.evalData, resolve(o.evalData) === resolve(o.data) ? all.records : null, tokenizer, o, eosId, padId, warn)).rows
      : split.evaluation.length > 0
        ? (await loadRows(o.data, split.evaluation, tokenizer, o, eosId, padId, warn)).rows
        : [];
    const perEpoch = Math.ceil(Math.ceil(train.rows.length / o.batchSize) / o.gradAccum);
    const totalSteps = o.steps ?? perEpoch;

    const named = [...model.namedParameters()].filter(([, p]) => p.requiresGrad);
    optimizer = new T.AdamW(
      named.map(([, p]) => p),
      { lr: o.lr, weightDecay: o.weightDecay, decay: (p, i) => decays(named[i][0], p) },
    );
    const scaler = o.precision === 'f16' ? new LossScaler(o.lossScale) : null;
    const dropoutRng = new Rng((o.seed + 0x9e3779b9) >>> 0);
    const fingerprint: Record<string, unknown> = {
      mode: o.mode, precision: o.precision, targets: o.mode === 'lora' ? [...o.loraTargets] : null, rank: o.rank, alpha: o.alpha,
      loraDropout: o.loraDropout, rslora: o.rslora, lr: o.lr, steps: totalSteps, batchSize: o.batchSize, gradAccum: o.gradAccum,
      seqLen: o.seqLen, packing: o.packing, schedule: o.schedule, warmupSteps: o.warmupSteps, maxGradNorm: o.maxGradNorm,
      weightDecay: o.weightDecay, seed: o.seed, data: await fileHash(o.data),
    };

    let step = 0;
    let tokensSeen = 0;
    let cursor = { epoch: 0, position: 0 };
    const startStep = await (async () => {
      if (!existing) return 0;
      const ckpt = await loadCheckpoint(existing, named.map(([n, p]) => [n, p.shape]));
      try {
        for (const [key, want] of Object.entries(fingerprint)) {
          const had = ckpt.state.fingerprint[key];
          if (JSON.stringify(had) !== JSON.stringify(want)) {
            throw new Error(`--resume: option "${key}" was ${JSON.stringify(had)} in the checkpointed run, now ${JSON.stringify(want)}; resume with the same options.`);
          }
        }
        named.forEach(([n, p], i) => {
          p.assign(ckpt.tensors.get(n)!);
          optimizer!.m[i].dispose();
          optimizer!.v[i].dispose();
          optimizer!.m[i] = ckpt.tensors.get(`m.${n}`)!;
          optimizer!.v[i] = ckpt.tensors.get(`v.${n}`)!;
          ckpt.tensors.delete(`m.${n}`);
          ckpt.tensors.delete(`v.${n}`);
        });
      } finally {
        for (const [k, t] of ckpt.tensors) if (named.every(([n]) => n !== k)) t.dispose();
      }
      optimizer!.stepCount = ckpt.state.optimizerSteps;
      if (scaler && ckpt.state.scaler) scaler.restore(ckpt.state.scaler);
      dropoutRng.state = ckpt.state.rngState;
      cursor = ckpt.state.cursor;
      tokensSeen = ckpt.state.tokensSeen;
      step = ckpt.state.step;
      await truncateMetrics(o.metricsLog, step);
      say(`resuming from ${ckpt.dir} at step ${step}/${totalSteps}`);
      return step;
    })();
    if (!existing) {
      await mkdir(dirname(o.metricsLog), { recursive: true });
      await writeFileAtomic(o.metricsLog, '');
    }
    const log = (entry: Record<string, unknown>): Promise<void> => appendFile(o.metricsLog, `${JSON.stringify(entry)}\n`);

    const stream = new BatchStream(train.rows, o.batchSize, o.seed, padId, cursor);
    const lrAt = scheduleOf(o, totalSteps);
    const losses: number[] = [];
    let runTokens = 0;
    const runStart = performance.now();

    const evaluate = async (): Promise<number | null> => {
      if (evalRows.length === 0) return null;
      setLoraDropoutRng(model, null);
      let total = 0;
      let count = 0;
      for (let i = 0; i < evalRows.length; i += o.batchSize) {
        const rows = evalRows.slice(i, i + o.batchSize);
        const b = stackRows(rows, padId);
        const n = rows.reduce((s, r) => s + targetCount(r), 0);
        const loss = T.tidy(() =>
          T.noGrad(() => model.loss(T.tensor(b.ids, [b.batch, b.length], 'i32'), { labels: T.tensor(b.labels, [b.batch, b.length], 'i32') })),
        );
        total += (await loss.data())[0] * n;
        loss.dispose();
        count += n;
      }
      return total / count;
    };

    const saveState = async (): Promise<void> => {
      const state: TrainerState = {
        version: 1, step, optimizerSteps: optimizer!.stepCount, cursor: stream.cursor, rngState: dropoutRng.state,
        scaler: scaler?.state() ?? null, tokensSeen, fingerprint,
      };
      await saveCheckpoint(o.checkpointDir, state, { params: named.map(([n, p]) => [n, p.value]), m: optimizer!.m, v: optimizer!.v });
    };

    let evalLoss: number | null = null;
    let skippedSteps = 0;
    while (step < totalSteps) {
      const t0 = performance.now();
      const lr = lrAt(step);
      setLoraDropoutRng(model, o.loraDropout > 0 ? dropoutRng : null);
      const micro = Array.from({ length: o.gradAccum }, () => stream.next());
      const { loss, gradNorm, applied: apply, lossScale: scale, tokens } = await trainStep(model, named.map(([, p]) => p), optimizer, micro, {
        lr, maxGradNorm: o.maxGradNorm, scaler,
      });
      if (!apply) skippedSteps++;
      if (!apply && !scaler) warn(`step ${step + 1}: the gradients are not finite (loss ${loss}); the step is skipped.`);
      step++;
      tokensSeen += tokens;
      runTokens += tokens;
      losses.push(loss);
      const seconds = (performance.now() - t0) / 1000;
      const info: StepInfo = {
        step, totalSteps, loss, lr, gradNorm, skipped: !apply, lossScale: scale, tokens,
        tokensPerSecond: runTokens / ((performance.now() - runStart) / 1000),
      };
      await log({
        type: 'train', step, loss, lr, grad_norm: gradNorm, skipped: !apply, loss_scale: scale,
        ...(scaler ? { skipped_total: scaler.skipped, scale_growths: scaler.growths, scale_backoffs: scaler.backoffs } : {}),
        tokens, tokens_seen: tokensSeen, tokens_per_s: tokens / seconds, epoch: stream.cursor.epoch,
      });
      progress?.update({ step, total: totalSteps, loss, tokensPerSecond: info.tokensPerSecond, ...(scaler ? { lossScale: scaler.scale, skipped: scaler.skipped } : {}) });
      if (o.evalEvery > 0 && step % o.evalEvery === 0 && step < totalSteps) {
        const el = await evaluate();
        if (el !== null) await log({ type: 'eval', step, eval_loss: el });
      }
      if (o.checkpointEvery > 0 && (step % o.checkpointEvery === 0 || step === totalSteps)) await saveState();
      await options.onStep?.(info);
    }
    progress?.done();
    evalLoss = await evaluate();
    if (evalLoss !== null) await log({ type: 'eval', step, eval_loss: evalLoss });
    setLoraDropoutRng(model, null);

    if (o.mode === 'lora') await saveAdapter(model, o.out, { baseModelNameOrPath: o.model });
    else await saveFullCheckpoint(model, o.out, o.model);
    const tokensPerSecond = runTokens / ((performance.now() - runStart) / 1000);
    await log({ type: 'done', step, eval_loss: evalLoss, tokens_per_s: tokensPerSecond, out: o.out });
    say(`wrote ${o.out}${evalLoss !== null ? ` (eval loss ${evalLoss.toFixed(4)})` : ''}`);
    return {
      out: o.out, mode: o.mode, precision: o.precision, totalSteps, startStep, losses, evalLoss,
      skippedSteps, lossScale: scaler?.scale ?? null,
      tokensPerSecond, trainable, checkpointDir: o.checkpointDir, metricsLog: o.metricsLog,
    };
  } finally {
    optimizer?.dispose();
    model.dispose();
  }
}
