import { describe, expect, it } from 'vitest';
import {
  selectiveScanBackward,
  selectiveScanForward,
  selectiveStateUpdate,
  type ScanDims,
} from '../src/backends/cpu/math/index.js';
import { expectClose, expectGradient, weightedSum } from './helpers/cpu-math-gradcheck.js';
import { mulberry32, randArray, type Rng } from './helpers/prng.js';

interface ScanCase {
  name: string;
  deltaSoftplus: boolean;
  withZ: boolean;
  withD: boolean;
  withBias: boolean;
  withH0: boolean;
  withHLast: boolean;
  /** Raw delta range (before bias / softplus). */
  deltaRange: [number, number];
}

interface ScanInputs {
  u: Float64Array;
  delta: Float64Array;
  A: Float64Array;
  Bm: Float64Array;
  Cm: Float64Array;
  D: Float64Array | null;
  z: Float64Array | null;
  deltaBias: Float64Array | null;
  h0: Float64Array | null;
}

function makeInputs(rng: Rng, dims: ScanDims, c: ScanCase): ScanInputs {
  const { batch: B, length: L, channels: E, state: N } = dims;
  // A = −exp(U) < 0, as in Mamba (A = −exp(A_log)).
  const A = randArray(rng, E * N, -1, 0.5).map((v) => -Math.exp(v));
  return {
    u: randArray(rng, B * L * E, -1, 1),
    delta: randArray(rng, B * L * E, c.deltaRange[0], c.deltaRange[1]),
    A,
    Bm: randArray(rng, B * L * N, -1, 1),
    Cm: randArray(rng, B * L * N, -1, 1),
    D: c.withD ? randArray(rng, E, -1, 1) : null,
    z: c.withZ ? randArray(rng, B * L * E, -2, 2) : null,
    deltaBias: c.withBias ? randArray(rng, E, 0, 0.3) : null,
    h0: c.withH0 ? randArray(rng, B * E * N, -1, 1) : null,
  };
}

function runForward(dims: ScanDims, inputs: ScanInputs, deltaSoftplus: boolean) {
  const { batch: B, length: L, channels: E, state: N } = dims;
  const y = new Float64Array(B * L * E);
  const hLast = new Float64Array(B * E * N);
  selectiveScanForward({ dims, ...inputs, deltaSoftplus, y, hLast });
  return { y, hLast };
}

const dims: ScanDims = { batch: 2, length: 5, channels: 3, state: 4 };

const cases: ScanCase[] = [
  { name: 'everything on', deltaSoftplus: true, withZ: true, withD: true, withBias: true, withH0: true, withHLast: true, deltaRange: [-2, 1] },
  { name: 'bare (no softplus, z, D, bias, h0)', deltaSoftplus: false, withZ: false, withD: false, withBias: false, withH0: false, withHLast: true, deltaRange: [0.05, 0.8] },
  { name: 'softplus, D, bias, h0, no z', deltaSoftplus: true, withZ: false, withD: true, withBias: true, withH0: true, withHLast: true, deltaRange: [-2, 1] },
  { name: 'no softplus, z, bias, h0, no D', deltaSoftplus: false, withZ: true, withD: false, withBias: true, withH0: true, withHLast: true, deltaRange: [0.05, 0.8] },
  { name: 'softplus, z, D, no hLast / dhLast', deltaSoftplus: true, withZ: true, withD: true, withBias: false, withH0: false, withHLast: false, deltaRange: [-2, 1] },
  { name: 'softplus above the threshold 20', deltaSoftplus: true, withZ: true, withD: true, withBias: true, withH0: true, withHLast: true, deltaRange: [20.5, 22] },
];

