import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { registerWasmBackend } from '@mamba-ts/backend-wasm';
import * as T from '@mamba-ts/tensor';
import { fromPretrained, generate, type MambaLM } from '@mamba-ts/ssm';
import { FIXTURES, MAMBA_FIXTURES, generateFixture, maxViolation, reference } from './helpers.js';

const load = async (name: string): Promise<MambaLM> => (await fromPretrained(`${FIXTURES}${name}`, { warn: () => {} })).model;

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  const { ratio, at } = maxViolation(got, want, atol, rtol);
  expect(ratio, `${what}: worst element ${at}: ${got[at]} vs ${want[at]}`).toBeLessThanOrEqual(1);
}

/** The same parity checks on every backend this machine has (cuda runs them in its own GPU test package). */
describe.each(['cpu', 'wasm'])('on the %s backend', (backend) => {
  beforeAll(async () => {
    if (backend === 'wasm') await registerWasmBackend();
    T.setBackend(backend);
  });
  afterAll(() => T.setBackend('cpu'));

  describe.each(MAMBA_FIXTURES)('%s matches transformers', (name) => {
    const ref = reference(name);
    const ids = ref.get('input_ids');

    test('logits within 1e-4', async () => {
      const model = await load(name);
      const logits = T.tidy(() => model.forward(T.tensor(ids.data as Int32Array, ids.shape, 'i32')).logits);
      expectClose(logits.toFloat32Sync(), ref.get('logits').data as Float32Array, 1e-4, 1e-4, 'logits');
      logits.dispose();
      model.dispose();
    });

    test('loss and the gradient of every parameter', async () => {
      const model = await load(name);
      const params = [...model.namedParameters()];
      const idsT = T.tensor(ids.data as Int32Array, ids.shape, 'i32');
      const { value, grads } = T.valueAndGrad(() => model.loss(idsT), params.map(([, p]) => p.value));
      expect(value.toFloat32Sync()[0]).toBeCloseTo((ref.get('loss').data as Float32Array)[0], 5);
      params.forEach(([pname], i) => {
        const want = ref.get(`grad.${pname}`).data as Float32Array;
        expectClose(grads[i].toFloat32Sync(), want, 1e-5, 1e-3, `grad.${pname}`);
      });
      T.dispose([value, idsT, ...grads]);
      model.dispose();
    });

    for (const mode of ['layer', 'ssm'] as const) {
      test(`with ${mode} recomputation the gradients are the same`, async () => {
        const model = await load(name);
        model.recompute = mode;
        const params = [...model.namedParameters()];
        const idsT = T.tensor(ids.data as Int32Array, ids.shape, 'i32');
        const { value, grads } = T.valueAndGrad(() => model.loss(idsT), params.map(([, p]) => p.value));
        expect(value.toFloat32Sync()[0]).toBeCloseTo((ref.get('loss').data as Float32Array)[0], 5);
        params.forEach(([pname], i) => expectClose(grads[i].toFloat32Sync(), ref.get(`grad.${pname}`).data as Float32Array, 1e-5, 1e-3, `grad.${pname}`));
        T.dispose([value, idsT, ...grads]);
        model.dispose();
      });
    }

    test('recurrent steps give the parallel logits, token for token', async () => {
      const model = await load(name);
      const [B, L] = ids.shape;
      const V = model.config.vocabSize;
      const idv = ids.data as Int32Array;
      const parallel = ref.get('logits').data as Float32Array;
      let state = model.emptyState(B).keep();
      for (let t = 0; t < L; t++) {
        const col = Int32Array.from({ length: B }, (_, b) => idv[b * L + t]);
        const { logits, state: next } = T.tidy(() => {
          const r = model.step(T.tensor(col, [B], 'i32'), state);
          r.state.keep();
          return r;
        });
        const got = logits.toFloat32Sync();
        const want = new Float32Array(B * V);
        for (let b = 0; b < B; b++) want.set(parallel.subarray((b * L + t) * V, (b * L + t + 1) * V), b * V);
        expectClose(got, want, 1e-4, 1e-4, `step ${t}`);
        logits.dispose();
        state.dispose();
        state = next;
      }
      state.dispose();
      model.dispose();
    });

    test('greedy generation equals transformers generate()', async () => {
      const model = await load(name);
      const fx = generateFixture(name);
      const [out] = await generate(model, [fx.prompt_ids], { greedy: true, maxNewTokens: fx.new_ids.length, stopTokens: [] });
      expect(out).toEqual(fx.new_ids);
      model.dispose();
    });
  });
});

