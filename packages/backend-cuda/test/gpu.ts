import { describe, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { isAvailable, registerCudaBackend, unavailableReason } from '../src/index.js';

// The cpu oracle must be registered before cuda (so it stays the default backend). Importing @mamba-ts/tensor does
// that, but bundlers that trust its "sideEffects": false skip the import's side effect, so do it explicitly.
T.registerCpuBackend();

export const onGpu = isAvailable();

/** describe() whose tests need a GPU; without one it holds a single skipped test that carries the reason. */
export function describeGpu(name: string, body: () => void): void {
  if (!onGpu) {
    describe(name, () => test.skip(`skipped: ${unavailableReason()}`, () => {}));
    return;
  }
  registerCudaBackend();
  describe(name, body);
}

/** Runs `fn` with `backend` active, then restores the previous one. */
export function on<R>(backend: string, fn: () => R): R {
  const e = T.engine();
  const previous = e.getBackend().name;
  e.setBackend(backend);
  try {
    return fn();
  } finally {
    e.setBackend(previous);
  }
}

/** Like on(), for async work: `backend` stays active until the promise settles. */
export async function onAsync<R>(backend: string, fn: () => Promise<R>): Promise<R> {
  const e = T.engine();
  const previous = e.getBackend().name;
  e.setBackend(backend);
  try {
    return await fn();
  } finally {
    e.setBackend(previous);
  }
}

/** A copy of a cpu tensor on cuda. */
export function toCuda(t: T.Tensor): T.Tensor {
  return on('cuda', () => T.tensor(t.dataSync(), t.shape, t.dtype));
}

/** max over elements of |a − b| / (atol + rtol·|b|): ≤ 1 means within tolerance. */
export function violation(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    const r = Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (!(r <= worst)) worst = Number.isNaN(r) ? Infinity : r;
  }
  return worst;
}
