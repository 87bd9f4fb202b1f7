import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readSafetensors, type SafetensorsReader } from '@mamba-ts/tensor';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
export const MAMBA_FIXTURES = ['mamba-tiny', 'mamba-bias-k3', 'mamba-untied-odd', 'mamba-original-names', 'mamba-sharded'] as const;

export function reference(name: string): SafetensorsReader {
  const path = `${FIXTURES}${name}/reference.safetensors`;
  return readSafetensors(new Uint8Array(readFileSync(path)), path);
}

export function generateFixture(name: string): { prompt_ids: number[]; new_ids: number[] } {
  return JSON.parse(readFileSync(`${FIXTURES}${name}/generate.json`, 'utf8'));
}

/** max |a − b| / (atol + rtol·|b|) ≤ 1 elementwise; returns the worst index for a readable failure. */
export function maxViolation(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number): { ratio: number; at: number } {
  let ratio = 0;
  let at = -1;
  for (let i = 0; i < b.length; i++) {
    const r = Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (!(r <= ratio)) {
      ratio = Number.isNaN(r) ? Infinity : r;
      at = i;
    }
  }
  return { ratio, at };
}
