import { describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { checkGradients, seq } from './helpers/gradcheck.js';

const w = (shape: number[], seed: number) => T.tensor(seq(shape.reduce((a, b) => a * b, 1), seed), shape);
/** A random weighted sum so every output element matters. */
const wsum = (y: T.Tensor, seed = 99) => T.sum(T.mul(y, w([...y.shape], seed)));

/** A weighted sum of the scan's y and hLast with every optional input given (u, delta, A, B, C, D, z, deltaBias, h0). */
const scanLoss = (u: T.Tensor, delta: T.Tensor, A: T.Tensor, Bm: T.Tensor, Cm: T.Tensor, D: T.Tensor, z: T.Tensor, bias: T.Tensor, h0: T.Tensor) => {
  const { y, hLast } = T.selectiveScan({ u, delta, A, B: Bm, C: Cm, D, z, deltaBias: bias, h0 });
  return T.add(wsum(y), wsum(hLast, 7));
};
/** The scan's inputs in scanLoss's order, for (B, L, E, N) = (1, 4, 3, 2), from a value maker and a first seed. */
function scanInputs<V>(make: (shape: number[], seed: number, lo?: number, hi?: number) => V, seed: number): V[] {
  const [B, L, E, N] = [1, 4, 3, 2];
  return [
    make([B, L, E], seed), make([B, L, E], seed + 1), make([E, N], seed + 2, -1.5, -0.2), make([B, L, N], seed + 3),
    make([B, L, N], seed + 4), make([E], seed + 5), make([B, L, E], seed + 6), make([E], seed + 7), make([B, E, N], seed + 8),
  ];
}

describe('gradients of ordinary ops match finite differences', () => {
  const v = (shape: number[], seed: number, lo = -1, hi = 1) => ({ data: seq(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape });

  test.each([
    ['neg', T.neg], ['exp', T.exp], ['sigmoid', T.sigmoid], ['silu', T.silu], ['softplus', T.softplus],
    ['tanh', T.tanh], ['gelu', T.gelu], ['square', T.square],
  ] as const)('%s', (_, fn) => checkGradients((x) => wsum(fn(x)), [v([2, 3], 3)]));

  test.each([
    ['log', T.log], ['sqrt', T.sqrt], ['rsqrt', T.rsqrt], ['reciprocal', T.reciprocal],
  ] as const)('%s on positive inputs', (_, fn) => checkGradients((x) => wsum(fn(x)), [v([5], 4, 0.5, 2)]));

  test.each([
    ['add', T.add], ['sub', T.sub], ['mul', T.mul], ['div', T.div], ['maximum', T.maximum], ['minimum', T.minimum],
  ] as const)('%s with broadcasting', (name, fn) =>
    checkGradients((a, b) => wsum(fn(a, b)), [v([2, 3, 4], 5, 0.5, 2), v(name === 'div' ? [3, 1] : [3, 1], 6, 0.5, 2)]),
  );

  test('pow', () => checkGradients((a, b) => wsum(T.pow(a, b)), [v([4], 7, 0.5, 2), v([4], 8)]));
  test('affine, cast round trip', () => checkGradients((x) => wsum(T.cast(T.affine(x, 3, 1), 'f32')), [v([3], 9)]));

  test('sum / mean / max over axes', () => {
    checkGradients((x) => wsum(T.sum(x, 1)), [v([2, 3, 4], 10)]);
    checkGradients((x) => wsum(T.sum(x, [0, 2], true)), [v([2, 3, 4], 11)]);
    checkGradients((x) => wsum(T.mean(x, -1)), [v([2, 3], 12)]);
    checkGradients((x) => wsum(T.max(x, 1)), [v([3, 5], 13)]);
  });

  test.each([
    [false, false], [true, false], [false, true], [true, true],
  ])('matmul transA=%s transB=%s, batched with broadcast', (transA, transB) => {
    const a = transA ? [2, 3, 4] : [2, 4, 3];
    const b = transB ? [5, 3] : [3, 5];
    checkGradients((x, y) => wsum(T.matmul(x, y, { transA, transB })), [v(a, 14), v(b, 15)]);
  });

  test('slice, concat, transpose, reshape, split', () => {
    checkGradients((x) => wsum(T.slice(x, [0, 1, 1], [2, 2, -1])), [v([2, 3, 4], 16)]);
    checkGradients((x, y) => wsum(T.concat([x, y], 1)), [v([2, 3], 17), v([2, 2], 18)]);
    checkGradients((x) => wsum(T.transpose(x, [2, 0, 1])), [v([2, 3, 4], 19)]);
    checkGradients((x) => wsum(T.reshape(T.split(x, [1, 3], -1)[1], [-1])), [v([2, 4], 20)]);
  });

  test('softmax', () => checkGradients((x) => wsum(T.softmax(x)), [v([3, 5], 21)]));
});

describe('gradients of fused ops through the engine match finite differences', () => {
  const v = (shape: number[], seed: number, lo = -1, hi = 1) => ({ data: seq(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape });

  test('rmsNorm and layerNorm', () => {
    checkGradients((x, g) => wsum(T.rmsNorm(x, g, 1e-5)), [v([3, 4], 30), v([4], 31, 0.5, 1.5)]);
    checkGradients((x, g, b) => wsum(T.layerNorm(x, g, b, 1e-5)), [v([3, 4], 32), v([4], 33, 0.5, 1.5), v([4], 34)]);
  });

  test('embedding', () => {
    const ids = T.tensor([2, 0, 2, 1], [2, 2], 'i32');
    checkGradients((table) => wsum(T.embedding(table, ids)), [v([3, 4], 35)]);
  });

  test('causalConv1d with bias, initial state and SiLU', () => {
    checkGradients(
      (x, wt, b, s) => wsum(T.causalConv1d(x, wt, { bias: b, initialState: s, silu: true })),
      [v([2, 5, 3], 36), v([3, 4], 37), v([3], 38), v([2, 3, 3], 39)],
    );
  });

  test('selectiveScan with every input', () => {
    checkGradients((u, delta, A, Bm, Cm, D, z, bias, h0) => scanLoss(u, delta, A, Bm, Cm, D, z, bias, h0), scanInputs(v, 40));
  });

  test('crossEntropy and linearCrossEntropy (with an ignored row)', () => {
    const targets = T.tensor([1, -100, 3], [3], 'i32');
    checkGradients((logits) => T.crossEntropy(logits, targets, { chunkSize: 2 }), [v([3, 5], 50, -2, 2)]);
    checkGradients((h, wt) => T.linearCrossEntropy(h, wt, targets, { chunkSize: 2 }), [v([3, 4], 51), v([5, 4], 52)]);
  });
});

describe('fused gradients with frozen parameters (weightGrad false) give the other inputs the full gradient', () => {
  const t = (shape: number[], seed: number, lo = -1, hi = 1) => T.tensor(seq(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape);
  /** The gradients of the inputs at `trainable`, taken alone (the rest frozen), equal those taken with every input. */
  const expectSameGradients = (f: (...xs: T.Tensor[]) => T.Tensor, inputs: T.Tensor[], trainable: number[]) => {
    const all = T.grad(() => f(...inputs), inputs);
    const some = T.grad(() => f(...inputs), trainable.map((i) => inputs[i]));
    trainable.forEach((i, k) => expect(Array.from(some[k].dataSync()), `input ${i}`).toEqual(Array.from(all[i].dataSync())));
  };

  test('rmsNorm and layerNorm: x', () => {
    expectSameGradients((x, g) => wsum(T.rmsNorm(x, g, 1e-5)), [t([3, 4], 60), t([4], 61, 0.5, 1.5)], [0]);
    expectSameGradients((x, g, b) => wsum(T.layerNorm(x, g, b, 1e-5)), [t([3, 4], 62), t([4], 63, 0.5, 1.5), t([4], 64)], [0]);
  });

  test('causalConv1d: x and the initial state, weight and bias frozen', () => {
    expectSameGradients(
      (x, wt, b, s) => wsum(T.causalConv1d(x, wt, { bias: b, initialState: s, silu: true })),
      [t([2, 5, 3], 65), t([3, 4], 66), t([3], 67), t([2, 3, 3], 68)],
      [0, 3],
    );
  });

  test('selectiveScan: all but A, D and deltaBias', () => {
    expectSameGradients((...xs) => scanLoss(...(xs as Parameters<typeof scanLoss>)), scanInputs(t, 70), [0, 1, 3, 4, 6, 8]);
  });
});