describe('selectiveScanForward', () => {
  it('matches a hand-computed two-step example', () => {
    const d: ScanDims = { batch: 1, length: 2, channels: 1, state: 1 };
    const y = new Float64Array(2);
    const hLast = new Float64Array(1);
    selectiveScanForward({
      dims: d,
      u: Float64Array.of(1, -1),
      delta: Float64Array.of(0.5, 1),
      A: Float64Array.of(-1),
      Bm: Float64Array.of(2, 3),
      Cm: Float64Array.of(1, 0.5),
      D: Float64Array.of(0.1),
      deltaSoftplus: false,
      y,
      hLast,
    });
    // h_0 = e^{−0.5}·0 + 0.5·2·1 = 1;  h_1 = e^{−1}·1 + 1·3·(−1)
    const h1 = Math.exp(-1) - 3;
    expectClose(y, [1 * 1 + 0.1 * 1, h1 * 0.5 + 0.1 * -1], 'y', 1e-15, 1e-15);
    expectClose(hLast, [h1], 'hLast', 1e-15, 1e-15);
  });

  it('applies softplus(delta + bias) with threshold 20 and the silu gate', () => {
    const d: ScanDims = { batch: 1, length: 1, channels: 2, state: 1 };
    const y = new Float64Array(2);
    const z = Float64Array.of(0.7, -0.4);
    selectiveScanForward({
      dims: d,
      u: Float64Array.of(1, 1),
      delta: Float64Array.of(0.3, 24),
      deltaBias: Float64Array.of(-0.1, 1),
      A: Float64Array.of(-1, -1),
      Bm: Float64Array.of(1),
      Cm: Float64Array.of(1),
      z,
      deltaSoftplus: true,
      y,
    });
    const silu = (v: number) => v / (1 + Math.exp(-v));
    // h = dt·B·u = dt, y = h·C·silu(z) = dt·silu(z); 25 is above the threshold, so dt = 25 exactly.
    expectClose(y, [Math.log1p(Math.exp(0.2)) * silu(0.7), 25 * silu(-0.4)], 'y', 1e-15, 1e-15);
  });

  it('accepts Float32Array inputs and agrees with Float64', () => {
    const c = cases[0];
    const inputs = makeInputs(mulberry32(7), dims, c);
    const ref = runForward(dims, inputs, true);
    const f32 = (a: Float64Array | null) => (a ? Float32Array.from(a) : null);
    const y = new Float32Array(ref.y.length);
    const hLast = new Float32Array(ref.hLast.length);
    selectiveScanForward({
      dims,
      u: f32(inputs.u)!,
      delta: f32(inputs.delta)!,
      A: f32(inputs.A)!,
      Bm: f32(inputs.Bm)!,
      Cm: f32(inputs.Cm)!,
      D: f32(inputs.D),
      z: f32(inputs.z),
      deltaBias: f32(inputs.deltaBias),
      h0: f32(inputs.h0),
      deltaSoftplus: true,
      y,
      hLast,
    });
    expectClose(y, ref.y, 'y f32', 1e-5, 1e-6);
    expectClose(hLast, ref.hLast, 'hLast f32', 1e-5, 1e-6);
  });

  it('rejects an array of the wrong size, naming it', () => {
    const inputs = makeInputs(mulberry32(1), dims, cases[0]);
    expect(() =>
      selectiveScanForward({ dims, ...inputs, Cm: new Float64Array(3), deltaSoftplus: true, y: new Float64Array(30) }),
    ).toThrow(/selectiveScanForward: Cm has 3 elements/);
  });
});

