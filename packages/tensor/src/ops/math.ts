import { engine } from '../engine.js';
import { broadcastShapes, formatShape, normAxis, shapesEqual, sizeOf, type Shape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import type { DType } from '../dtype.js';
import { SAVES_INPUTS, SAVES_NOTHING, SAVES_OUTPUT, assertSameDType, defineGrad, run, runMulti } from './core.js';

// ---- elementwise ----

function binary(kernel: string, a: Tensor, b: Tensor): Tensor {
  assertSameDType(kernel, a, b);
  broadcastShapes(a.shape, b.shape, kernel);
  return run(kernel, [a, b]);
}

export const add = (a: Tensor, b: Tensor): Tensor => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor): Tensor => binary('div', a, b);
export const maximum = (a: Tensor, b: Tensor): Tensor => binary('maximum', a, b);
export const minimum = (a: Tensor, b: Tensor): Tensor => binary('minimum', a, b);
export const pow = (a: Tensor, b: Tensor): Tensor => binary('pow', a, b);
export const greater = (a: Tensor, b: Tensor): Tensor => binary('greater', a, b);

export const neg = (x: Tensor): Tensor => run('neg', [x]);
export const exp = (x: Tensor): Tensor => run('exp', [x]);
export const log = (x: Tensor): Tensor => run('log', [x]);
export const sqrt = (x: Tensor): Tensor => run('sqrt', [x]);
export const rsqrt = (x: Tensor): Tensor => run('rsqrt', [x]);
export const abs = (x: Tensor): Tensor => run('abs', [x]);
export const square = (x: Tensor): Tensor => run('square', [x]);
export const reciprocal = (x: Tensor): Tensor => run('reciprocal', [x]);
export const sigmoid = (x: Tensor): Tensor => run('sigmoid', [x]);
export const silu = (x: Tensor): Tensor => run('silu', [x]);
export const softplus = (x: Tensor): Tensor => run('softplus', [x]);
export const tanh = (x: Tensor): Tensor => run('tanh', [x]);
export const gelu = (x: Tensor): Tensor => run('gelu', [x]);
export const relu = (x: Tensor): Tensor => run('relu', [x]);
export const sign = (x: Tensor): Tensor => run('sign', [x]);

/** x·scale + offset with plain numbers. */
export function affine(x: Tensor, scale: number, offset = 0): Tensor {
  return run('affine', [x], { scale, offset });
}

export const mulScalar = (x: Tensor, s: number): Tensor => affine(x, s, 0);
export const addScalar = (x: Tensor, s: number): Tensor => affine(x, 1, s);

export function cast(x: Tensor, dtype: DType): Tensor {
  return x.dtype === dtype ? reshape(x, x.shape) : run('cast', [x], { dtype });
}

// ---- shape ----

export function reshape(x: Tensor, shape: Shape): Tensor {
  const inferred = inferShape(shape, x.size, x.shape);
  return engine().view(x, inferred);
}

function inferShape(shape: Shape, size: number, from: Shape): number[] {
  const out = [...shape];
  const unknown = out.indexOf(-1);
  if (unknown >= 0) out[unknown] = size / sizeOf(out.filter((d) => d !== -1));
  if (sizeOf(out) !== size || !out.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`reshape: cannot reshape ${formatShape(from)} (${size} elements) to ${formatShape(shape)}.`);
  }
  return out;
}

export function slice(x: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
  if (begin.length !== x.rank || size.length !== x.rank) {
    throw new Error(`slice: begin [${begin}] and size [${size}] must have one entry per axis of ${formatShape(x.shape)}.`);
  }
  const sz = size.map((s, i) => (s === -1 ? x.shape[i] - begin[i] : s));
  sz.forEach((s, i) => {
    if (begin[i] < 0 || s < 0 || begin[i] + s > x.shape[i]) {
      throw new Error(`slice: begin [${begin}] size [${size}] is out of range for ${formatShape(x.shape)} at axis ${i}.`);
    }
  });
  return run('slice', [x], { begin: [...begin], size: sz });
}

