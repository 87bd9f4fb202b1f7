import type { RecomputeMode } from '@mamba-ts/ssm';
import type { InferResult } from '../infer.js';
import type { TrainResult } from '../train.js';

/**
 * report.json, schema "mamba-ts-bench/1". Stable: fields are only ever added.
 * - machine: where it ran; backend: which backend and device; model: preset or checkpoint and its shape;
 * - settings: what was asked; training: one entry per training mode; inference: prefill and decode entries;
 * - ratios: each training mode against the full-fp32 baseline (tokens/s ×, memory per token reduction);
 * - scaling: tokens/s and bytes per token against sequence length and batch size (full fp32 training step);
 * - paper: the headline figures of Halloran et al. (MPFT+PEFT vs full fp32) to compare with.
 * Bytes are backend bytes (live tensor buffers: device memory on cuda, wasm heap on wasm, host arrays on cpu).
 */
export interface BenchReport {
  schema: 'mamba-ts-bench/1';
  createdAt: string;
  machine: { hostname: string; platform: string; arch: string; cpu: string; cpuCount: number; totalMemoryBytes: number; node: string };
  backend: { name: string; device: string };
  model: {
    source: 'preset' | 'checkpoint';
    name: string;
    hiddenSize: number;
    numLayers: number;
    intermediateSize: number;
    stateSize: number;
    vocabSize: number;
    parameters: number;
  };
  settings: {
    batchSize: number;
    seqLen: number;
    steps: number;
    warmup: number;
    modes: string[];
    lora: { rank: number; alpha: number; targets: string[] };
    seed: number;
    recompute: RecomputeMode;
  };
  training: TrainResult[];
  ratios: { mode: string; tokensPerSecond: number; memoryPerTokenReduction: number }[];
  inference: InferResult[];
  scaling: ScalingPoint[];
  paper: { mode: 'lora-bf16'; tokensPerSecondRatio: number; memoryPerTokenReduction: number; source: string };
  seconds: number;
}

export interface ScalingPoint {
  /** 'transformer': a GPT-NeoX of the same width with half the layers, for side-by-side curves. */
  model: 'mamba' | 'transformer';
  seqLen: number;
  batchSize: number;
  tokensPerSecond: number;
  peakBytesPerToken: number;
  /** Why the point has no figures (e.g. out of device memory). */
  error?: string;
}

export const PAPER = {
  mode: 'lora-bf16' as const,
  tokensPerSecondRatio: 2.15,
  memoryPerTokenReduction: 0.655,
  source: 'Halloran, Gulati, Roysdon (2024), MPFT+PEFT vs full fp32 fine-tuning',
};
