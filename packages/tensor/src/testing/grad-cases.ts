import type { DType } from '../dtype.js';
import { causalConv1d, crossEntropy, embedding, layerNorm, linearCrossEntropy, rmsNorm, selectiveScan } from '../ops/fused.js';
import * as M from '../ops/math.js';
import type { Tensor } from '../tensor.js';
import type { Gen } from './gen.js';
import type { FloatDType } from './kernel-cases.js';

/**
 * A scalar function of differentiable inputs `xs` and constant inputs `consts`, differentiated with `grad()` on each
 * backend. All tensors are created on cpu and copied to the backend under test.
 */
export interface GradCase {
  label: string;
  xs: Tensor[];
  consts: Tensor[];
  f: (xs: Tensor[], consts: Tensor[]) => Tensor;
}

/** Σ y ⊙ w with a random w, so every output element matters to the gradient. */
const wsum = (y: Tensor, w: Tensor): Tensor => M.sum(M.mul(y, w));

function unary(name: string, op: (x: Tensor) => Tensor, lo: number, hi: number): (dtype: FloatDType, g: Gen) => GradCase {
  return (dtype, g) => ({ label: name, xs: [g.uniform([3, 5], dtype, lo, hi)], consts: [g.normal([3, 5], dtype)], f: ([x], [w]) => wsum(op(x), w) });
}

function binary(name: string, op: (a: Tensor, b: Tensor) => Tensor, positive: boolean): (dtype: FloatDType, g: Gen) => GradCase {
  return (dtype, g) => {
    const make = (s: number[]) => (positive ? g.uniform(s, dtype, 0.5, 2) : g.normal(s, dtype));
    return { label: `${name} broadcast`, xs: [make([2, 3, 5]), make([3, 1])], consts: [g.normal([2, 3, 5], dtype)], f: ([a, b], [w]) => wsum(op(a, b), w) };
  };
}

function matmulGrad(transA: boolean, transB: boolean): (dtype: FloatDType, g: Gen) => GradCase {
  return (dtype, g) => ({
    label: `matmul transA=${transA} transB=${transB}`,
    xs: [g.normal(transA ? [2, 7, 5] : [2, 5, 7], dtype), g.normal(transB ? [3, 7] : [7, 3], dtype)],
    consts: [g.normal([2, 5, 3], dtype)],
    f: ([a, b], [w]) => wsum(M.matmul(a, b, { transA, transB }), w),
  });
}

