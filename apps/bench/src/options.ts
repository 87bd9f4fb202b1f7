import { parseArgs } from 'node:util';
import { MAMBA_PRESETS, parseRecomputeMode, type MambaPreset, type RecomputeMode } from '@mamba-ts/ssm';

export const TRAIN_MODES = ['full-fp32', 'full-bf16', 'full-f16', 'lora-fp32', 'lora-bf16', 'lora-f16'] as const;
export const INFER_MODES = ['prefill', 'decode'] as const;
export const MODES = [...TRAIN_MODES, ...INFER_MODES] as const;
export type TrainMode = (typeof TRAIN_MODES)[number];
export type Mode = (typeof MODES)[number];

export interface BenchOptions {
  preset: MambaPreset;
  model: string | null;
  backend: string;
  /** The user named the backend: do not fall back to another. */
  backendExplicit: boolean;
  modes: Mode[];
  batchSize: number;
  seqLen: number;
  steps: number;
  warmup: number;
  decodeBatch: number;
  decodeTokens: number;
  scalingLengths: number[];
  scalingBatches: number[];
  loraRank: number;
  loraAlpha: number;
  loraTargets: string[];
  out: string | null;
  json: boolean;
  quiet: boolean;
  seed: number;
  /** Activation recomputation in the training modes: none, ssm (the conv/scan part of each layer) or layer. */
  recompute: RecomputeMode;
}

export class BenchUsageError extends Error {
  override name = 'BenchUsageError';
}

export const HELP = `mamba-ts bench — tokens/s and memory of fine-tuning (full, MPFT, PEFT, MPFT+PEFT) and inference

Usage: pnpm bench [options]

Options:
  --preset NAME          ${Object.keys(MAMBA_PRESETS).join('|')} (real model shapes, seeded random weights; default tiny)
  --model DIR            a real checkpoint instead of a preset
  --backend B            auto|cpu|wasm|cuda (default auto: cuda, else wasm, else cpu)
  --modes LIST           comma-separated: ${MODES.join(',')} (default all)
  --batch-size N         training batch (default 4)
  --seq-len N            training sequence length (default 128)
  --steps N              timed steps per mode (default 5)
  --warmup N             untimed steps first (default 1)
  --decode-batch N       the larger decode batch (default 8; batch 1 is always measured); decoding is greedy, bf16
  --decode-tokens N      tokens per decode measurement (default 32)
  --scaling-lengths LIST sequence lengths for the scaling sweep (default 64,128,256; "none" skips)
  --scaling-batches LIST batch sizes for the scaling sweep (default 1,4)
  --lora-rank R          LoRA rank (default 8)
  --lora-alpha A         LoRA alpha (default 16)
  --lora-targets LIST    LoRA targets (default x_proj,embeddings,in_proj — the paper's choice)
  --out DIR              output folder (default bench-results/<timestamp>)
  --json                 print report.json to stdout instead of the Markdown table
  --quiet                no progress bar
  --seed N               seed of weights and data (default 0)
  --recompute MODE       activation recomputation while training: none (default), ssm (the conv/scan part of each
                         layer, little extra compute) or layer (whole layers: least memory, one more forward)
  --help                 this help`;

function list(text: string): string[] {
  return text.split(',').map((s) => s.trim()).filter(Boolean);
}

function int(name: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new BenchUsageError(`--${name} must be an integer ≥ ${min}, got "${text}".`);
  return n;
}

function intList(name: string, text: string | undefined, fallback: number[]): number[] {
  if (text === undefined) return fallback;
  if (text === 'none') return [];
  return list(text).map((s) => int(name, s, 0));
}

const STRING_OPTIONS = [
  'preset', 'model', 'backend', 'modes', 'batch-size', 'seq-len', 'steps', 'warmup', 'decode-batch', 'decode-tokens',
  'scaling-lengths', 'scaling-batches', 'lora-rank', 'lora-alpha', 'lora-targets', 'out', 'seed', 'recompute',
];

/** Parses argv; returns null when --help was asked. */
export function parseBenchArgs(argv: string[]): BenchOptions | null {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(STRING_OPTIONS.map((n) => [n, { type: 'string' as const }])),
        ...Object.fromEntries(['json', 'quiet', 'help'].map((n) => [n, { type: 'boolean' as const }])),
      },
    }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new BenchUsageError(`${(e as Error).message.split('\n')[0]} (see pnpm bench --help).`);
  }
  if (values.help) return null;
  const s = (n: string) => values[n] as string | undefined;

  const preset = (s('preset') ?? 'tiny') as MambaPreset;
  if (!(preset in MAMBA_PRESETS)) {
    throw new BenchUsageError(`Unknown preset "${preset}"; valid presets: ${Object.keys(MAMBA_PRESETS).join(', ')}.`);
  }
  const modes = (s('modes') ? list(s('modes')!) : [...MODES]) as Mode[];
  for (const m of modes) {
    if (!MODES.includes(m)) throw new BenchUsageError(`Unknown mode "${m}"; valid modes: ${MODES.join(', ')}.`);
  }
  const backend = s('backend') ?? 'auto';
  if (!['auto', 'cpu', 'wasm', 'cuda'].includes(backend)) {
    throw new BenchUsageError(`Unknown backend "${backend}"; valid backends: auto, cpu, wasm, cuda.`);
  }
  return {
    preset,
    model: s('model') ?? null,
    backend,
    backendExplicit: s('backend') !== undefined && backend !== 'auto',
    modes,
    batchSize: int('batch-size', s('batch-size'), 4),
    seqLen: int('seq-len', s('seq-len'), 128, 2),
    steps: int('steps', s('steps'), 5),
    warmup: int('warmup', s('warmup'), 1, 0),
    decodeBatch: int('decode-batch', s('decode-batch'), 8),
    decodeTokens: int('decode-tokens', s('decode-tokens'), 32, 2),
    scalingLengths: intList('scaling-lengths', s('scaling-lengths'), [64, 128, 256]),
    scalingBatches: intList('scaling-batches', s('scaling-batches'), [1, 4]),
    loraRank: int('lora-rank', s('lora-rank'), 8),
    loraAlpha: int('lora-alpha', s('lora-alpha'), 16),
    loraTargets: s('lora-targets') ? list(s('lora-targets')!) : ['x_proj', 'embeddings', 'in_proj'],
    out: s('out') ?? null,
    json: Boolean(values.json),
    quiet: Boolean(values.quiet),
    seed: int('seed', s('seed'), 0, 0),
    recompute: usage(() => parseRecomputeMode(s('recompute') ?? 'none', '--recompute')),
  };
}

/** Runs `parse`, turning its error into a usage error. */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new BenchUsageError((e as Error).message);
  }
}
