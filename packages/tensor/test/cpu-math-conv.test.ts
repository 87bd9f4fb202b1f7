import { describe, expect, it } from 'vitest';
import {
  causalConv1dBackward,
  causalConv1dFinalState,
  causalConv1dForward,
  type ConvDims,
} from '../src/backends/cpu/math/index.js';
import { expectClose, expectGradient, weightedSum } from './helpers/cpu-math-gradcheck.js';
import { mulberry32, randArray } from './helpers/prng.js';

function forward(
  dims: ConvDims,
  x: Float64Array,
  weight: Float64Array,
  bias: Float64Array | null,
  initialState: Float64Array | null,
  silu: boolean,
): Float64Array {
  const y = new Float64Array(dims.batch * dims.length * dims.channels);
  causalConv1dForward({ dims, x, weight, bias, initialState, silu, y });
  return y;
}

/** (B, L, E) rows [from, to) along L. */
function sliceTime(a: Float64Array, dims: ConvDims, from: number, to: number): Float64Array {
  const { batch: B, length: L, channels: E } = dims;
  const out = new Float64Array(B * (to - from) * E);
  for (let b = 0; b < B; b++) {
    for (let t = from; t < to; t++) {
      for (let e = 0; e < E; e++) out[(b * (to - from) + (t - from)) * E + e] = a[(b * L + t) * E + e];
    }
  }
  return out;
}

describe('causalConv1dForward', () => {
  it('is a cross-correlation: weight[e, W−1] multiplies the current token', () => {
    const dims: ConvDims = { batch: 1, length: 3, channels: 1, width: 3 };
    const x = Float64Array.of(1, 2, 3);
    const weight = Float64Array.of(0.1, 0.2, 0.3);
    expectClose(forward(dims, x, weight, null, null, false), [0.3, 0.2 + 0.6, 0.1 + 0.4 + 0.9], 'y', 1e-15, 1e-15);
    // The initial state holds the W−1 inputs before x[0], oldest first, plus a bias.
    const y = forward(dims, x, weight, Float64Array.of(0.5), Float64Array.of(10, 20), false);
    expectClose(y, [0.5 + 1 + 4 + 0.3, 0.5 + 2 + 0.2 + 0.6, 0.5 + 1.4], 'y with state', 1e-15, 1e-15);
  });

  it('applies SiLU after the bias', () => {
    const dims: ConvDims = { batch: 1, length: 1, channels: 2, width: 2 };
    const y = forward(dims, Float64Array.of(1, -2), Float64Array.of(5, 0.5, 5, 0.25), Float64Array.of(0.1, -0.2), null, true);
    const silu = (v: number) => v / (1 + Math.exp(-v));
    expectClose(y, [silu(0.6), silu(-0.7)], 'y', 1e-15, 1e-15);
  });

  it('rejects a wrong-size initial state, naming it', () => {
    const dims: ConvDims = { batch: 1, length: 2, channels: 2, width: 4 };
    expect(() =>
      forward(dims, new Float64Array(4), new Float64Array(8), null, new Float64Array(4), false),
    ).toThrow(/causalConv1dForward: initialState has 4 elements but its shape \(B, E, W−1\) = \(1, 2, 3\) needs 6/);
  });
});

