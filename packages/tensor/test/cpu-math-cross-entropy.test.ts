import { describe, expect, it } from 'vitest';
import {
  crossEntropyBackward,
  crossEntropyForward,
  crossEntropyPlain,
  linearCrossEntropyBackward,
  linearCrossEntropyForward,
} from '../src/backends/cpu/math/index.js';
import { expectClose, expectGradient, weightedSum } from './helpers/cpu-math-gradcheck.js';
import { mulberry32, randArray } from './helpers/prng.js';

const ignoreIndex = -100;
const rows = 6;
const vocab = 11;
const targets = Int32Array.of(3, ignoreIndex, 0, 10, ignoreIndex, 7);

function chunked(logits: Float64Array, chunkSize: number) {
  const loss = new Float64Array(rows);
  const lse = new Float64Array(rows);
  crossEntropyForward({ rows, vocab, logits, targets, ignoreIndex, chunkSize, loss, lse });
  return { loss, lse };
}

function plain(logits: Float64Array, r = rows, v = vocab, t = targets) {
  const loss = new Float64Array(r);
  const lse = new Float64Array(r);
  crossEntropyPlain({ rows: r, vocab: v, logits, targets: t, ignoreIndex, loss, lse });
  return { loss, lse };
}

describe('crossEntropyPlain', () => {
  it('is −log softmax[target], 0 on ignored rows', () => {
    const logits = Float64Array.of(0, Math.log(3), 0, 2, 3, 4); // row 0: exp sum = 1 + 3 + 1
    const loss = new Float64Array(2);
    crossEntropyPlain({ rows: 2, vocab: 3, logits, targets: Int32Array.of(1, -1), ignoreIndex: -1, loss });
    expectClose(loss, [-Math.log(3 / 5), 0], 'loss', 1e-15, 1e-15);
  });
});

describe('crossEntropyForward (online over vocabulary chunks)', () => {
  it('equals the plain version for chunk sizes 1, 7, vocab and > vocab', () => {
    const logits = randArray(mulberry32(31), rows * vocab, -4, 4);
    const ref = plain(logits);
    for (const chunkSize of [1, 7, vocab, vocab + 5]) {
      const got = chunked(logits, chunkSize);
      expectClose(got.loss, ref.loss, `loss, chunk ${chunkSize}`, 1e-14, 1e-15);
      expectClose(got.lse, ref.lse, `lse, chunk ${chunkSize}`, 1e-14, 1e-15);
    }
    expect(ref.loss[1]).toBe(0);
    expect(ref.loss[4]).toBe(0);
  });

  it('stays finite for large logits whose maximum is in a late chunk', () => {
    const logits = randArray(mulberry32(32), rows * vocab, -4, 4).map((v, i) => v + 900 + (i % vocab) * 10);
    const ref = plain(logits);
    for (const chunkSize of [1, 3, 7]) {
      const got = chunked(logits, chunkSize);
      expect(got.loss.every(Number.isFinite)).toBe(true);
      expectClose(got.loss, ref.loss, `loss, chunk ${chunkSize}`, 1e-12, 1e-13);
    }
  });

  it('throws on a target outside the vocabulary that is not ignoreIndex, naming the row and value', () => {
    const logits = new Float64Array(rows * vocab);
    const bad = Int32Array.of(0, 1, 11, 0, 0, 0);
    const args = { rows, vocab, logits, ignoreIndex, chunkSize: 4, loss: new Float64Array(rows), lse: new Float64Array(rows) };
    expect(() => crossEntropyForward({ ...args, targets: bad })).toThrow(
      'crossEntropyForward: targets[2] = 11 is outside the vocabulary [0, 11) and is not ignoreIndex (-100).',
    );
    expect(() => crossEntropyForward({ ...args, targets: Int32Array.of(0, 0, 0, 0, -1, 0) })).toThrow(/targets\[4\] = -1/);
  });
});

