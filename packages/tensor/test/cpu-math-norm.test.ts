import { describe, expect, it } from 'vitest';
import { layerNormBackward, layerNormForward, rmsNormBackward, rmsNormForward } from '../src/backends/cpu/math/index.js';
import { expectClose, expectGradient, weightedSum } from './helpers/cpu-math-gradcheck.js';
import { mulberry32, randArray } from './helpers/prng.js';

const rows = 3;
const cols = 5;
const eps = 1e-5;

describe('rmsNorm', () => {
  it('normalises each row to unit mean square (weight 1) and reports rstd', () => {
    const x = Float64Array.of(1, 2, 3, 4, 5, -1, 0, 0, 0, 1, 10, 10, 10, 10, 10);
    const y = new Float64Array(rows * cols);
    const rstd = new Float64Array(rows);
    rmsNormForward({ rows, cols, x, weight: new Float64Array(cols).fill(1), eps: 0, y, rstd });
    for (let r = 0; r < rows; r++) {
      let ms = 0;
      for (let c = 0; c < cols; c++) ms += y[r * cols + c] ** 2 / cols;
      expect(ms).toBeCloseTo(1, 14);
    }
    expectClose(rstd, [1 / Math.sqrt(11), 1 / Math.sqrt(0.4), 0.1], 'rstd', 1e-15, 1e-15);
  });

  it('finite-difference gradients w.r.t. x and weight', () => {
    const rng = mulberry32(11);
    const x = randArray(rng, rows * cols, -2, 2);
    const weight = randArray(rng, cols, 0.5, 1.5);
    const w = randArray(rng, rows * cols, -1, 1);
    const loss = () => {
      const y = new Float64Array(rows * cols);
      rmsNormForward({ rows, cols, x, weight, eps, y });
      return weightedSum(w, y);
    };
    const dx = new Float64Array(rows * cols);
    const dweight = new Float64Array(cols);
    rmsNormBackward({ rows, cols, x, weight, eps, dy: w, dx, dweight });
    expectGradient('x', loss, x, dx);
    expectGradient('weight', loss, weight, dweight);
  });
});

describe('layerNorm', () => {
  it('gives zero mean and unit variance per row (weight 1, bias 0) and reports the statistics', () => {
    const x = Float64Array.of(1, 2, 3, 4, 5, -1, 0, 0, 0, 1, 3, 1, 4, 1, 5);
    const y = new Float64Array(rows * cols);
    const mean = new Float64Array(rows);
    const rstd = new Float64Array(rows);
    layerNormForward({
      rows, cols, x, weight: new Float64Array(cols).fill(1), bias: new Float64Array(cols), eps: 0, y, mean, rstd,
    });
    expectClose(mean, [3, 0, 2.8], 'mean', 1e-15, 1e-15);
    expectClose(rstd, [1 / Math.sqrt(2), 1 / Math.sqrt(0.4), 1 / Math.sqrt(2.56)], 'rstd', 1e-14, 1e-15);
    for (let r = 0; r < rows; r++) {
      let m = 0;
      let v = 0;
      for (let c = 0; c < cols; c++) m += y[r * cols + c] / cols;
      for (let c = 0; c < cols; c++) v += (y[r * cols + c] - m) ** 2 / cols;
      expect(m).toBeCloseTo(0, 14);
      expect(v).toBeCloseTo(1, 14);
    }
  });

  it('finite-difference gradients w.r.t. x, weight and bias', () => {
    const rng = mulberry32(12);
    const x = randArray(rng, rows * cols, -2, 2);
    const weight = randArray(rng, cols, 0.5, 1.5);
    const bias = randArray(rng, cols, -0.5, 0.5);
    const w = randArray(rng, rows * cols, -1, 1);
    const loss = () => {
      const y = new Float64Array(rows * cols);
      layerNormForward({ rows, cols, x, weight, bias, eps, y });
      return weightedSum(w, y);
    };
    const dx = new Float64Array(rows * cols);
    const dweight = new Float64Array(cols);
    const dbias = new Float64Array(cols);
    layerNormBackward({ rows, cols, x, weight, bias, eps, dy: w, dx, dweight, dbias });
    expectGradient('x', loss, x, dx);
    expectGradient('weight', loss, weight, dweight);
    expectGradient('bias', loss, bias, dbias);
  });

  it('rejects a weight of the wrong size, naming it', () => {
    expect(() =>
      layerNormForward({
        rows, cols, x: new Float64Array(15), weight: new Float64Array(4), bias: new Float64Array(5), eps, y: new Float64Array(15),
      }),
    ).toThrow(/layerNormForward: weight has 4 elements but its shape \(cols\) = \(5\) needs 5/);
  });
});
