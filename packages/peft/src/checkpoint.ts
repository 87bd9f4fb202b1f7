import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { formatShape, safetensorsEntry, shapesEqual, tensorFromSafetensors, type Tensor } from '@mamba-ts/tensor';
import { SafetensorsFile, writeSafetensorsFile } from '@mamba-ts/tensor/node';
import type { Cursor } from './data.js';
import { pathExists, sortedJson, writeDirAtomic, writeFileAtomic } from './fs-atomic.js';
import type { LossScalerState } from './precision.js';

/** Everything besides tensors that a run needs to continue bit for bit. */
export interface TrainerState {
  version: 1;
  /** Optimizer steps taken (including skipped ones). */
  step: number;
  /** AdamW's own step count (skipped steps do not count). */
  optimizerSteps: number;
  cursor: Cursor;
  /** State of the dropout generator. */
  rngState: number;
  scaler: LossScalerState | null;
  tokensSeen: number;
  /** The options that must not change on resume, as they were. */
  fingerprint: Record<string, unknown>;
}

export interface CheckpointTensors {
  /** Trainable parameters by name (f32 master weights). */
  params: [string, Tensor][];
  /** AdamW first and second moments, in the order of `params`. */
  m: Tensor[];
  v: Tensor[];
}

const STATE_FILE = 'trainer_state.json';
const PARAMS_FILE = 'params.safetensors';
const OPTIMIZER_FILE = 'optimizer.safetensors';
export const CHECKPOINT_NAME = 'checkpoint';

/** Writes `<root>/checkpoint` atomically (a complete new directory replaces the previous one in one rename). */
export async function saveCheckpoint(root: string, state: TrainerState, t: CheckpointTensors): Promise<void> {
  const params: [string, Awaited<ReturnType<typeof safetensorsEntry>>][] = [];
  const moments: [string, Awaited<ReturnType<typeof safetensorsEntry>>][] = [];
  for (const [i, [name, value]] of t.params.entries()) {
    params.push([name, await safetensorsEntry(value)]);
    moments.push([`m.${name}`, await safetensorsEntry(t.m[i])]);
    moments.push([`v.${name}`, await safetensorsEntry(t.v[i])]);
  }
  await writeDirAtomic(
    join(root, CHECKPOINT_NAME),
    async (tmp) => {
      await writeSafetensorsFile(join(tmp, PARAMS_FILE), params, { format: 'mamba-ts-checkpoint' });
      await writeSafetensorsFile(join(tmp, OPTIMIZER_FILE), moments, { format: 'mamba-ts-checkpoint' });
      await writeFileAtomic(join(tmp, STATE_FILE), sortedJson(state));
    },
    { replace: true },
  );
}

/**
 * The checkpoint directory under `root`, or null. If a crash hit between the two renames of a replacement, the
 * previous checkpoint is still complete under its `.old-…` name and is used.
 */
export async function findCheckpoint(root: string): Promise<string | null> {
  const main = join(root, CHECKPOINT_NAME);
  if (await pathExists(join(main, STATE_FILE))) return main;
  const entries = await readdir(root).catch(() => [] as string[]);
  const old = entries.filter((e) => e.startsWith(`.${CHECKPOINT_NAME}.old-`)).sort().at(-1);
  return old && (await pathExists(join(root, old, STATE_FILE))) ? join(root, old) : null;
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainerState;
  /** Tensors by name (`<param>`, `m.<param>`, `v.<param>`); the caller owns them. */
  tensors: Map<string, Tensor>;
}

/** Reads a checkpoint and checks it holds every expected parameter with the expected shape. */
export async function loadCheckpoint(dir: string, expected: [string, readonly number[]][]): Promise<LoadedCheckpoint> {
  const statePath = join(dir, STATE_FILE);
  let state: TrainerState;
  try {
    state = JSON.parse(await readFile(statePath, 'utf8')) as TrainerState;
  } catch (e) {
    throw new Error(`${statePath}: cannot read the checkpoint state (${(e as Error).message}).`);
  }
  if (state.version !== 1) throw new Error(`${statePath}: unknown checkpoint version ${JSON.stringify(state.version)}.`);
  const tensors = new Map<string, Tensor>();
  for (const file of [PARAMS_FILE, OPTIMIZER_FILE]) {
    const path = join(dir, file);
    const st = await SafetensorsFile.open(path);
    try {
      for (const name of st.names()) tensors.set(name, tensorFromSafetensors(await st.get(name), 'f32', path).keep());
    } finally {
      await st.close();
    }
  }
  for (const [name, shape] of expected) {
    for (const key of [name, `m.${name}`, `v.${name}`]) {
      const t = tensors.get(key);
      if (!t) throw new Error(`${dir}: checkpoint lacks "${key}"; it was written by a run with other options (mode or LoRA targets).`);
      if (!shapesEqual(t.shape, shape)) {
        throw new Error(`${dir}: checkpoint tensor "${key}" has shape ${formatShape(t.shape)}, the model needs ${formatShape(shape)}.`);
      }
    }
  }
  return { dir, state, tensors };
}
