/**
 * RMSNorm and LayerNorm over the last axis of a (rows, cols) matrix, statistics in double.
 *
 *   RMSNorm:   rstd = 1/sqrt(mean(x²) + eps),            y = x·rstd·weight
 *   LayerNorm: rstd = 1/sqrt(mean((x − μ)²) + eps),      y = (x − μ)·rstd·weight + bias   (biased variance)
 *
 * Backward, with x̂ the normalised row and ĝ = dy·weight:
 *   RMSNorm:   dx = rstd·(ĝ − x̂·mean(ĝ·x̂))
 *   LayerNorm: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))
 */
import type { FArray } from './common.js';
import { checkLength } from './common.js';

export interface RmsNormForwardArgs {
  rows: number;
  cols: number;
  x: FArray;
  weight: FArray;
  eps: number;
  y: FArray;
  /** (rows): 1/sqrt(mean(x²) + eps), written when given. */
  rstd?: FArray | null;
}

export interface RmsNormBackwardArgs {
  rows: number;
  cols: number;
  x: FArray;
  weight: FArray;
  eps: number;
  dy: FArray;
  /** Accumulated (+=). */
  dx: FArray;
  /** Accumulated (+=). */
  dweight: FArray;
}

export interface LayerNormForwardArgs {
  rows: number;
  cols: number;
  x: FArray;
  weight: FArray;
  bias: FArray;
  eps: number;
  y: FArray;
  /** (rows), written when given. */
  mean?: FArray | null;
  /** (rows): 1/sqrt(var + eps), written when given. */
  rstd?: FArray | null;
}

export interface LayerNormBackwardArgs {
  rows: number;
  cols: number;
  x: FArray;
  weight: FArray;
  bias: FArray;
  eps: number;
  dy: FArray;
  /** Accumulated (+=). */
  dx: FArray;
  /** Accumulated (+=). */
  dweight: FArray;
  /** Accumulated (+=). */
  dbias: FArray;
}

function checkMatrix(where: string, rows: number, cols: number, arrays: Record<string, FArray | null | undefined>): void {
  if (!Number.isInteger(rows) || rows < 0) throw new Error(`${where}: rows must be a non-negative integer, got ${rows}.`);
  if (!Number.isInteger(cols) || cols < 1) throw new Error(`${where}: cols must be a positive integer, got ${cols}.`);
  for (const [name, array] of Object.entries(arrays)) {
    const onePerCol = name === 'weight' || name === 'bias' || name === 'dweight' || name === 'dbias';
    const onePerRow = name === 'rstd' || name === 'mean';
    if (onePerCol) checkLength(where, name, array, cols, `(cols) = (${cols})`);
    else if (onePerRow) checkLength(where, name, array, rows, `(rows) = (${rows})`);
    else checkLength(where, name, array, rows * cols, `(rows, cols) = (${rows}, ${cols})`);
  }
}

function rowRmsRstd(x: FArray, offset: number, cols: number, eps: number): number {
  let sumSq = 0;
  for (let c = 0; c < cols; c++) sumSq += x[offset + c] * x[offset + c];
  return 1 / Math.sqrt(sumSq / cols + eps);
}

function rowMeanRstd(x: FArray, offset: number, cols: number, eps: number): { mean: number; rstd: number } {
  let sum = 0;
  for (let c = 0; c < cols; c++) sum += x[offset + c];
  const mean = sum / cols;
  let sumSq = 0;
  for (let c = 0; c < cols; c++) sumSq += (x[offset + c] - mean) ** 2;
  return { mean, rstd: 1 / Math.sqrt(sumSq / cols + eps) };
}

export function rmsNormForward(args: RmsNormForwardArgs): void {
  const { rows, cols, x, weight, eps, y, rstd } = args;
  checkMatrix('rmsNormForward', rows, cols, { x, weight, y, rstd });
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const s = rowRmsRstd(x, o, cols, eps);
    if (rstd) rstd[r] = s;
    for (let c = 0; c < cols; c++) y[o + c] = x[o + c] * s * weight[c];
  }
}

export function rmsNormBackward(args: RmsNormBackwardArgs): void {
  const { rows, cols, x, weight, eps, dy, dx, dweight } = args;
  checkMatrix('rmsNormBackward', rows, cols, { x, weight, dy, dx, dweight });
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const s = rowRmsRstd(x, o, cols, eps);
    let meanGX = 0; // mean(ĝ·x̂)
    for (let c = 0; c < cols; c++) {
      const xHat = x[o + c] * s;
      dweight[c] += dy[o + c] * xHat;
      meanGX += dy[o + c] * weight[c] * xHat;
    }
    meanGX /= cols;
    for (let c = 0; c < cols; c++) {
      const xHat = x[o + c] * s;
      dx[o + c] += s * (dy[o + c] * weight[c] - xHat * meanGX);
    }
  }
}

export function layerNormForward(args: LayerNormForwardArgs): void {
  const { rows, cols, x, weight, bias, eps, y, mean, rstd } = args;
  checkMatrix('layerNormForward', rows, cols, { x, weight, bias, y, mean, rstd });
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const stats = rowMeanRstd(x, o, cols, eps);
    if (mean) mean[r] = stats.mean;
    if (rstd) rstd[r] = stats.rstd;
    for (let c = 0; c < cols; c++) y[o + c] = (x[o + c] - stats.mean) * stats.rstd * weight[c] + bias[c];
  }
}

export function layerNormBackward(args: LayerNormBackwardArgs): void {
  const { rows, cols, x, weight, bias, eps, dy, dx, dweight, dbias } = args;
  checkMatrix('layerNormBackward', rows, cols, { x, weight, bias, dy, dx, dweight, dbias });
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const { mean, rstd } = rowMeanRstd(x, o, cols, eps);
    let meanG = 0; // mean(ĝ)
    let meanGX = 0; // mean(ĝ·x̂)
    for (let c = 0; c < cols; c++) {
      const xHat = (x[o + c] - mean) * rstd;
      const g = dy[o + c] * weight[c];
      dweight[c] += dy[o + c] * xHat;
      dbias[c] += dy[o + c];
      meanG += g;
      meanGX += g * xHat;
    }
    meanG /= cols;
    meanGX /= cols;
    for (let c = 0; c < cols; c++) {
      const xHat = (x[o + c] - mean) * rstd;
      dx[o + c] += rstd * (dy[o + c] * weight[c] - meanG - xHat * meanGX);
    }
  }
}
