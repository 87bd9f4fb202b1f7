import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { Decoder, MambaLM, presetConfig, type MambaState } from '@mamba-ts/ssm';
import { maxViolation } from './helpers.js';

beforeAll(() => T.setBackend('cpu'));
afterEach(() => T.setBackend('cpu'));

function tinyModel(overrides: Partial<ReturnType<typeof presetConfig>> = {}): MambaLM {
  return new MambaLM({ ...presetConfig('tiny'), ...overrides }, { seed: 7 });
}

/** Logits of `steps` recurrent steps through model.step, and the final state. */
function reference(model: MambaLM, tokens: Int32Array[]): { logits: Float32Array[]; state: MambaState } {
  let state = model.emptyState(tokens[0].length).keep();
  const logits: Float32Array[] = [];
  for (const ids of tokens) {
    const r = T.noGrad(() => T.tidy(() => {
      const out = model.step(T.tensor(ids, [ids.length], 'i32'), state);
      out.state.keep();
      return out;
    }));
    logits.push(r.logits.dataSync() as Float32Array);
    r.logits.dispose();
    state.dispose();
    state = r.state;
  }
  return { logits, state };
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  const { ratio, at } = maxViolation(got, want, tol, tol);
  expect(ratio, `${what}: worst at ${at}: ${got[at]} vs ${want[at]}`).toBeLessThanOrEqual(1);
}

const steps = [Int32Array.of(3, 500, 17), Int32Array.of(9, 0, 511), Int32Array.of(44, 44, 1), Int32Array.of(2, 8, 300)];

describe('Decoder', () => {
  test('the fused step gives model.step logits and state, step after step (f32)', () => {
    const model = tinyModel();
    const want = reference(model, steps);
    const decoder = new Decoder(model, 3);
    expect(decoder.fused).toBe(true);
    steps.forEach((ids, t) => {
      decoder.feed(ids);
      expectClose(decoder.logits.dataSync(), want.logits[t], 1e-5, `step ${t}`);
    });
    const state = decoder.state();
    state.layers.forEach((layer, i) => {
      expectClose(layer.conv.dataSync(), want.state.layers[i].conv.dataSync(), 1e-6, `conv state ${i}`);
      expectClose(layer.ssm.dataSync(), want.state.layers[i].ssm.dataSync(), 1e-5, `ssm state ${i}`);
    });
    state.dispose();
    want.state.dispose();
    decoder.dispose();
  });

  test('bf16 compute with an untied head and biases stays within bf16 rounding of model.step', () => {
    const model = tinyModel({ tieWordEmbeddings: false, useBias: true, useConvBias: true });
    model.computeDType = 'bf16';
    const want = reference(model, steps);
    const decoder = new Decoder(model, 3);
    expect(decoder.fused).toBe(true);
    steps.forEach((ids, t) => {
      decoder.feed(ids);
      expectClose(decoder.logits.dataSync(), want.logits[t], 3e-2, `step ${t}`);
    });
    want.state.dispose();
    decoder.dispose();
  });

  test('advance() continues from the previous argmax, as greedy decoding with model.step does', async () => {
    const model = tinyModel();
    const decoder = new Decoder(model, 3);
    decoder.feed(steps[0]);
    const tokens = [steps[0]];
    for (let t = 0; t < 5; t++) {
      const next = await decoder.argmax();
      const rows = decoder.logits.dataSync();
      const V = model.config.vocabSize;
      expect(Array.from(next)).toEqual([0, 1, 2].map((b) => argmaxOf(rows.subarray(b * V, (b + 1) * V))));
      tokens.push(next);
      decoder.advance();
    }
    const want = reference(model, tokens);
    expectClose(decoder.logits.dataSync(), want.logits.at(-1)!, 1e-5, 'last step');
    want.state.dispose();
    decoder.dispose();
  });

  test('a wrapped projection (e.g. an unmerged adapter) takes the model.step path with the same numbers', () => {
    const model = tinyModel();
    const want = reference(model, steps);
    const mixer = model.backbone.layers.items[1].mixer;
    const inner = mixer.in_proj;
    class Wrapped extends T.Module {
      readonly bias = inner.bias;
      forward(x: T.Tensor, opts?: { bias?: boolean }): T.Tensor {
        return inner.forward(x, opts);
      }
    }
    mixer.replaceChild('in_proj', new Wrapped());
    const decoder = new Decoder(model, 3);
    expect(decoder.fused).toBe(false);
    steps.forEach((ids, t) => {
      decoder.feed(ids);
      expectClose(decoder.logits.dataSync(), want.logits[t], 1e-6, `step ${t}`);
    });
    want.state.dispose();
    decoder.dispose();
  });

  test('starts from a given state, which it copies', () => {
    const model = tinyModel();
    const first = reference(model, steps.slice(0, 2));
    const want = reference(model, steps);
    const decoder = new Decoder(model, 3, { state: first.state });
    decoder.feed(steps[2]);
    decoder.feed(steps[3]);
    expectClose(decoder.logits.dataSync(), want.logits[3], 1e-5, 'after the given state');
    expect(first.state.layers[0].ssm.isDisposed).toBe(false);
    first.state.dispose();
    want.state.dispose();
    decoder.dispose();
  });

  test('bad use is named', () => {
    const model = tinyModel();
    expect(() => new Decoder(model, 0)).toThrow('Decoder: batch must be a positive integer, got 0.');
    const state = model.emptyState(2);
    expect(() => new Decoder(model, 3, { state })).toThrow('Decoder: the state holds 2 sequences but batch is 3.');
    state.dispose();
    const decoder = new Decoder(model, 3);
    expect(() => decoder.advance()).toThrow('Decoder.advance: no step has run yet; feed() the first ids.');
    expect(() => decoder.feed([1, 2])).toThrow('Decoder.feed: 2 ids given for a batch of 3.');
    expect(() => decoder.feed([1, 512, 2])).toThrow('Decoder.feed: id 512 at position 1 is outside the vocabulary [0, 512).');
    expect(() => decoder.feed([1, 2.5, 2])).toThrow('Decoder.feed: id 2.5 at position 1 is outside the vocabulary [0, 512).');
    decoder.dispose();
    expect(() => decoder.feed([1, 2, 3])).toThrow('Decoder: used after dispose().');
  });

  test('leaves no tensors behind', () => {
    const model = tinyModel({ tieWordEmbeddings: false });
    model.computeDType = 'bf16';
    const before = T.memory().liveTensors;
    const decoder = new Decoder(model, 3);
    decoder.feed(steps[0]);
    decoder.advance();
    decoder.dispose();
    expect(T.memory().liveTensors).toBe(before);
  });
});

function argmaxOf(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}
