import { runFinetune, runStability, type FinetuneOptions } from '@mamba-ts/peft';
import { type CommandSpec, intOption, numberOption, parseCommand, required } from '../args.js';
import { useBackend } from '../backends.js';
import { UsageError } from '../cli-error.js';

export const finetuneSpec: CommandSpec = {
  name: 'finetune',
  summary: 'fine-tune a Mamba model (full or LoRA; fp32, bf16 or f16) on JSONL data',
  usage: 'finetune --model DIR --data FILE.jsonl --out DIR [--mode full|lora] [--precision fp32|bf16|f16] [options]',
  options: {
    model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, mode: { type: 'string' }, precision: { type: 'string' },
    'lora-targets': { type: 'string' }, rank: { type: 'string' }, alpha: { type: 'string' }, dropout: { type: 'string' }, rslora: { type: 'boolean' },
    lr: { type: 'string' }, steps: { type: 'string' }, 'batch-size': { type: 'string' }, 'grad-accum': { type: 'string' }, 'seq-len': { type: 'string' },
    'no-packing': { type: 'boolean' }, schedule: { type: 'string' }, 'warmup-steps': { type: 'string' }, 'max-grad-norm': { type: 'string' },
    'weight-decay': { type: 'string' }, 'eval-data': { type: 'string' }, 'eval-fraction': { type: 'string' }, 'eval-every': { type: 'string' },
    'checkpoint-every': { type: 'string' }, resume: { type: 'boolean' }, seed: { type: 'string' }, 'skip-bad-lines': { type: 'boolean' },
    backend: { type: 'string' }, quiet: { type: 'boolean' }, recompute: { type: 'string' },
  },
  help: [
    '--model DIR            base checkpoint (loaded in f32: master weights stay f32)',
    '--data FILE.jsonl      {"text": ...} or {"instruction", "input", "output"} records (loss on the output only)',
    '--out DIR              HF checkpoint (full) or PEFT adapter (lora); written only when the run completes',
    '--mode full|lora       default lora',
    '--precision P          fp32, bf16 or f16 (f16 uses dynamic loss scaling); default fp32',
    '--lora-targets LIST    default in_proj,x_proj,dt_proj,out_proj,embeddings (names or module-path patterns)',
    '--rank R, --alpha A, --dropout P, --rslora',
    '--lr LR, --steps N, --batch-size B, --grad-accum K, --seq-len L, --no-packing',
    '--schedule linear|cosine|constant, --warmup-steps N, --max-grad-norm X, --weight-decay W',
    '--eval-data FILE, --eval-fraction F, --eval-every N   held-out evaluation loss',
    '--checkpoint-every N, --resume   atomic checkpoints in <out>.checkpoint and an exact resume',
    '--recompute MODE     activation recomputation: none (default), ssm (conv/scan part of each layer) or layer',
    '--seed S, --skip-bad-lines, --backend B, --quiet',
  ],
};

const optional = <T>(present: boolean, value: () => T): T | undefined => (present ? value() : undefined);

