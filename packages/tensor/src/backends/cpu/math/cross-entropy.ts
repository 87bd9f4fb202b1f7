/**
 * Per-row cross-entropy over a vocabulary, without reduction:
 *
 *   loss[r] = lse[r] − logits[r, target[r]],   lse[r] = log Σ_v exp(logits[r, v])     (0 where target = ignoreIndex)
 *   dlogits[r, v] = (softmax[r, v] − [v = target[r]]) · dloss[r]
 *
 * The chunked versions compute lse online, one vocabulary chunk at a time, with a running max and a sum rescaled
 * whenever the max grows; the linear versions also compute the logits (hidden · weightᵀ) one chunk at a time, so a
 * full (rows, vocab) logits matrix never exists.
 */
import type { FArray } from './common.js';

export interface CrossEntropyForwardArgs {
  rows: number;
  vocab: number;
  /** (rows, vocab) */
  logits: FArray;
  /** (rows) */
  targets: Int32Array;
  ignoreIndex: number;
  chunkSize: number;
  /** (rows) per-row loss, 0 for ignored rows. */
  loss: FArray;
  /** (rows) log-sum-exp of each row, saved for backward (written for ignored rows too). */
  lse: FArray;
}

export interface CrossEntropyBackwardArgs {
  rows: number;
  vocab: number;
  logits: FArray;
  targets: Int32Array;
  ignoreIndex: number;
  /** (rows) from the forward. */
  lse: FArray;
  /** (rows) */
  dloss: FArray;
  /** (rows, vocab), accumulated (+=). */
  dlogits: FArray;
}

export interface CrossEntropyPlainArgs {
  rows: number;
  vocab: number;
  logits: FArray;
  targets: Int32Array;
  ignoreIndex: number;
  loss: FArray;
  lse?: FArray | null;
}

interface LinearCrossEntropyInputs {
  rows: number;
  dim: number;
  vocab: number;
  /** (rows, dim) */
  hidden: FArray;
  /** (vocab, dim): logits = hidden · weightᵀ */
  weight: FArray;
  targets: Int32Array;
  ignoreIndex: number;
  chunkSize: number;
}

export interface LinearCrossEntropyForwardArgs extends LinearCrossEntropyInputs {
  loss: FArray;
  lse: FArray;
}

export interface LinearCrossEntropyBackwardArgs extends LinearCrossEntropyInputs {
  /** (rows) from the forward. */
  lse: FArray;
  dloss: FArray;
  /** (rows, dim), accumulated (+=). */
  dhidden: FArray;
  /** (vocab, dim), accumulated (+=); null when the weight's gradient is not wanted. */
  dweight: FArray | null;
}

function checkSizes(where: string, sizes: Record<string, number>, arrays: Record<string, [ArrayLike<number>, number]>): void {
  for (const [name, value] of Object.entries(sizes)) {
    if (!Number.isInteger(value) || value < 0) throw new Error(`${where}: ${name} must be a non-negative integer, got ${value}.`);
  }
  for (const [name, [array, expected]] of Object.entries(arrays)) {
    if (array.length !== expected) {
      throw new Error(`${where}: ${name} has ${array.length} elements, expected ${expected}.`);
    }
  }
}

function checkChunkSize(where: string, chunkSize: number): void {
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new Error(`${where}: chunkSize must be a positive integer, got ${chunkSize}.`);
  }
}

function checkTargets(where: string, vocab: number, targets: Int32Array, ignoreIndex: number): void {
  for (let r = 0; r < targets.length; r++) {
    const t = targets[r];
    if (t !== ignoreIndex && (t < 0 || t >= vocab)) {
      throw new Error(
        `${where}: targets[${r}] = ${t} is outside the vocabulary [0, ${vocab}) and is not ignoreIndex (${ignoreIndex}).`,
      );
    }
  }
}