describe('state and generation', () => {
  test('prefill continues exactly: forward(a ++ b) = forward(b) from the state after a', async () => {
    const model = await load('mamba-bias-k3');
    const all = T.tensor([5, 9, 100, 7, 42, 3, 11], [1, 7], 'i32');
    const whole = T.tidy(() => model.forward(all).logits);
    const second = T.tidy(() => {
      const { state } = model.forward(T.narrow(all, 1, 0, 2));
      return model.forward(T.narrow(all, 1, 2, 5), { state }).logits;
    });
    const w = whole.toFloat32Sync();
    const V = model.config.vocabSize;
    expectClose(second.toFloat32Sync(), w.subarray(2 * V), 1e-5, 1e-4, 'continued logits');
    model.dispose();
  });

  test('a batch of prompts of different lengths gives each prompt its own greedy output', async () => {
    const model = await load('mamba-tiny');
    const prompts = [[138, 19, 257, 489, 220], [7], [300, 301, 302]];
    const batched = await generate(model, prompts, { greedy: true, maxNewTokens: 6, stopTokens: [] });
    for (const [i, p] of prompts.entries()) {
      const [alone] = await generate(model, [p], { greedy: true, maxNewTokens: 6, stopTokens: [] });
      expect(batched[i]).toEqual(alone);
    }
    expect(batched[0]).toEqual(generateFixture('mamba-tiny').new_ids.slice(0, 6));
    model.dispose();
  });

  test('sampling is reproducible with a seed and respects top-k = 1', async () => {
    const model = await load('mamba-tiny');
    const p = [[10, 20, 30]];
    const a = await generate(model, p, { temperature: 0.8, topP: 0.9, seed: 3, maxNewTokens: 8, stopTokens: [] });
    const b = await generate(model, p, { temperature: 0.8, topP: 0.9, seed: 3, maxNewTokens: 8, stopTokens: [] });
    expect(a).toEqual(b);
    const k1 = await generate(model, p, { temperature: 2, topK: 1, seed: 9, maxNewTokens: 8, stopTokens: [] });
    const greedy = await generate(model, p, { greedy: true, maxNewTokens: 8, stopTokens: [] });
    expect(k1).toEqual(greedy);
    model.dispose();
  });

  test('state round-trips through bytes, clones and slices', async () => {
    const model = await load('mamba-tiny');
    const { state } = T.tidy(() => {
      const r = model.forward(T.tensor([1, 2, 3, 4, 5, 6], [2, 3], 'i32'));
      r.state.keep();
      return r;
    });
    const restored = (await import('@mamba-ts/ssm')).MambaState.fromBytes(await state.toBytes());
    const second = state.slice(1);
    for (let l = 0; l < state.layers.length; l++) {
      expect(restored.layers[l].ssm.toFloat32Sync()).toEqual(state.layers[l].ssm.toFloat32Sync());
      expect(restored.layers[l].conv.toFloat32Sync()).toEqual(state.layers[l].conv.toFloat32Sync());
      const E = state.layers[l].ssm.shape[1] * state.layers[l].ssm.shape[2];
      expect(second.layers[l].ssm.toFloat32Sync()).toEqual(state.layers[l].ssm.toFloat32Sync().subarray(E));
    }
    [state, restored, second].forEach((s) => s.dispose());
    model.dispose();
  });

  test('streaming yields the same tokens as generate', async () => {
    const model = await load('mamba-tiny');
    const { streamTokens } = await import('@mamba-ts/ssm');
    const got: number[] = [];
    for await (const t of streamTokens(model, [138, 19, 257, 489, 220], { greedy: true, maxNewTokens: 8, stopTokens: [] })) got.push(t);
    expect(got).toEqual(generateFixture('mamba-tiny').new_ids);
    model.dispose();
  });
});
