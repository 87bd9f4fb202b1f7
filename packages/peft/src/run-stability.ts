import { dirname, resolve } from 'node:path';
import { mkdir } from 'node:fs/promises';
import * as T from '@mamba-ts/tensor';
import { fromPretrained, type MambaLM } from '@mamba-ts/ssm';
import { loadAdapter } from './adapter.js';
import { instructionPrompt, readJsonl, type BadLinePolicy } from './data.js';
import { writeFileAtomic } from './fs-atomic.js';
import { parsePrecision, type Precision } from './precision.js';
import {
  lyapunovExponents, mergeLayerResults, precisionDivergence, type LayerLyapunov, type PrecisionDivergence,
} from './stability.js';

/** Options of `mamba-ts stability`. */
export interface StabilityOptions {
  /** Model directory [--model]. */
  model: string;
  /** JSONL records ({"text"} or instruction records: prompt + output) giving the real inputs [--data]. */
  data: string;
  /** JSON report path, written atomically [--out]. */
  out: string;
  /** A PEFT adapter to apply first [--adapter]. */
  adapter?: string;
  /** Tokens per sequence (longer records are cut), default 128. */
  seqLen?: number;
  /** How many records to use, default 8. */
  maxSequences?: number;
  /** Precisions compared with fp32, default bf16 and f16. */
  precisions?: readonly string[];
  /** State and input perturbation size for the empirical estimates, default 1e-3. */
  epsilon?: number;
  onBadLine?: BadLinePolicy;
  /** Task accuracy of the model as configured (e.g. an eval-harness task), for the accuracy delta. */
  accuracy?: (model: MambaLM, precision: Precision) => Promise<number>;
  warn?: (message: string) => void;
}

export interface StabilityReport {
  model: string;
  adapter: string | null;
  data: string;
  sequences: number;
  tokens: number;
  divergence: PrecisionDivergence[];
  lyapunov: {
    /** Largest per-layer exponent (per token); ≤ 0 means perturbations of the state never grow. */
    lambdaMax: number;
    allNonPositive: boolean;
    layers: LayerLyapunov[];
  };
}

/** Divergence of bf16/f16 against fp32 and per-layer Lyapunov exponents on real inputs; writes JSON to `out`. */
export async function runStability(o: StabilityOptions): Promise<StabilityReport> {
  for (const k of ['model', 'data', 'out'] as const) if (!o[k]) throw new Error(`--${k} is required.`);
  const seqLen = o.seqLen ?? 128;
  const maxSequences = o.maxSequences ?? 8;
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new Error(`--seq-len must be an integer ≥ 2, got ${seqLen}.`);
  if (!Number.isInteger(maxSequences) || maxSequences < 1) throw new Error(`--max-sequences must be a positive integer, got ${maxSequences}.`);
  const precisions = (o.precisions ?? ['bf16', 'f16']).map((p) => parsePrecision(p, '--precisions'));
  if (precisions.includes('fp32')) throw new Error('--precisions: list only bf16 and/or f16 (fp32 is the reference).');
  const warn = o.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  const file = await readJsonl(o.data, { onBadLine: o.onBadLine ?? 'stop', warn });
  const { model, tokenizer } = await fromPretrained(o.model, { dtype: 'f32', warn });
  try {
    if (!tokenizer) throw new Error(`${o.model}/tokenizer.json: file not found; the stability tool needs it to encode the data.`);
    if (o.adapter) await loadAdapter(model, o.adapter);
    const texts = file.records.slice(0, maxSequences).map(({ record: r }) =>
      r.kind === 'text' ? r.text : instructionPrompt(r.instruction, r.input) + r.output,
    );
    const seqs = texts.map((t) => tokenizer.encode(t).slice(0, seqLen)).filter((ids) => ids.length >= 2);
    if (seqs.length === 0) throw new Error(`${o.data}: no record has at least 2 tokens; the dataset is empty.`);
    const tensors = seqs.map((ids) => T.tensor(Int32Array.from(ids), [1, ids.length], 'i32'));
    try {
      const divergence = await precisionDivergence(model, tensors, {
        precisions: precisions as Exclude<Precision, 'fp32'>[],
        accuracy: o.accuracy,
      });
      const perSequence = tensors.map((ids) => lyapunovExponents(model, ids, { epsilon: o.epsilon, inputEpsilon: o.epsilon }));
      const layers = perSequence[0].map((_, l) => mergeLayerResults(perSequence.map((r) => r[l])));
      const lambdaMax = Math.max(...layers.map((l) => l.lambdaMax));
      const report: StabilityReport = {
        model: o.model, adapter: o.adapter ?? null, data: o.data, sequences: seqs.length, tokens: seqs.reduce((n, s) => n + s.length, 0),
        divergence, lyapunov: { lambdaMax, allNonPositive: lambdaMax <= 0, layers },
      };
      await mkdir(dirname(resolve(o.out)), { recursive: true });
      await writeFileAtomic(o.out, `${JSON.stringify(report, null, 2)}\n`);
      return report;
    } finally {
      T.dispose(tensors);
    }
  } finally {
    model.dispose();
  }
}