/** Running log-sum-exp state: lse = max + log(sum), with sum taken relative to max. */
interface RunningLse {
  max: number;
  sum: number;
}

function absorbChunk(acc: RunningLse, values: ArrayLike<number>, from: number, to: number): void {
  let chunkMax = -Infinity;
  for (let i = from; i < to; i++) chunkMax = Math.max(chunkMax, values[i]);
  const newMax = Math.max(acc.max, chunkMax);
  if (newMax === -Infinity) return; // nothing but −∞ so far
  let sum = acc.sum * Math.exp(acc.max - newMax);
  for (let i = from; i < to; i++) sum += Math.exp(values[i] - newMax);
  acc.max = newMax;
  acc.sum = sum;
}

function finalLse(acc: RunningLse): number {
  return acc.max + Math.log(acc.sum);
}

export function crossEntropyForward(args: CrossEntropyForwardArgs): void {
  const where = 'crossEntropyForward';
  const { rows, vocab, logits, targets, ignoreIndex, chunkSize, loss, lse } = args;
  checkSizes(where, { rows, vocab }, {
    logits: [logits, rows * vocab],
    targets: [targets, rows],
    loss: [loss, rows],
    lse: [lse, rows],
  });
  checkChunkSize(where, chunkSize);
  checkTargets(where, vocab, targets, ignoreIndex);

  for (let r = 0; r < rows; r++) {
    const acc: RunningLse = { max: -Infinity, sum: 0 };
    for (let c0 = 0; c0 < vocab; c0 += chunkSize) {
      absorbChunk(acc, logits, r * vocab + c0, r * vocab + Math.min(vocab, c0 + chunkSize));
    }
    lse[r] = finalLse(acc);
    const t = targets[r];
    loss[r] = t === ignoreIndex ? 0 : lse[r] - logits[r * vocab + t];
  }
}

export function crossEntropyBackward(args: CrossEntropyBackwardArgs): void {
  const where = 'crossEntropyBackward';
  const { rows, vocab, logits, targets, ignoreIndex, lse, dloss, dlogits } = args;
  checkSizes(where, { rows, vocab }, {
    logits: [logits, rows * vocab],
    targets: [targets, rows],
    lse: [lse, rows],
    dloss: [dloss, rows],
    dlogits: [dlogits, rows * vocab],
  });
  checkTargets(where, vocab, targets, ignoreIndex);

  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t === ignoreIndex) continue;
    for (let v = 0; v < vocab; v++) {
      const softmax = Math.exp(logits[r * vocab + v] - lse[r]);
      dlogits[r * vocab + v] += (softmax - (v === t ? 1 : 0)) * dloss[r];
    }
  }
}

/** The obviously-correct version: a full, max-shifted log-softmax per row. */
export function crossEntropyPlain(args: CrossEntropyPlainArgs): void {
  const where = 'crossEntropyPlain';
  const { rows, vocab, logits, targets, ignoreIndex, loss, lse } = args;
  checkSizes(where, { rows, vocab }, { logits: [logits, rows * vocab], targets: [targets, rows], loss: [loss, rows] });
  if (lse) checkSizes(where, {}, { lse: [lse, rows] });
  checkTargets(where, vocab, targets, ignoreIndex);

  const logSoftmax = new Float64Array(vocab);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) max = Math.max(max, logits[r * vocab + v]);
    let sumExp = 0;
    for (let v = 0; v < vocab; v++) sumExp += Math.exp(logits[r * vocab + v] - max);
    const rowLse = max + Math.log(sumExp);
    for (let v = 0; v < vocab; v++) logSoftmax[v] = logits[r * vocab + v] - rowLse;
    if (lse) lse[r] = rowLse;
    const t = targets[r];
    loss[r] = t === ignoreIndex ? 0 : -logSoftmax[t];
  }
}