/** Slices `length` entries starting at `start` along one axis. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = normAxis(axis, x.rank, 'narrow');
  const begin = x.shape.map((_, i) => (i === a ? start : 0));
  const size = x.shape.map((d, i) => (i === a ? length : d));
  return slice(x, begin, size);
}

export function split(x: Tensor, sizes: readonly number[], axis = -1): Tensor[] {
  const a = normAxis(axis, x.rank, 'split');
  if (sizes.reduce((p, q) => p + q, 0) !== x.shape[a]) {
    throw new Error(`split: sizes [${sizes}] do not add up to axis ${a} of ${formatShape(x.shape)}.`);
  }
  if (sizes.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`split: sizes [${sizes}] must be non-negative integers.`);
  return runMulti('split', [x], { axis: a, sizes: [...sizes] });
}

/** Σ over every element of every tensor of x², as one f32 scalar (e.g. a global gradient norm²), in one kernel. */
export function sumSquares(xs: readonly Tensor[]): Tensor {
  for (const [i, x] of xs.entries()) {
    if (x.dtype === 'i32') throw new Error(`sumSquares: tensor ${i} is i32; give floating-point tensors.`);
  }
  return run('sumSquares', xs);
}

export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error('concat: needs at least one tensor.');
  const a = normAxis(axis, xs[0].rank, 'concat');
  for (const t of xs) {
    assertSameDType('concat', xs[0], t);
    if (t.rank !== xs[0].rank || t.shape.some((d, i) => i !== a && d !== xs[0].shape[i])) {
      throw new Error(`concat: shapes ${formatShape(xs[0].shape)} and ${formatShape(t.shape)} differ outside axis ${a}.`);
    }
  }
  return run('concat', xs, { axis: a });
}

export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const p = perm ?? x.shape.map((_, i) => x.rank - 1 - i);
  if (p.length !== x.rank || [...p].sort().some((v, i) => v !== i)) {
    throw new Error(`transpose: perm [${p}] is not a permutation of the axes of ${formatShape(x.shape)}.`);
  }
  return run('transpose', [x], { perm: [...p] });
}

// ---- reductions ----

function axesOf(x: Tensor, axis: number | readonly number[] | undefined, what: string): number[] {
  if (axis === undefined) return x.shape.map((_, i) => i);
  const list = typeof axis === 'number' ? [axis] : [...axis];
  return [...new Set(list.map((a) => normAxis(a, x.rank, what)))].sort((p, q) => p - q);
}

function reduce(kernel: string, x: Tensor, axis: number | readonly number[] | undefined, keepDims: boolean): Tensor {
  const axes = axesOf(x, axis, kernel);
  if (x.rank === 0 || axes.length === 0) return reshape(x, x.shape);
  const contiguous = axes.every((a, i) => i === 0 || a === axes[i - 1] + 1);
  if (contiguous) return run(kernel, [x], { axes, keepDims });
  // Non-contiguous axes: reduce one at a time (from the last, keeping dims), then drop them.
  let y = x;
  for (const a of [...axes].reverse()) y = run(kernel, [y], { axes: [a], keepDims: true });
  return keepDims ? y : reshape(y, x.shape.filter((_, i) => !axes.includes(i)));
}

export function sum(x: Tensor, axis?: number | readonly number[], keepDims = false): Tensor {
  return reduce('sum', x, axis, keepDims);
}

export function max(x: Tensor, axis?: number | readonly number[], keepDims = false): Tensor {
  return reduce('max', x, axis, keepDims);
}

export function mean(x: Tensor, axis?: number | readonly number[], keepDims = false): Tensor {
  const axes = axesOf(x, axis, 'mean');
  const count = axes.reduce((n, a) => n * x.shape[a], 1);
  return mulScalar(sum(x, axes, keepDims), 1 / count);
}

/** Index of the largest value along the last axis (i32). */
export function argmax(x: Tensor): Tensor {
  return run('argmax', [x]);
}

export function softmax(x: Tensor): Tensor {
  return run('softmax', [x]);
}

/** Sums `dy` over broadcast axes so it matches `shape` (the reverse of broadcasting). */
export function sumToShape(dy: Tensor, shape: Shape): Tensor {
  if (shapesEqual(dy.shape, shape)) return dy;
  const lead = dy.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < dy.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && dy.shape[i] !== 1)) axes.push(i);
  }
  return reshape(sum(dy, axes, true), shape);
}