describe('causalConv1dBackward: finite-difference gradients', () => {
  for (const width of [2, 3, 4]) {
    for (const silu of [false, true]) {
      for (const withState of [false, true]) {
        it(`W=${width}, silu=${silu}, initialState=${withState}`, () => {
          const dims: ConvDims = { batch: 2, length: 5, channels: 3, width };
          const { batch: B, length: L, channels: E, width: W } = dims;
          const rng = mulberry32(width * 10 + (silu ? 1 : 0) + (withState ? 2 : 0));
          const x = randArray(rng, B * L * E, -1, 1);
          const weight = randArray(rng, E * W, -1, 1);
          const bias = randArray(rng, E, -0.5, 0.5);
          const initialState = withState ? randArray(rng, B * E * (W - 1), -1, 1) : null;
          const w = randArray(rng, B * L * E, -1, 1);
          const loss = () => weightedSum(w, forward(dims, x, weight, bias, initialState, silu));

          const dx = new Float64Array(x.length);
          const dweight = new Float64Array(weight.length);
          const dbias = new Float64Array(E);
          const dinitialState = new Float64Array(B * E * (W - 1));
          causalConv1dBackward({ dims, x, weight, bias, initialState, silu, dy: w, dx, dweight, dbias, dinitialState });

          expectGradient('x', loss, x, dx);
          expectGradient('weight', loss, weight, dweight);
          expectGradient('bias', loss, bias, dbias);
          if (initialState) expectGradient('initialState', loss, initialState, dinitialState);
          else {
            // The gradient at a zero initial state.
            const zeroState = new Float64Array(B * E * (W - 1));
            const lossAtZero = () => weightedSum(w, forward(dims, x, weight, bias, zeroState, silu));
            expectGradient('initialState at 0', lossAtZero, zeroState, dinitialState);
          }
        });
      }
    }
  }
});

describe('causalConv1dFinalState', () => {
  it('holds the last W−1 inputs, taking older ones from the initial state when L < W−1', () => {
    const dims: ConvDims = { batch: 1, length: 1, channels: 1, width: 4 };
    const state = causalConv1dFinalState({ dims, x: Float64Array.of(7), initialState: Float64Array.of(1, 2, 3) });
    expect(Array.from(state)).toEqual([2, 3, 7]);
    const zeroPadded = causalConv1dFinalState({ dims: { ...dims, length: 2 }, x: Float64Array.of(7, 8) });
    expect(Array.from(zeroPadded)).toEqual([0, 7, 8]);
    const out = new Float32Array(3);
    const long = causalConv1dFinalState({ dims: { ...dims, length: 5 }, x: Float64Array.of(1, 2, 3, 4, 5), finalState: out });
    expect(long).toBe(out);
    expect(Array.from(out)).toEqual([3, 4, 5]);
  });

  it('forward on a split sequence, carrying the final state, equals forward on the whole sequence', () => {
    for (const width of [2, 3, 4]) {
      for (const split of [1, 2, 3, 6]) {
        for (const withState of [false, true]) {
          const dims: ConvDims = { batch: 2, length: 7, channels: 3, width };
          const { batch: B, length: L, channels: E, width: W } = dims;
          const rng = mulberry32(1000 + width * 100 + split);
          const x = randArray(rng, B * L * E, -1, 1);
          const weight = randArray(rng, E * W, -1, 1);
          const bias = randArray(rng, E, -0.5, 0.5);
          const s0 = withState ? randArray(rng, B * E * (W - 1), -1, 1) : null;
          const whole = forward(dims, x, weight, bias, s0, true);

          const d1: ConvDims = { ...dims, length: split };
          const d2: ConvDims = { ...dims, length: L - split };
          const x1 = sliceTime(x, dims, 0, split);
          const x2 = sliceTime(x, dims, split, L);
          const y1 = forward(d1, x1, weight, bias, s0, true);
          const s1 = causalConv1dFinalState({ dims: d1, x: x1, initialState: s0 });
          const y2 = forward(d2, x2, weight, bias, s1 as Float64Array, true);

          const label = `W=${width} split=${split} state=${withState}`;
          expectClose(y1, sliceTime(whole, dims, 0, split), `${label}: first half`, 1e-15, 1e-15);
          expectClose(y2, sliceTime(whole, dims, split, L), `${label}: second half`, 1e-15, 1e-15);
          // The final state of the halves equals that of the whole.
          const sWhole = causalConv1dFinalState({ dims, x, initialState: s0 });
          expectClose(causalConv1dFinalState({ dims: d2, x: x2, initialState: s1 }), sWhole, `${label}: state`, 0, 0);
        }
      }
    }
  });
});
