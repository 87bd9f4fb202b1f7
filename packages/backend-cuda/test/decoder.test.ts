import { expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { fallbackReport } from '@mamba-ts/tensor/testing';
import { Decoder, MambaLM, presetConfig, type MambaConfig } from '@mamba-ts/ssm';
import { setCudaOption } from '../src/index.js';
import { describeGpu, on, onAsync, violation } from './gpu.js';

// Odd sizes, biases and an untied head, so the fused decode kernels see unaligned rows.
const config: MambaConfig = { ...presetConfig('tiny'), hiddenSize: 40, numLayers: 3, vocabSize: 301, tieWordEmbeddings: false, useBias: true };
const steps = [Int32Array.of(3, 300, 17), Int32Array.of(9, 0, 211), Int32Array.of(44, 44, 1), Int32Array.of(2, 8, 299)];

/** The same random model on `backend` (weights are drawn on the host from the seed). */
const modelOn = (backend: string, dtype: T.DType): MambaLM =>
  on(backend, () => {
    const m = new MambaLM(config, { seed: 5 });
    m.computeDType = dtype;
    return m;
  });

/** model.step logits on cpu, step after step, from the zero state. */
function cpuLogits(tokens: Int32Array[], dtype: T.DType): Float32Array[] {
  return on('cpu', () => {
    const model = modelOn('cpu', dtype);
    let state = model.emptyState(tokens[0].length).keep();
    const out = tokens.map((ids) => {
      const r = T.noGrad(() => T.tidy(() => {
        const s = model.step(T.tensor(ids, [ids.length], 'i32'), state);
        s.state.keep();
        return s;
      }));
      state.dispose();
      state = r.state;
      const logits = r.logits.dataSync() as Float32Array;
      r.logits.dispose();
      return logits;
    });
    state.dispose();
    model.dispose();
    return out;
  });
}

describeGpu('the Decoder on cuda (CUDA graph replay, fused decode kernels)', () => {
  for (const [dtype, tol] of [['f32', 2e-4], ['bf16', 3e-2]] as const) {
    test(`${dtype}: replayed steps give cpu model.step logits, with no cpu fallback`, async () => {
      const want = cpuLogits(steps, dtype);
      const model = modelOn('cuda', dtype);
      const before = on('cuda', () => T.memory().liveBytes);
      await onAsync('cuda', async () => {
        const decoder = new Decoder(model, 3);
        expect([decoder.captured, decoder.fused]).toEqual([true, true]);
        const fallbacks = fallbackReport(() => decoder.feed(steps[0]));
        expect(fallbacks).toEqual({});
        expect(violation(await decoder.logits.toFloat32(), want[0], tol, tol), 'step 0').toBeLessThanOrEqual(1);
        for (let t = 1; t < steps.length; t++) {
          decoder.feed(steps[t]);
          expect(violation(await decoder.logits.toFloat32(), want[t], tol, tol), `step ${t}`).toBeLessThanOrEqual(1);
        }
        decoder.dispose();
      });
      expect(on('cuda', () => T.memory().liveBytes)).toBe(before);
      model.dispose();
    });
  }

  test('advance() (argmax on the device, fed back inside the graph) follows cpu greedy decoding', async () => {
    const tokens = [steps[0]];
    for (let t = 0; t < 6; t++) {
      const logits = cpuLogits(tokens, 'f32').at(-1)!;
      tokens.push(Int32Array.from([0, 1, 2], (b) => argmaxOf(logits.subarray(b * 301, (b + 1) * 301))));
    }
    const model = modelOn('cuda', 'f32');
    const got = await onAsync('cuda', async () => {
      const decoder = new Decoder(model, 3);
      decoder.feed(steps[0]);
      const out = [Array.from(await decoder.argmax())];
      for (let t = 1; t < 6; t++) {
        decoder.advance();
        out.push(Array.from(await decoder.argmax()));
      }
      decoder.dispose();
      return out;
    });
    expect(got).toEqual(tokens.slice(1).map((t) => Array.from(t)));
    model.dispose();
  });

  test('kernels started early (programmatic dependent launch) give the logits of kernels started in turn', async () => {
    const model = modelOn('cuda', 'bf16');
    const decode = (dependentLaunch: number) =>
      onAsync('cuda', async () => {
        setCudaOption('dependentLaunch', dependentLaunch);
        const decoder = new Decoder(model, 3);
        const out: Float32Array[] = [];
        for (const ids of steps) {
          decoder.feed(ids);
          out.push(await decoder.logits.toFloat32());
          for (let t = 0; t < 4; t++) decoder.advance();
          out.push(await decoder.logits.toFloat32());
        }
        decoder.dispose();
        return out;
      });
    try {
      const inTurn = await decode(0);
      const early = await decode(1);
      early.forEach((logits, i) => expect(logits, `step ${i}`).toEqual(inTurn[i]));
    } finally {
      setCudaOption('dependentLaunch', -1);
    }
    model.dispose();
  });

  test('convStep and ssmStep in place leave in the state what they return as a new state', async () => {
    const [B, E, N, R, W] = [6, 37, 16, 5, 4];
    let seed = 3;
    const g = (shape: number[], dtype: T.DType = 'f32', std = 1) => T.randomNormal(shape, { std, seed: seed++, dtype });
    // [in place, as a new tensor] for the conv state, conv output, ssm state and ssm output
    const pairs = on('cuda', () =>
      T.tidy(() => {
        const xz = g([B, 2 * E + 1], 'bf16');
        const conv = { xz, weight: g([E, W], 'f32', 0.5), bias: g([E]), silu: true };
        const convState = g([B, E, W - 1], 'bf16');
        const convWant = T.convStep({ ...conv, convState });
        const convGot = T.convStep({ ...conv, convState, inPlace: true });
        expect(convGot.state).toBe(convState);
        const ssm = { x: convWant.x, xz, dbc: g([B, R + 2 * N], 'bf16'), dtWeight: g([E, R], 'f32', 0.2), ALog: g([E, N]), D: g([E]) };
        const state = g([B, E, N]);
        const ssmWant = T.ssmStep({ ...ssm, state });
        const ssmGot = T.ssmStep({ ...ssm, state, inPlace: true });
        expect(ssmGot.state).toBe(state);
        return [[convState, convWant.state], [convGot.x, convWant.x], [state, ssmWant.state], [ssmGot.y, ssmWant.y]];
      }),
    );
    for (const [i, [got, want]] of pairs.entries()) {
      expect(await got.toFloat32(), ['conv state', 'conv x', 'ssm state', 'ssm y'][i]).toEqual(await want.toFloat32());
    }
    T.dispose(pairs.flat());
  });

  test('a capture that uploads or reads is refused with a sentence, and the backend keeps working', async () => {
    await onAsync('cuda', async () => {
      const x = T.tensor([1, 2, 3]);
      expect(() => T.engine().capture(() => T.add(x, T.tensor([1, 1, 1])))).toThrow(
        'cuda: cannot upload data to the device while a graph is being captured; do it before or after the capture',
      );
      const { result, graph } = T.engine().capture(() => T.mul(x, x));
      T.engine().write(x, Float32Array.of(2, 3, 4));
      graph.replay();
      expect(Array.from(await result.data())).toEqual([4, 9, 16]);
      graph.dispose();
      expect(() => graph.replay()).toThrow('replay: this captured graph was disposed.');
      T.dispose([x, result]);
    });
  });
});

function argmaxOf(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}
