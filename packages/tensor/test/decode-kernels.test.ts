import { describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import type { DType, Tensor } from '@mamba-ts/tensor';

// Each decode kernel equals the chain of existing ops it replaces in MambaMixer.step / MambaModel.step (on cpu).

let seed = 1;
const normal = (shape: number[], dtype: DType = 'f32', std = 1) => T.randomNormal(shape, { std, seed: seed++, dtype });
const uniform = (shape: number[], low: number, high: number, dtype: DType = 'f32') => T.randomUniform(shape, { low, high, seed: seed++, dtype });
const values = (t: Tensor) => T.asFloat32(t.dataSync(), t.dtype);

/** Every element within atol·max(1, max|expected|) + rtol·|expected|; shapes and dtypes equal. */
function expectClose(actual: Tensor, expected: Tensor, rtol: number, atol = rtol): void {
  expect(actual.shape).toEqual(expected.shape);
  expect(actual.dtype).toBe(expected.dtype);
  const a = values(actual);
  const e = values(expected);
  const scale = Math.max(1, ...e.map(Math.abs));
  const bad = [...e.keys()].filter((i) => !(Math.abs(a[i] - e[i]) <= atol * scale + rtol * Math.abs(e[i])));
  expect(bad.map((i) => `[${i}] ${a[i]} vs ${e[i]}`)).toEqual([]);
}

function expectEqual(actual: Tensor, expected: Tensor): void {
  expect(actual.shape).toEqual(expected.shape);
  expect(actual.dtype).toBe(expected.dtype);
  expect(values(actual)).toEqual(values(expected));
}

describe('residualRmsNorm = add + rmsNorm + cast', () => {
  /** The model's chain: the norm's output is rounded to the residual's dtype, then cast to outDtype. */
  const modelChain = (residual: Tensor, update: Tensor | null, w: Tensor, eps: number, outDtype: DType) => {
    const sum = update ? T.add(residual, T.cast(update, residual.dtype)) : residual;
    return { sum, normed: T.cast(T.rmsNorm(sum, w, eps), outDtype) };
  };
  /** The same with the norm in f32, so that its output is rounded once to outDtype, as the fused kernel does. */
  const oneRounding = (residual: Tensor, update: Tensor | null, w: Tensor, eps: number, outDtype: DType) => {
    const { sum } = modelChain(residual, update, w, eps, outDtype);
    return { sum, normed: T.cast(T.rmsNorm(T.cast(sum, 'f32'), w, eps), outDtype) };
  };

  test.each([
    ['f32 stream, f32 update', 'f32', 'f32', 'f32', [3, 37]],
    ['f32 stream, bf16 update, bf16 output (the model), leading dims', 'f32', 'bf16', 'bf16', [2, 3, 29]],
    ['bf16 stream, bf16 update', 'bf16', 'bf16', 'bf16', [5, 13]],
    ['f16 stream, f16 update, f32 output', 'f16', 'f16', 'f32', [3, 37]],
  ] as const)('%s: bit-identical to add + rmsNorm in f32 + cast', (_, resType, updType, outDtype, shape) =>
    T.tidy(() => {
      const residual = normal([...shape], resType, 2);
      const update = normal([...shape], updType);
      const w = uniform([shape[shape.length - 1]], 0.5, 1.5);
      const got = T.residualRmsNorm({ residual, update, weight: w, eps: 1e-6, outDtype });
      const want = oneRounding(residual, update, w, 1e-6, outDtype);
      expectEqual(got.sum, want.sum);
      expectEqual(got.normed, want.normed);
      // The model's chain (norm rounded to the stream's dtype first) differs at most by that rounding.
      expectClose(got.normed, modelChain(residual, update, w, 1e-6, outDtype).normed, resType === 'f32' ? 0 : 2 ** -10, 0);
    }),
  );

  test('without update: sum is the residual, normed is rmsNorm', () =>
    T.tidy(() => {
      const residual = normal([4, 13], 'f32');
      const w = uniform([13], 0.5, 1.5);
      const got = T.residualRmsNorm({ residual, weight: w });
      expectEqual(got.sum, residual);
      expectEqual(got.normed, T.rmsNorm(residual, w));
    }),
  );
});

describe('convStep = causalConv1d with an initial state + concat/narrow of the window', () => {
  function composed(xz: Tensor, convState: Tensor, weight: Tensor, bias: Tensor | null, silu: boolean) {
    const [B, E, window] = convState.shape;
    const xPre = T.narrow(xz, 1, 0, E);
    const x = T.reshape(T.causalConv1d(T.reshape(xPre, [B, 1, E]), weight, { bias, initialState: convState, silu }), [B, E]);
    const state = T.narrow(T.concat([convState, T.reshape(xPre, [B, E, 1])], 2), 2, 1, window);
    return { x, state };
  }

  test.each([
    ['W4 bias silu f32', 4, true, true, 'f32'],
    ['W4 bias silu bf16', 4, true, true, 'bf16'],
    ['W2 no bias f16', 2, false, false, 'f16'],
    ['W3 no bias silu f32', 3, false, true, 'f32'],
  ] as const)('%s: bit-identical', (_, W, withBias, silu, dtype) =>
    T.tidy(() => {
      const [B, E] = [3, 7];
      const xz = normal([B, 2 * E + 3], dtype); // C > 2E: only the first E columns are x
      const convState = normal([B, E, W - 1], dtype);
      const weight = normal([E, W], 'f32', 0.5);
      const bias = withBias ? normal([E], 'f32', 0.5) : null;
      const got = T.convStep({ xz, convState, weight, bias, silu });
      const want = composed(xz, convState, weight, bias, silu);
      expectEqual(got.x, want.x);
      expectEqual(got.state, want.state);
    }),
  );

  test('stepping token by token from a zero state reproduces causalConv1d over the sequence', () =>
    T.tidy(() => {
      const [B, L, E, W] = [2, 6, 5, 4];
      const xs = normal([B, L, E], 'f32');
      const weight = normal([E, W], 'f32', 0.5);
      const bias = normal([E], 'f32', 0.5);
      const parallel = T.causalConv1d(xs, weight, { bias, silu: true });
      let convState = T.zeros([B, E, W - 1]);
      const steps: Tensor[] = [];
      for (let t = 0; t < L; t++) {
        const xz = T.concat([T.reshape(T.narrow(xs, 1, t, 1), [B, E]), normal([B, E])], 1);
        const { x, state } = T.convStep({ xz, convState, weight, bias, silu: true });
        steps.push(T.reshape(x, [B, 1, E]));
        convState = state;
      }
      expectClose(T.concat(steps, 1), parallel, 1e-6);
    }),
  );
});

describe('ssmStep = split + dt_proj matmul + neg(exp(ALog)) + selectiveStateUpdate', () => {
  interface Step {
    state: Tensor;
    x: Tensor;
    xz: Tensor;
    dbc: Tensor;
    dtWeight: Tensor;
    dtBias: Tensor | null;
    ALog: Tensor;
    D: Tensor | null;
  }

  function inputs(B: number, E: number, N: number, R: number, dtype: DType, withOptional: boolean): Step {
    return {
      state: normal([B, E, N]),
      x: normal([B, E], dtype),
      xz: normal([B, 2 * E + 3], dtype),
      dbc: normal([B, R + 2 * N], dtype),
      dtWeight: normal([E, R], 'f32', 0.3),
      dtBias: withOptional ? uniform([E], -3, 0) : null,
      ALog: uniform([E, N], -1, 1.5),
      D: withOptional ? normal([E]) : null,
    };
  }

  /** What MambaMixer.step does today: dt_proj is a Linear (weight cast to the activation dtype, no bias). */
  function composed(p: Step) {
    const [, E, N] = p.state.shape;
    const R = p.dtWeight.shape[1];
    const [dtLowRank, Bm, Cm] = T.split(p.dbc, [R, N, N], -1);
    const delta = T.matmul(dtLowRank, T.cast(p.dtWeight, dtLowRank.dtype), { transB: true });
    const z = T.narrow(p.xz, 1, E, E);
    return T.selectiveStateUpdate({
      state: p.state, x: p.x, delta, A: T.neg(T.exp(p.ALog)), B: Bm, C: Cm, D: p.D, z, deltaBias: p.dtBias, deltaSoftplus: true,
    });
  }

  test.each([
    ['f32 with dtBias and D, R = 5 N = 16', 'f32', true, 5, 16],
    ['f32 without optional inputs, R = 3 N = 4', 'f32', false, 3, 4],
  ] as const)('%s', (_, dtype, withOptional, R, N) =>
    T.tidy(() => {
      const p = inputs(2, 7, N, R, dtype, withOptional);
      const got = T.ssmStep(p);
      const want = composed(p);
      // The fused kernel keeps δ and A unrounded (the chain stores them in f32): agreement to f32 precision.
      expectClose(got.y, want.y, 1e-5);
      expectClose(got.state, want.state, 1e-5);
    }),
  );

  test('bf16 activations: close to the chain, which rounds δ to bf16 after the dt_proj matmul', () =>
    T.tidy(() => {
      const p = inputs(3, 6, 16, 4, 'bf16', true);
      const got = T.ssmStep(p);
      const want = composed(p);
      expectClose(got.y, want.y, 3e-2);
      expectClose(got.state, want.state, 3e-2);
    }),
  );

  test('stepping token by token reproduces selectiveScan over the sequence', () =>
    T.tidy(() => {
      const [B, L, E, N, R] = [2, 5, 4, 3, 2];
      const u = normal([B, L, E]);
      const z = normal([B, L, E]);
      const dbcs = normal([B, L, R + 2 * N]);
      const dtWeight = normal([E, R], 'f32', 0.5);
      const dtBias = uniform([E], -2, 0);
      const ALog = uniform([E, N], -1, 1);
      const D = normal([E]);
      const h0 = normal([B, E, N]);
      const [dtLowRank, Bm, Cm] = T.split(dbcs, [R, N, N], -1);
      const delta = T.matmul(dtLowRank, dtWeight, { transB: true });
      const scan = T.selectiveScan({ u, delta, A: T.neg(T.exp(ALog)), B: Bm, C: Cm, D, z, deltaBias: dtBias, h0, deltaSoftplus: true });
      let state = h0;
      const ys: Tensor[] = [];
      for (let t = 0; t < L; t++) {
        const at = (s: Tensor) => T.reshape(T.narrow(s, 1, t, 1), [B, s.shape[2]]);
        const xz = T.concat([at(u), at(z)], 1);
        const step = T.ssmStep({ state, x: at(u), xz, dbc: at(dbcs), dtWeight, dtBias, ALog, D });
        ys.push(T.reshape(step.y, [B, 1, E]));
        state = step.state;
      }
      expectClose(T.concat(ys, 1), scan.y, 1e-5);
      expectClose(state, scan.hLast, 1e-5);
    }),
  );
});

describe('inPlace: the new state written over the input state', () => {
  test.each(['f32', 'bf16'] as const)('convStep (%s state): the same values as a new state, in the input tensor', (dtype) =>
    T.tidy(() => {
      const [B, E, W] = [3, 7, 4];
      const xz = normal([B, 2 * E], dtype);
      const convState = normal([B, E, W - 1], dtype);
      const weight = normal([E, W], 'f32', 0.5);
      const want = T.convStep({ xz, convState, weight, silu: true });
      const got = T.convStep({ xz, convState, weight, silu: true, inPlace: true });
      expect(got.state).toBe(convState);
      expectEqual(got.x, want.x);
      expectEqual(convState, want.state);
    }),
  );

  test('ssmStep: the same values as a new state, in the input tensor; two steps in place = two steps', () =>
    T.tidy(() => {
      const [B, E, N, R] = [2, 5, 4, 3];
      const state = normal([B, E, N]);
      const fixed = { xz: normal([B, 2 * E]), dbc: normal([B, R + 2 * N]), dtWeight: normal([E, R], 'f32', 0.3), ALog: normal([E, N]), D: normal([E]) };
      const x1 = normal([B, E]);
      const x2 = normal([B, E]);
      const first = T.ssmStep({ ...fixed, state, x: x1 });
      const second = T.ssmStep({ ...fixed, state: first.state, x: x2 });
      const inPlace1 = T.ssmStep({ ...fixed, state, x: x1, inPlace: true });
      expect(inPlace1.state).toBe(state);
      expectEqual(inPlace1.y, first.y);
      expectEqual(state, first.state);
      const inPlace2 = T.ssmStep({ ...fixed, state, x: x2, inPlace: true });
      expectEqual(inPlace2.y, second.y);
      expectEqual(state, second.state);
    }),
  );
});

describe('inference only', () => {
  test.each([
    ['residualRmsNorm', (x: Tensor) => T.residualRmsNorm({ residual: x, weight: T.ones([7]) }).normed, 'add and rmsNorm'],
    ['convStep', (x: Tensor) => T.convStep({ xz: x, convState: T.zeros([2, 5, 3]), weight: T.ones([5, 4]) }).x, 'causalConv1d'],
    [
      'ssmStep',
      (x: Tensor) => T.ssmStep({
        state: T.zeros([2, 2, 3]), x: T.narrow(x, 1, 0, 2), xz: T.narrow(x, 1, 0, 4), dbc: x, dtWeight: T.ones([2, 1]), ALog: T.zeros([2, 3]),
      }).y,
      'selectiveScan',
    ],
  ] as const)('a gradient through %s fails with one clear sentence', (name, f, trainWith) => {
    const x = normal([2, 7]);
    const message = new RegExp(`^${name} has no gradient: it is an inference-only kernel .*parallel path \\(${trainWith}\\)`);
    expect(() => T.valueAndGrad(() => T.sum(f(x)), [x])).toThrow(message);
    x.dispose();
  });

  test('without gradient recording the kernels run as usual', () => {
    const x = normal([2, 5]);
    const before = T.memory().liveTensors;
    T.tidy(() => {
      T.residualRmsNorm({ residual: x, weight: T.ones([5]) });
    });
    expect(T.memory().liveTensors).toBe(before);
    x.dispose();
  });
});

describe('bad inputs get one sentence naming the argument', () => {
  test('residualRmsNorm', () =>
    T.tidy(() => {
      const r = normal([2, 6]);
      expect(() => T.residualRmsNorm({ residual: r, update: normal([2, 5]), weight: T.ones([6]) })).toThrow(/residualRmsNorm update: expected shape \[2, 6\]/);
      expect(() => T.residualRmsNorm({ residual: r, weight: T.ones([5]) })).toThrow(/residualRmsNorm weight: expected shape \[6\]/);
      expect(() => T.residualRmsNorm({ residual: r, weight: T.ones([6]), outDtype: 'i32' })).toThrow(/residualRmsNorm outDtype: expected a floating-point/);
    }));

  test('convStep', () =>
    T.tidy(() => {
      const convState = normal([2, 5, 3]);
      expect(() => T.convStep({ xz: normal([2, 4]), convState, weight: T.ones([5, 4]) })).toThrow(/convStep xz: has 4 columns but its x part needs 5/);
      expect(() => T.convStep({ xz: normal([2, 10]), convState, weight: T.ones([5, 3]) })).toThrow(/convStep weight: expected shape \[5, 4\]/);
      expect(() => T.convStep({ xz: normal([3, 10]), convState, weight: T.ones([5, 4]) })).toThrow(/convStep xz: expected shape \[2, \*\]/);
    }));

  test('ssmStep', () =>
    T.tidy(() => {
      const base = {
        state: T.zeros([2, 3, 4]), x: normal([2, 3]), xz: normal([2, 6]), dbc: normal([2, 10]), dtWeight: T.ones([3, 2]), ALog: T.zeros([3, 4]),
      };
      expect(() => T.ssmStep(base)).not.toThrow();
      expect(() => T.ssmStep({ ...base, state: T.zeros([2, 3, 4], 'bf16') })).toThrow(/ssmStep state: the scan state must be f32/);
      expect(() => T.ssmStep({ ...base, xz: normal([2, 5]) })).toThrow(/ssmStep xz: has 5 columns but needs at least 2E = 6/);
      expect(() => T.ssmStep({ ...base, dbc: normal([2, 9]) })).toThrow(/ssmStep dbc: expected shape \[2, 10\] .*R = 2 .*N = 4/);
      expect(() => T.ssmStep({ ...base, D: T.ones([4]) })).toThrow(/ssmStep D: expected shape \[3\]/);
    }));
});