describe('crossEntropyBackward', () => {
  it('finite-difference gradient w.r.t. logits (ignored rows get zero)', () => {
    const rng = mulberry32(33);
    const logits = randArray(rng, rows * vocab, -3, 3);
    const dloss = randArray(rng, rows, 0.5, 1.5);
    const loss = () => weightedSum(dloss, chunked(logits, 4).loss);
    const { lse } = chunked(logits, 4);
    const dlogits = new Float64Array(rows * vocab);
    crossEntropyBackward({ rows, vocab, logits, targets, ignoreIndex, lse, dloss, dlogits });
    expectGradient('logits', loss, logits, dlogits);
    for (const r of [1, 4]) expect(dlogits.subarray(r * vocab, (r + 1) * vocab).every((v) => v === 0)).toBe(true);
  });
});

describe('linear cross-entropy (logits = hidden · weightᵀ, one vocabulary chunk at a time)', () => {
  const dim = 4;

  function linear(hidden: Float64Array, weight: Float64Array, chunkSize: number) {
    const loss = new Float64Array(rows);
    const lse = new Float64Array(rows);
    linearCrossEntropyForward({ rows, dim, vocab, hidden, weight, targets, ignoreIndex, chunkSize, loss, lse });
    return { loss, lse };
  }

  function matmulT(hidden: Float64Array, weight: Float64Array): Float64Array {
    const logits = new Float64Array(rows * vocab);
    for (let r = 0; r < rows; r++) {
      for (let v = 0; v < vocab; v++) {
        for (let d = 0; d < dim; d++) logits[r * vocab + v] += hidden[r * dim + d] * weight[v * dim + d];
      }
    }
    return logits;
  }

  it('equals matmul followed by cross-entropy for several chunk sizes', () => {
    const rng = mulberry32(41);
    const hidden = randArray(rng, rows * dim, -1, 1);
    const weight = randArray(rng, vocab * dim, -1, 1);
    const ref = plain(matmulT(hidden, weight));
    for (const chunkSize of [1, 3, 7, vocab, vocab + 5]) {
      const got = linear(hidden, weight, chunkSize);
      expectClose(got.loss, ref.loss, `loss, chunk ${chunkSize}`, 1e-14, 1e-15);
      expectClose(got.lse, ref.lse, `lse, chunk ${chunkSize}`, 1e-14, 1e-15);
    }
  });

  for (const chunkSize of [3, vocab]) {
    it(`finite-difference gradients w.r.t. hidden and weight (chunk ${chunkSize}), matching the unfused gradient`, () => {
      const rng = mulberry32(42 + chunkSize);
      const hidden = randArray(rng, rows * dim, -1, 1);
      const weight = randArray(rng, vocab * dim, -1, 1);
      const dloss = randArray(rng, rows, 0.5, 1.5);
      const loss = () => weightedSum(dloss, linear(hidden, weight, chunkSize).loss);
      const { lse } = linear(hidden, weight, chunkSize);
      const dhidden = new Float64Array(rows * dim);
      const dweight = new Float64Array(vocab * dim);
      linearCrossEntropyBackward({
        rows, dim, vocab, hidden, weight, targets, ignoreIndex, chunkSize, lse, dloss, dhidden, dweight,
      });
      expectGradient('hidden', loss, hidden, dhidden);
      expectGradient('weight', loss, weight, dweight);
      for (const r of [1, 4]) expect(dhidden.subarray(r * dim, (r + 1) * dim).every((v) => v === 0)).toBe(true);
    });
  }

  it('throws on a bad target, naming the row and value', () => {
    expect(() =>
      linear(new Float64Array(rows * dim), new Float64Array(vocab * dim), 4),
    ).not.toThrow();
    expect(() =>
      linearCrossEntropyForward({
        rows: 1, dim, vocab, hidden: new Float64Array(dim), weight: new Float64Array(vocab * dim),
        targets: Int32Array.of(99), ignoreIndex, chunkSize: 4, loss: new Float64Array(1), lse: new Float64Array(1),
      }),
    ).toThrow('linearCrossEntropyForward: targets[0] = 99 is outside the vocabulary [0, 11) and is not ignoreIndex (-100).');
  });
});
