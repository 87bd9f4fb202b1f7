import { afterAll, describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { fallbackReport } from '@mamba-ts/tensor/testing';
import { registerWasmBackendSync } from '@mamba-ts/backend-wasm';
import { MambaLike, tokenBatch, trainStep, type MambaLikeConfig } from './helpers/mamba-like.js';

registerWasmBackendSync();
const config: MambaLikeConfig = { vocab: 37, dModel: 12, dInner: 22, dState: 5, dtRank: 3, convWidth: 4, layers: 2 };

/** Builds the model and batch on `backend` and runs `steps` training steps; returns the losses and the final state. */
function train(backend: string, steps: number) {
  T.setBackend(backend);
  try {
    const model = new MambaLike(config);
    const optimizer = new T.AdamW(model.parameters(), { lr: 1e-2 });
    const { ids, targets } = tokenBatch(config.vocab, 2, 9, 5);
    const losses: number[] = [];
    const fallbacks = fallbackReport(() => {
      for (let s = 0; s < steps; s++) losses.push(trainStep(model, optimizer, ids, targets));
    });
    const dt = model.getParameter('layers.1.dt_bias')!.value.toFloat32Sync();
    for (const t of [ids, targets]) t.dispose();
    optimizer.dispose();
    model.dispose();
    return { losses, fallbacks, dt };
  } finally {
    T.setBackend('cpu');
  }
}

describe('a Mamba-like forward + backward + AdamW step on wasm', () => {
  const before = T.memory('wasm').liveTensors;
  const wasm = train('wasm', 3);

  test('runs every kernel natively (no fallback to cpu)', () => {
    expect(wasm.fallbacks).toEqual({});
  });

  test('matches the same steps on cpu and learns', () => {
    const cpu = train('cpu', 3);
    for (let i = 0; i < 3; i++) expect(wasm.losses[i]).toBeCloseTo(cpu.losses[i], 4);
    expect(wasm.losses[2]).toBeLessThan(wasm.losses[0]);
    for (let i = 0; i < wasm.dt.length; i++) expect(wasm.dt[i]).toBeCloseTo(cpu.dt[i], 4);
  });

  afterAll(() => {
    // Everything the steps made was disposed: the model, the optimizer state and all intermediates.
    expect(T.memory('wasm').liveTensors).toBe(before);
  });
});
