import { describe, expect, it } from 'vitest';
import { adamwStep } from '../src/backends/cpu/math/index.js';
import { expectClose } from './helpers/cpu-math-gradcheck.js';

describe('adamwStep', () => {
  it('matches a hand-computed two-step example (torch.optim.AdamW semantics)', () => {
    const hyper = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
    const param = Float64Array.of(1, -2, 0.5);
    const m = new Float64Array(3);
    const v = new Float64Array(3);

    // Step 1: bias correction makes m̂ = g and v̂ = g², so the update is lr·g/(|g| + eps) after decay by (1 − lr·wd).
    // param[0] = 1·0.999 − 0.1·0.5/(0.5 + 1e-8); a zero gradient only decays.
    adamwStep({ param, grad: Float64Array.of(0.5, -1, 0), m, v, ...hyper, step: 1 });
    expectClose(param, [0.999 - 0.1 * (0.5 / (0.5 + 1e-8)), -1.998 + 0.1 * (1 / (1 + 1e-8)), 0.4995], 'step 1', 1e-15, 1e-15);
    expectClose(m, [0.05, -0.1, 0], 'm after step 1', 1e-15, 1e-15);
    expectClose(v, [0.00025, 0.001, 0], 'v after step 1', 1e-14, 1e-15);

    // Step 2 with g = (0.1, 0.2, −0.3): m = 0.9·m + 0.1·g, v = 0.999·v + 0.001·g²,
    // param = param·0.999 − (0.1/(1 − 0.9²))·m / (sqrt(v)/sqrt(1 − 0.999²) + 1e-8).
    adamwStep({ param, grad: Float64Array.of(0.1, 0.2, -0.3), m, v, ...hyper, step: 2 });
    expectClose(m, [0.055, -0.07, -0.03], 'm after step 2', 1e-14, 1e-15);
    expectClose(v, [0.00025975, 0.001039, 0.00009], 'v after step 2', 1e-14, 1e-15);
    // Values computed independently (Python, same formulas).
    expectClose(param, [0.8177969063826517, -1.8449993939894944, 0.5734141788496808], 'step 2', 1e-14, 1e-15);
  });

  it('updates Float32Array state in place', () => {
    const param = Float32Array.of(1);
    const m = new Float32Array(1);
    const v = new Float32Array(1);
    adamwStep({ param, grad: Float32Array.of(2), m, v, lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 });
    expect(param[0]).toBeCloseTo(0.99, 6);
    expect(m[0]).toBeCloseTo(0.2, 6);
    expect(v[0]).toBeCloseTo(0.004, 6);
  });

  it('rejects step 0 and mismatched sizes', () => {
    const a = () => new Float64Array(2);
    const hyper = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
    expect(() => adamwStep({ param: a(), grad: a(), m: a(), v: a(), ...hyper, step: 0 })).toThrow(/step must be an integer ≥ 1/);
    expect(() => adamwStep({ param: a(), grad: new Float64Array(3), m: a(), v: a(), ...hyper, step: 1 })).toThrow(
      /adamwStep: grad has 3 elements but param has 2/,
    );
  });
});