/** logits[r, c0 + j] = hidden[r] · weight[c0 + j] for the chunk [c0, c1), into chunkLogits (rows, c1 − c0). */
function chunkLogitsOf(
  hidden: FArray,
  weight: FArray,
  rows: number,
  dim: number,
  c0: number,
  c1: number,
  chunkLogits: Float64Array,
): void {
  const width = c1 - c0;
  for (let r = 0; r < rows; r++) {
    for (let v = c0; v < c1; v++) {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += hidden[r * dim + d] * weight[v * dim + d];
      chunkLogits[r * width + (v - c0)] = dot;
    }
  }
}

export function linearCrossEntropyForward(args: LinearCrossEntropyForwardArgs): void {
  const where = 'linearCrossEntropyForward';
  const { rows, dim, vocab, hidden, weight, targets, ignoreIndex, chunkSize, loss, lse } = args;
  checkSizes(where, { rows, dim, vocab }, {
    hidden: [hidden, rows * dim],
    weight: [weight, vocab * dim],
    targets: [targets, rows],
    loss: [loss, rows],
    lse: [lse, rows],
  });
  checkChunkSize(where, chunkSize);
  checkTargets(where, vocab, targets, ignoreIndex);

  const acc: RunningLse[] = Array.from({ length: rows }, () => ({ max: -Infinity, sum: 0 }));
  const targetLogit = new Float64Array(rows);
  const chunkLogits = new Float64Array(rows * Math.min(chunkSize, vocab));

  for (let c0 = 0; c0 < vocab; c0 += chunkSize) {
    const c1 = Math.min(vocab, c0 + chunkSize);
    const width = c1 - c0;
    chunkLogitsOf(hidden, weight, rows, dim, c0, c1, chunkLogits);
    for (let r = 0; r < rows; r++) {
      absorbChunk(acc[r], chunkLogits, r * width, (r + 1) * width);
      const t = targets[r];
      if (t >= c0 && t < c1) targetLogit[r] = chunkLogits[r * width + (t - c0)];
    }
  }

  for (let r = 0; r < rows; r++) {
    lse[r] = finalLse(acc[r]);
    loss[r] = targets[r] === ignoreIndex ? 0 : lse[r] - targetLogit[r];
  }
}

export function linearCrossEntropyBackward(args: LinearCrossEntropyBackwardArgs): void {
  const where = 'linearCrossEntropyBackward';
  const { rows, dim, vocab, hidden, weight, targets, ignoreIndex, chunkSize, lse, dloss, dhidden, dweight } = args;
  checkSizes(where, { rows, dim, vocab }, {
    hidden: [hidden, rows * dim],
    weight: [weight, vocab * dim],
    targets: [targets, rows],
    lse: [lse, rows],
    dloss: [dloss, rows],
    dhidden: [dhidden, rows * dim],
    ...(dweight ? { dweight: [dweight, vocab * dim] as [FArray, number] } : {}),
  });
  checkChunkSize(where, chunkSize);
  checkTargets(where, vocab, targets, ignoreIndex);

  const chunkLogits = new Float64Array(rows * Math.min(chunkSize, vocab));
  for (let c0 = 0; c0 < vocab; c0 += chunkSize) {
    const c1 = Math.min(vocab, c0 + chunkSize);
    const width = c1 - c0;
    chunkLogitsOf(hidden, weight, rows, dim, c0, c1, chunkLogits);
    for (let r = 0; r < rows; r++) {
      const t = targets[r];
      if (t === ignoreIndex) continue;
      for (let v = c0; v < c1; v++) {
        const softmax = Math.exp(chunkLogits[r * width + (v - c0)] - lse[r]);
        const dlogit = (softmax - (v === t ? 1 : 0)) * dloss[r];
        for (let d = 0; d < dim; d++) {
          dhidden[r * dim + d] += dlogit * weight[v * dim + d];
          if (dweight) dweight[v * dim + d] += dlogit * hidden[r * dim + d];
        }
      }
    }
  }
}