// ---- matmul ----

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/** a (..., M, K) · b (..., K, N) with optional transposes of the last two axes; batch axes broadcast. */
export function matmul(a: Tensor, b: Tensor, { transA = false, transB = false }: MatmulOptions = {}): Tensor {
  assertSameDType('matmul', a, b);
  if (a.rank < 2 || b.rank < 2) {
    throw new Error(`matmul: inputs need at least 2 axes, got ${formatShape(a.shape)} and ${formatShape(b.shape)}.`);
  }
  const ka = transA ? a.shape.at(-2) : a.shape.at(-1);
  const kb = transB ? b.shape.at(-1) : b.shape.at(-2);
  if (ka !== kb) {
    throw new Error(
      `matmul: inner dimensions differ: ${formatShape(a.shape)}${transA ? 'ᵀ' : ''} · ${formatShape(b.shape)}${transB ? 'ᵀ' : ''} (${ka} vs ${kb}).`,
    );
  }
  broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'matmul');
  return run('matmul', [a, b], { transA, transB });
}

// ---- gradients ----

const g = (dy: Tensor | null): Tensor => dy!;

defineGrad('add', ([dy], { inputs: [a, b] }) => [sumToShape(g(dy), a.shape), sumToShape(g(dy), b.shape)], SAVES_NOTHING);
defineGrad('sub', ([dy], { inputs: [a, b] }) => [sumToShape(g(dy), a.shape), sumToShape(neg(g(dy)), b.shape)], SAVES_NOTHING);
defineGrad('mul', ([dy], { inputs: [a, b] }) => [sumToShape(mul(g(dy), b), a.shape), sumToShape(mul(g(dy), a), b.shape)], SAVES_INPUTS);
defineGrad('div', ([dy], { inputs: [a, b], outputs: [y] }) => [
  sumToShape(div(g(dy), b), a.shape),
  sumToShape(neg(div(mul(g(dy), y), b)), b.shape),
], { inputs: [1], outputs: 'all' });
defineGrad('maximum', ([dy], { inputs: [a, b] }) => {
  const mask = cast(greater(a, b), a.dtype);
  const inv = affine(mask, -1, 1);
  return [sumToShape(mul(g(dy), mask), a.shape), sumToShape(mul(g(dy), inv), b.shape)];
}, SAVES_INPUTS);
defineGrad('minimum', ([dy], { inputs: [a, b] }) => {
  const mask = cast(greater(b, a), a.dtype);
  const inv = affine(mask, -1, 1);
  return [sumToShape(mul(g(dy), mask), a.shape), sumToShape(mul(g(dy), inv), b.shape)];
}, SAVES_INPUTS);
defineGrad('pow', ([dy], { inputs: [a, b], outputs: [y] }) => [
  sumToShape(mul(g(dy), mul(b, div(y, a))), a.shape),
  sumToShape(mul(g(dy), mul(y, log(a))), b.shape),
]);
defineGrad('neg', ([dy]) => [neg(g(dy))], SAVES_NOTHING);
defineGrad('exp', ([dy], { outputs: [y] }) => [mul(g(dy), y)], SAVES_OUTPUT);
defineGrad('log', ([dy], { inputs: [x] }) => [div(g(dy), x)], SAVES_INPUTS);
defineGrad('sqrt', ([dy], { outputs: [y] }) => [div(mulScalar(g(dy), 0.5), y)], SAVES_OUTPUT);
defineGrad('rsqrt', ([dy], { outputs: [y] }) => [mul(g(dy), mulScalar(mul(y, mul(y, y)), -0.5))], SAVES_OUTPUT);
defineGrad('abs', ([dy], { inputs: [x] }) => [mul(g(dy), sign(x))], SAVES_INPUTS);
defineGrad('square', ([dy], { inputs: [x] }) => [mul(g(dy), mulScalar(x, 2))], SAVES_INPUTS);
defineGrad('reciprocal', ([dy], { outputs: [y] }) => [neg(mul(g(dy), square(y)))], SAVES_OUTPUT);
defineGrad('sigmoid', ([dy], { outputs: [y] }) => [mul(g(dy), mul(y, affine(y, -1, 1)))], SAVES_OUTPUT);
defineGrad('tanh', ([dy], { outputs: [y] }) => [mul(g(dy), affine(square(y), -1, 1))], SAVES_OUTPUT);
defineGrad('softplus', ([dy], { inputs: [x] }) => [mul(g(dy), sigmoid(x))], SAVES_INPUTS);
defineGrad('relu', ([dy], { inputs: [x] }) => [mul(g(dy), run('step', [x]))], SAVES_INPUTS);
defineGrad('silu', ([dy], { inputs: [x] }) => {
  // d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x)))
  const s = sigmoid(x);
  return [mul(g(dy), mul(s, affine(mul(x, affine(s, -1, 1)), 1, 1)))];
}, SAVES_INPUTS);
defineGrad('gelu', ([dy], { inputs: [x] }) => {
  // d/dx x·Φ(x) = Φ(x) + x·φ(x)
  const cdf = run('normalCdf', [x]);
  const pdf = mulScalar(exp(mulScalar(square(x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
  return [mul(g(dy), add(cdf, mul(x, pdf)))];
}, SAVES_INPUTS);
defineGrad('affine', ([dy], { attrs }) => [mulScalar(g(dy), attrs.scale as number)], SAVES_NOTHING);
defineGrad('cast', ([dy], { inputs: [x] }) => [cast(g(dy), x.dtype)], SAVES_NOTHING);
defineGrad('reshape', ([dy], { inputs: [x] }) => [reshape(g(dy), x.shape)], SAVES_NOTHING);
defineGrad('sum', ([dy], { inputs: [x], attrs }) => {
  const axes = attrs.axes as number[];
  const kept = reshape(g(dy), x.shape.map((d, i) => (axes.includes(i) ? 1 : d)));
  return [add(kept, full0(x))];
}, SAVES_NOTHING);
defineGrad('max', ([dy], { inputs: [x], outputs: [y], attrs }) => {
  const axes = attrs.axes as number[];
  const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const mask = cast(run('equal', [x, reshape(y, keptShape)]), x.dtype);
  const count = sum(mask, axes, true);
  return [mul(div(mask, count), reshape(g(dy), keptShape))];
});
// Only the gradients that are used: a frozen weight (LoRA's base layers) costs no weight-gradient GEMM.
defineGrad('matmul', ([dy], { inputs: [a, b], attrs, needsGrad: [needA, needB] }) => {
  const tA = Boolean(attrs.transA);
  const tB = Boolean(attrs.transB);
  const d = g(dy);
  const da = !needA ? null : tA ? matmul(b, d, { transA: tB, transB: true }) : matmul(d, b, { transB: !tB });
  const db = !needB ? null : tB ? matmul(d, a, { transA: true, transB: tA }) : matmul(a, d, { transA: !tA });
  return [da && sumToShape(da, a.shape), db && sumToShape(db, b.shape)];
}, ([needA, needB]) => ({ inputs: [...(needB ? [0] : []), ...(needA ? [1] : [])], outputs: [] })); // da reads b, db reads a
defineGrad('slice', ([dy], { inputs: [x], attrs }) => [run('padSlice', [g(dy)], { shape: x.shape, begin: attrs.begin })], SAVES_NOTHING);
defineGrad('sumSquares', ([dy], { inputs }) => inputs.map((x) => mul(x, cast(mulScalar(g(dy), 2), x.dtype))), SAVES_INPUTS);
// One concat of the parts' gradients (zeros for parts without one), not a padded copy per part added up.
defineGrad('split', (dys, { inputs: [x], attrs }) => {
  const axis = attrs.axis as number;
  const parts = (attrs.sizes as number[]).map((s, i) =>
    dys[i] ?? run('fill', [], { shape: x.shape.map((d, j) => (j === axis ? s : d)), dtype: x.dtype, value: 0 }),
  );
  return [concat(parts, axis)];
}, SAVES_NOTHING);
defineGrad('concat', ([dy], { inputs, attrs }) => {
  const axis = attrs.axis as number;
  return split(g(dy), inputs.map((t) => t.shape[axis]), axis);
}, SAVES_NOTHING);
defineGrad('transpose', ([dy], { attrs }) => {
  const perm = attrs.perm as number[];
  const inverse = perm.map((_, i) => perm.indexOf(i));
  return [transpose(g(dy), inverse)];
}, SAVES_NOTHING);
defineGrad('softmax', ([dy], { outputs: [y] }) => {
  // dx = y ⊙ (dy − Σ dy⊙y)
  const d = g(dy);
  return [mul(y, sub(d, sum(mul(d, y), -1, true)))];
}, SAVES_OUTPUT);

function full0(x: Tensor): Tensor {
  return run('fill', [], { shape: x.shape, dtype: x.dtype, value: 0 });
}