describe('selectiveScanBackward: finite-difference gradients', () => {
  for (const [index, c] of cases.entries()) {
    it(c.name, () => {
      const rng = mulberry32(100 + index);
      const inputs = makeInputs(rng, dims, c);
      const { batch: B, length: L, channels: E, state: N } = dims;
      const wy = randArray(rng, B * L * E, -1, 1);
      const wh = c.withHLast ? randArray(rng, B * E * N, -1, 1) : null;

      const loss = () => {
        const { y, hLast } = runForward(dims, inputs, c.deltaSoftplus);
        return weightedSum(wy, y) + (wh ? weightedSum(wh, hLast) : 0);
      };

      const grads = {
        du: new Float64Array(B * L * E),
        ddelta: new Float64Array(B * L * E),
        dA: new Float64Array(E * N),
        dBm: new Float64Array(B * L * N),
        dCm: new Float64Array(B * L * N),
        dD: new Float64Array(E),
        dz: inputs.z ? new Float64Array(B * L * E) : null,
        ddeltaBias: new Float64Array(E),
        dh0: new Float64Array(B * E * N),
      };
      selectiveScanBackward({ dims, ...inputs, deltaSoftplus: c.deltaSoftplus, dy: wy, dhLast: wh, ...grads });

      expectGradient('u', loss, inputs.u, grads.du);
      expectGradient('delta', loss, inputs.delta, grads.ddelta);
      expectGradient('A', loss, inputs.A, grads.dA);
      expectGradient('Bm', loss, inputs.Bm, grads.dBm);
      expectGradient('Cm', loss, inputs.Cm, grads.dCm);
      if (inputs.D) expectGradient('D', loss, inputs.D, grads.dD);
      if (inputs.z) expectGradient('z', loss, inputs.z, grads.dz!);
      if (inputs.deltaBias) expectGradient('deltaBias', loss, inputs.deltaBias, grads.ddeltaBias);
      if (inputs.h0) expectGradient('h0', loss, inputs.h0, grads.dh0);
      // Guard against a vacuous check: every gradient written must be nonzero somewhere.
      for (const [name, g] of Object.entries(grads)) {
        if (g) expect(g.some((v) => v !== 0), `${name} is all zeros`).toBe(true);
      }
    });
  }

  it('gives the gradient at zero for absent D, deltaBias and h0', () => {
    const c = cases[1];
    const rng = mulberry32(55);
    const inputs = makeInputs(rng, dims, c);
    const { batch: B, length: L, channels: E, state: N } = dims;
    const wy = randArray(rng, B * L * E, -1, 1);
    const wh = randArray(rng, B * E * N, -1, 1);
    const zeros = { D: new Float64Array(E), deltaBias: new Float64Array(E), h0: new Float64Array(B * E * N) };
    const withZeros = { ...inputs, ...zeros };
    const loss = () => {
      const { y, hLast } = runForward(dims, withZeros, false);
      return weightedSum(wy, y) + weightedSum(wh, hLast);
    };
    const common = {
      du: new Float64Array(B * L * E),
      ddelta: new Float64Array(B * L * E),
      dA: new Float64Array(E * N),
      dBm: new Float64Array(B * L * N),
      dCm: new Float64Array(B * L * N),
    };
    const dD = new Float64Array(E);
    const ddeltaBias = new Float64Array(E);
    const dh0 = new Float64Array(B * E * N);
    selectiveScanBackward({ dims, ...inputs, deltaSoftplus: false, dy: wy, dhLast: wh, ...common, dD, ddeltaBias, dh0 });
    expectGradient('D at 0', loss, zeros.D, dD);
    expectGradient('deltaBias at 0', loss, zeros.deltaBias, ddeltaBias);
    expectGradient('h0 at 0', loss, zeros.h0, dh0);
  });

  it('rejects dz without z', () => {
    const inputs = makeInputs(mulberry32(3), dims, cases[1]);
    const { batch: B, length: L, channels: E, state: N } = dims;
    expect(() =>
      selectiveScanBackward({
        dims,
        ...inputs,
        deltaSoftplus: false,
        dy: new Float64Array(B * L * E),
        du: new Float64Array(B * L * E),
        ddelta: new Float64Array(B * L * E),
        dA: new Float64Array(E * N),
        dBm: new Float64Array(B * L * N),
        dCm: new Float64Array(B * L * N),
        dz: new Float64Array(B * L * E),
      }),
    ).toThrow(/dz was given but z was not/);
  });
});

describe('selectiveStateUpdate', () => {
  it('repeated over the sequence equals the scan (y and final state)', () => {
    for (const c of cases) {
      const inputs = makeInputs(mulberry32(900), dims, c);
      const { batch: B, length: L, channels: E, state: N } = dims;
      const full = runForward(dims, inputs, c.deltaSoftplus);

      // Token-major slices at time t: (B, L, E) → (B, E) and (B, L, N) → (B, N).
      const sliceE = (a: Float64Array, t: number) => {
        const out = new Float64Array(B * E);
        for (let b = 0; b < B; b++) for (let e = 0; e < E; e++) out[b * E + e] = a[(b * L + t) * E + e];
        return out;
      };
      const sliceN = (a: Float64Array, t: number) => {
        const out = new Float64Array(B * N);
        for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) out[b * N + n] = a[(b * L + t) * N + n];
        return out;
      };

      const state = inputs.h0 ? Float64Array.from(inputs.h0) : new Float64Array(B * E * N);
      const stepY = new Float64Array(B * L * E);
      for (let t = 0; t < L; t++) {
        const y = new Float64Array(B * E);
        selectiveStateUpdate({
          dims: { batch: B, channels: E, state: N },
          state,
          x: sliceE(inputs.u, t),
          delta: sliceE(inputs.delta, t),
          A: inputs.A,
          Bm: sliceN(inputs.Bm, t),
          Cm: sliceN(inputs.Cm, t),
          D: inputs.D,
          z: inputs.z ? sliceE(inputs.z, t) : null,
          deltaBias: inputs.deltaBias,
          deltaSoftplus: c.deltaSoftplus,
          y,
          stateOut: state, // in place
        });
        for (let b = 0; b < B; b++) for (let e = 0; e < E; e++) stepY[(b * L + t) * E + e] = y[b * E + e];
      }
      expectClose(stepY, full.y, `${c.name}: y`, 1e-14, 1e-14);
      expectClose(state, full.hLast, `${c.name}: final state`, 1e-14, 1e-14);
    }
  });
});