export const GRAD_CASES: ((dtype: FloatDType, g: Gen) => GradCase)[] = [
  unary('neg', M.neg, -2, 2),
  unary('exp', M.exp, -2, 2),
  unary('log', M.log, 0.3, 3),
  unary('sqrt', M.sqrt, 0.3, 3),
  unary('rsqrt', M.rsqrt, 0.3, 3),
  unary('abs', M.abs, -2, 2),
  unary('square', M.square, -2, 2),
  unary('reciprocal', M.reciprocal, 0.4, 3),
  unary('sigmoid', M.sigmoid, -5, 5),
  unary('silu', M.silu, -5, 5),
  unary('softplus', M.softplus, -5, 5),
  unary('tanh', M.tanh, -3, 3),
  unary('gelu', M.gelu, -3, 3),
  unary('relu', M.relu, -2, 2),
  unary('affine', (x) => M.affine(x, -1.5, 0.25), -2, 2),
  unary('softmax', M.softmax, -3, 3),
  binary('add', M.add, false),
  binary('sub', M.sub, false),
  binary('mul', M.mul, false),
  binary('div', M.div, true),
  binary('maximum', M.maximum, false),
  binary('minimum', M.minimum, false),
  binary('pow', M.pow, true),
  matmulGrad(false, false),
  matmulGrad(true, false),
  matmulGrad(false, true),
  matmulGrad(true, true),
  (dtype, g) => ({
    label: 'sum, mean and max over axes',
    xs: [g.normal([3, 5, 7], dtype)],
    consts: [g.normal([3, 7], dtype), g.normal([5], dtype)],
    f: ([x], [w1, w2]) => M.add(M.add(wsum(M.sum(x, 1), w1), wsum(M.mean(x, [0, 2]), w2)), M.sum(M.max(x, -1))),
  }),
  (dtype, g) => ({
    label: 'slice, concat, transpose, reshape, cast',
    xs: [g.normal([3, 5, 7], dtype), g.normal([3, 2, 7], dtype)],
    consts: [g.normal([7, 3, 4], 'f32')],
    f: ([a, b], [w]) => {
      const joined = M.concat([M.slice(a, [0, 1, 0], [3, 2, 7]), b], 1);
      return wsum(M.cast(M.transpose(M.reshape(joined, [3, 4, 7]), [2, 0, 1]), 'f32'), w);
    },
  }),
  (dtype, g) => ({
    label: 'split (one part unused)',
    xs: [g.normal([3, 9], dtype)],
    consts: [g.normal([3, 2], dtype), g.normal([3, 4], dtype)],
    f: ([x], [w1, w3]) => {
      const [p1, , p3] = M.split(x, [2, 3, 4], 1);
      return M.add(wsum(p1, w1), wsum(p3, w3));
    },
  }),
  (dtype, g) => ({
    label: 'rmsNorm',
    xs: [g.normal([2, 3, 7], dtype), g.uniform([7], dtype, 0.5, 1.5)],
    consts: [g.normal([2, 3, 7], dtype)],
    f: ([x, w], [c]) => wsum(rmsNorm(x, w, 1e-5), c),
  }),
  (dtype, g) => ({
    label: 'layerNorm',
    xs: [g.normal([3, 7], dtype), g.uniform([7], dtype, 0.5, 1.5), g.normal([7], dtype)],
    consts: [g.normal([3, 7], dtype)],
    f: ([x, w, b], [c]) => wsum(layerNorm(x, w, b, 1e-5), c),
  }),
  (dtype, g) => ({
    label: 'embedding',
    xs: [g.normal([6, 5], dtype)],
    consts: [g.ints([3, 3], 0, 6), g.normal([3, 3, 5], dtype)],
    f: ([table], [ids, c]) => wsum(embedding(table, ids), c),
  }),
  (dtype, g) => ({
    label: 'causalConv1d bias state silu',
    xs: [g.normal([2, 5, 3], dtype), g.normal([3, 4], dtype, 0.5), g.normal([3], dtype), g.normal([2, 3, 3], dtype)],
    consts: [g.normal([2, 5, 3], dtype)],
    f: ([x, w, b, s], [c]) => wsum(causalConv1d(x, w, { bias: b, initialState: s, silu: true }), c),
  }),
  (dtype, g) => {
    const [Bt, L, E, N] = [2, 5, 3, 2];
    return {
      label: 'selectiveScan y and hLast',
      xs: [
        g.normal([Bt, L, E], dtype), g.uniform([Bt, L, E], dtype, -2, 1), g.uniform([E, N], 'f32', -2, -0.1),
        g.normal([Bt, L, N], dtype), g.normal([Bt, L, N], dtype), g.normal([E], 'f32'), g.normal([Bt, L, E], dtype),
        g.uniform([E], 'f32', -1, 0.5), g.normal([Bt, E, N], 'f32'),
      ],
      consts: [g.normal([Bt, L, E], dtype), g.normal([Bt, E, N], 'f32')],
      f: ([u, delta, A, B, C, D, z, deltaBias, h0], [c1, c2]) => {
        const { y, hLast } = selectiveScan({ u, delta, A, B, C, D, z, deltaBias, h0 });
        return M.add(M.cast(wsum(y, c1), 'f32'), wsum(hLast, c2));
      },
    };
  },
  (dtype, g) => ({
    label: 'crossEntropy chunked with ignored rows',
    xs: [g.normal([7, 11], dtype, 2)],
    consts: [g.targets(7, 11, -100, 3)],
    f: ([logits], [targets]) => crossEntropy(logits, targets, { chunkSize: 4 }),
  }),
  (dtype, g) => ({
    label: 'linearCrossEntropy chunked',
    xs: [g.normal([5, 7], dtype), g.normal([13, 7], dtype, 0.5)],
    consts: [g.targets(5, 13, -100, 4)],
    f: ([h, w], [targets]) => linearCrossEntropy(h, w, targets, { chunkSize: 6 }),
  }),
];

export type { DType };
