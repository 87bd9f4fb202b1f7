import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@mamba-ts/tensor';
import { fromPretrained, type MambaLM } from '@mamba-ts/ssm';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
export const MODEL_DIR = fileURLToPath(new URL('../../ssm/test/fixtures/mamba-tiny/', import.meta.url));
export const ADAPTERS = ['lora-xproj', 'lora-all', 'lora-rslora'] as const;

export function reference(name: string): T.SafetensorsReader {
  const path = `${FIXTURES}${name}/reference.safetensors`;
  return T.readSafetensors(new Uint8Array(readFileSync(path)), path);
}

export async function loadTiny(): Promise<MambaLM> {
  return (await fromPretrained(MODEL_DIR, { warn: () => {}, tokenizer: false })).model;
}

export function idsOf(ref: T.SafetensorsReader): T.Tensor {
  const e = ref.get('input_ids');
  return T.tensor(e.data as Int32Array, e.shape, 'i32');
}

export function logitsOf(model: MambaLM, ids: T.Tensor): Float32Array {
  return T.tidy(() => T.noGrad(() => model.forward(ids).logits.toFloat32Sync()));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function tempDir(prefix = 'peft-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