export async function finetuneCommand(argv: string[]): Promise<void> {
  const v = parseCommand(finetuneSpec, argv);
  if (!v) return;
  const mode = (v.mode as string | undefined) ?? 'lora';
  if (mode !== 'full' && mode !== 'lora') throw new UsageError(`--mode must be full or lora, got "${mode}".`);
  const opts: FinetuneOptions = {
    model: required(v, 'model', 'finetune'),
    data: required(v, 'data', 'finetune'),
    out: required(v, 'out', 'finetune'),
    mode,
    ...(v.precision !== undefined ? { precision: v.precision as FinetuneOptions['precision'] } : {}),
    ...(v['lora-targets'] !== undefined ? { loraTargets: String(v['lora-targets']).split(',').map((s) => s.trim()).filter(Boolean) } : {}),
    rank: optional(v.rank !== undefined, () => intOption(v, 'rank', 8, { min: 1 })),
    alpha: optional(v.alpha !== undefined, () => numberOption(v, 'alpha', 16)),
    loraDropout: optional(v.dropout !== undefined, () => numberOption(v, 'dropout', 0)),
    rslora: Boolean(v.rslora),
    lr: optional(v.lr !== undefined, () => numberOption(v, 'lr', 0)),
    steps: optional(v.steps !== undefined, () => intOption(v, 'steps', 1, { min: 1 })),
    batchSize: optional(v['batch-size'] !== undefined, () => intOption(v, 'batch-size', 4, { min: 1 })),
    gradAccum: optional(v['grad-accum'] !== undefined, () => intOption(v, 'grad-accum', 1, { min: 1 })),
    seqLen: optional(v['seq-len'] !== undefined, () => intOption(v, 'seq-len', 512, { min: 2 })),
    packing: !v['no-packing'],
    schedule: v.schedule as FinetuneOptions['schedule'],
    warmupSteps: optional(v['warmup-steps'] !== undefined, () => intOption(v, 'warmup-steps', 0)),
    maxGradNorm: optional(v['max-grad-norm'] !== undefined, () => numberOption(v, 'max-grad-norm', 1)),
    weightDecay: optional(v['weight-decay'] !== undefined, () => numberOption(v, 'weight-decay', 0)),
    evalData: v['eval-data'] as string | undefined,
    evalFraction: optional(v['eval-fraction'] !== undefined, () => numberOption(v, 'eval-fraction', 0)),
    evalEvery: optional(v['eval-every'] !== undefined, () => intOption(v, 'eval-every', 0)),
    checkpointEvery: optional(v['checkpoint-every'] !== undefined, () => intOption(v, 'checkpoint-every', 50)),
    resume: Boolean(v.resume),
    seed: optional(v.seed !== undefined, () => intOption(v, 'seed', 0)),
    onBadLine: v['skip-bad-lines'] ? 'skip' : 'stop',
    quiet: Boolean(v.quiet),
    recompute: v.recompute as FinetuneOptions['recompute'],
  };
  // Drop undefined entries so the loop's defaults apply.
  for (const k of Object.keys(opts) as (keyof FinetuneOptions)[]) if (opts[k] === undefined) delete opts[k];
  await useBackend(v.backend as string | undefined);
  const result = await runFinetune(opts);
  console.log(JSON.stringify({ out: result.out, mode: result.mode, precision: result.precision, steps: result.totalSteps, final_loss: result.losses.at(-1) ?? null, eval_loss: result.evalLoss, skipped_steps: result.skippedSteps, tokens_per_s: result.tokensPerSecond }));
}

export const stabilitySpec: CommandSpec = {
  name: 'stability',
  summary: 'low-precision divergence vs fp32 and the Lyapunov exponents of each layer',
  usage: 'stability --model DIR --data FILE.jsonl --out FILE.json [--adapter DIR] [--seq-len N] [--sequences N]',
  options: {
    model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, adapter: { type: 'string' },
    'seq-len': { type: 'string' }, sequences: { type: 'string' }, precisions: { type: 'string' }, epsilon: { type: 'string' },
    'skip-bad-lines': { type: 'boolean' }, backend: { type: 'string' },
  },
  help: [
    '--model DIR          checkpoint directory',
    '--data FILE.jsonl    real inputs ({"text"} or instruction records)',
    '--out FILE.json      the report (divergence: max/mean |Δlogit|, KL, top-1 agreement; Lyapunov exponents)',
    '--adapter DIR        apply a PEFT adapter first',
    '--seq-len N (128), --sequences N (8), --precisions bf16,f16, --epsilon E (1e-3), --skip-bad-lines, --backend B',
  ],
};

export async function stabilityCommand(argv: string[]): Promise<void> {
  const v = parseCommand(stabilitySpec, argv);
  if (!v) return;
  const model = required(v, 'model', 'stability');
  const data = required(v, 'data', 'stability');
  const out = required(v, 'out', 'stability');
  await useBackend(v.backend as string | undefined);
  const report = await runStability({
    model, data, out,
    ...(v.adapter !== undefined ? { adapter: v.adapter as string } : {}),
    ...(v['seq-len'] !== undefined ? { seqLen: intOption(v, 'seq-len', 128, { min: 2 }) } : {}),
    ...(v.sequences !== undefined ? { maxSequences: intOption(v, 'sequences', 8, { min: 1 }) } : {}),
    ...(v.precisions !== undefined ? { precisions: String(v.precisions).split(',') } : {}),
    ...(v.epsilon !== undefined ? { epsilon: numberOption(v, 'epsilon', 1e-3) } : {}),
    onBadLine: v['skip-bad-lines'] ? 'skip' : 'stop',
  });
  for (const d of report.divergence) {
    console.log(`${d.precision}: max |Δlogit| ${d.maxAbsDiff.toExponential(3)}, mean KL ${d.klMean.toExponential(3)}, top-1 agreement ${(100 * d.top1Agreement).toFixed(2)}%`);
  }
  console.log(`wrote ${out}`);
}
