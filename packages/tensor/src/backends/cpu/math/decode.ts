/**
 * The three fused kernels of Mamba's recurrent (decode) step. Inference only: there is no backward. Reference
 * oracle, in doubles; each replaces a chain of existing kernels (see ops/decode.ts).
 *
 *   residualRmsNorm:  sum = residual + update,   normed = sum / sqrt(mean(sum²) + eps) · weight
 *   convStep:         x = act(bias + Σ_{k<W−1} weight[k]·convState[k] + weight[W−1]·xz[e]),
 *                     state = [convState[1:], xz[e]]                  (the window shifted by one, newest last)
 *   ssmStep:          δ = dtWeight·dbc[0:R] + dtBias,  Δ = softplus(δ),  A = −exp(ALog)
 *                     h = exp(Δ·A) ⊙ state + Δ·B·x,  y = (C·h + D·x) · silu(z)
 *
 * Shapes: residual, update, sum, normed (rows, cols); weight (cols). xz (B, C) with x = columns [0, E) and
 * z = columns [E, 2E); convState, state (B, E, W−1); conv weight (E, W); x, y (B, E); dbc (B, R + 2N) = [δ, B, C];
 * dtWeight (E, R); dtBias, D, conv bias (E); ALog (E, N); ssm state, stateOut (B, E, N).
 */
import type { FArray } from './common.js';
import { checkDims, checkLength, silu, softplus } from './common.js';

export interface ResidualRmsNormArgs {
  rows: number;
  cols: number;
  residual: FArray;
  /** Absent: sum = residual. */
  update?: FArray | null;
  weight: FArray;
  eps: number;
  /**
   * The storage rounding of `sum` (to the residual's dtype). The norm is taken of the rounded sum, the value the
   * next layer reads back. Identity when absent.
   */
  roundSum?: ((v: number) => number) | null;
  sum: FArray;
  normed: FArray;
}

export function residualRmsNorm(args: ResidualRmsNormArgs): void {
  const where = 'residualRmsNorm';
  const { rows, cols, residual, update, weight, eps, roundSum, sum, normed } = args;
  checkDims(where, { rows, cols });
  const shape = `(rows, cols) = (${rows}, ${cols})`;
  checkLength(where, 'residual', residual, rows * cols, shape);
  checkLength(where, 'update', update, rows * cols, shape);
  checkLength(where, 'weight', weight, cols, `(cols) = (${cols})`);
  checkLength(where, 'sum', sum, rows * cols, shape);
  checkLength(where, 'normed', normed, rows * cols, shape);

  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let sumSq = 0;
    for (let c = 0; c < cols; c++) {
      const v = update ? residual[o + c] + update[o + c] : residual[o + c];
      const s = roundSum ? roundSum(v) : v;
      sum[o + c] = s;
      sumSq += s * s;
    }
    const rstd = 1 / Math.sqrt(sumSq / cols + eps);
    for (let c = 0; c < cols; c++) normed[o + c] = sum[o + c] * rstd * weight[c];
  }
}

export interface ConvStepDims {
  batch: number;
  channels: number;
  width: number;
  /** Columns of xz (≥ channels): x is the first `channels` of them. */
  xzCols: number;
}

export interface ConvStepArgs {
  dims: ConvStepDims;
  xz: FArray;
  convState: FArray;
  weight: FArray;
  bias?: FArray | null;
  silu: boolean;
  /** (B, E) output. */
  x: FArray;
  /** (B, E, W−1) output. */
  state: FArray;
}

export function convStep(args: ConvStepArgs): void {
  const where = 'convStep';
  const { dims, xz, convState, weight, bias, x, state } = args;
  checkDims(where, { ...dims });
  const { batch: B, channels: E, width: W, xzCols: C } = dims;
  if (W < 1) throw new Error(`${where}: dims.width must be at least 1, got ${W}.`);
  if (C < E) throw new Error(`${where}: dims.xzCols (${C}) must be at least dims.channels (${E}).`);
  const window = `(B, E, W−1) = (${B}, ${E}, ${W - 1})`;
  checkLength(where, 'xz', xz, B * C, `(B, C) = (${B}, ${C})`);
  checkLength(where, 'convState', convState, B * E * (W - 1), window);
  checkLength(where, 'weight', weight, E * W, `(E, W) = (${E}, ${W})`);
  checkLength(where, 'bias', bias, E, `(E) = (${E})`);
  checkLength(where, 'x', x, B * E, `(B, E) = (${B}, ${E})`);
  checkLength(where, 'state', state, B * E * (W - 1), window);

  for (let b = 0; b < B; b++) {
    for (let e = 0; e < E; e++) {
      const s = (b * E + e) * (W - 1);
      const newest = xz[b * C + e];
      let acc = bias ? bias[e] : 0;
      for (let k = 0; k < W - 1; k++) acc += weight[e * W + k] * convState[s + k];
      acc += weight[e * W + W - 1] * newest;
      x[b * E + e] = args.silu ? silu(acc) : acc;
      for (let k = 0; k < W - 2; k++) state[s + k] = convState[s + k + 1];
      if (W > 1) state[s + W - 2] = newest;
    }
  }
}

export interface SsmStepDims {
  batch: number;
  channels: number;
  state: number;
  /** R, the time-step rank: dbc's first R columns are the low-rank δ. */
  rank: number;
  /** Columns of xz (≥ 2·channels): z is columns [channels, 2·channels). */
  xzCols: number;
}

export interface SsmStepArgs {
  dims: SsmStepDims;
  /** (B, E, N) */
  state: FArray;
  /** (B, E) */
  x: FArray;
  /** (B, C) */
  xz: FArray;
  /** (B, R + 2N) */
  dbc: FArray;
  /** (E, R) */
  dtWeight: FArray;
  dtBias?: FArray | null;
  /** (E, N): A = −exp(ALog). */
  ALog: FArray;
  D?: FArray | null;
  deltaSoftplus: boolean;
  /** (B, E) output. */
  y: FArray;
  /** (B, E, N) output; may be the same array as `state`. */
  stateOut: FArray;
}

export function ssmStep(args: SsmStepArgs): void {
  const where = 'ssmStep';
  const { dims, state, x, xz, dbc, dtWeight, dtBias, ALog, D, deltaSoftplus, y, stateOut } = args;
  checkDims(where, { ...dims });
  const { batch: B, channels: E, state: N, rank: R, xzCols: C } = dims;
  if (C < 2 * E) throw new Error(`${where}: dims.xzCols (${C}) must be at least 2·dims.channels (${2 * E}).`);
  const be = `(B, E) = (${B}, ${E})`;
  const ben = `(B, E, N) = (${B}, ${E}, ${N})`;
  const P = R + 2 * N;
  checkLength(where, 'state', state, B * E * N, ben);
  checkLength(where, 'x', x, B * E, be);
  checkLength(where, 'xz', xz, B * C, `(B, C) = (${B}, ${C})`);
  checkLength(where, 'dbc', dbc, B * P, `(B, R + 2N) = (${B}, ${P})`);
  checkLength(where, 'dtWeight', dtWeight, E * R, `(E, R) = (${E}, ${R})`);
  checkLength(where, 'dtBias', dtBias, E, `(E) = (${E})`);
  checkLength(where, 'ALog', ALog, E * N, `(E, N) = (${E}, ${N})`);
  checkLength(where, 'D', D, E, `(E) = (${E})`);
  checkLength(where, 'y', y, B * E, be);
  checkLength(where, 'stateOut', stateOut, B * E * N, ben);

  for (let b = 0; b < B; b++) {
    const row = b * P; // δ at row + r, B at row + R + n, C at row + R + N + n
    for (let e = 0; e < E; e++) {
      const i = b * E + e;
      let delta = dtBias ? dtBias[e] : 0;
      for (let r = 0; r < R; r++) delta += dtWeight[e * R + r] * dbc[row + r];
      const dt = deltaSoftplus ? softplus(delta) : delta;

      let out = D ? D[e] * x[i] : 0;
      for (let n = 0; n < N; n++) {
        const s = i * N + n;
        const A = -Math.exp(ALog[e * N + n]);
        const h = Math.exp(dt * A) * state[s] + dt * dbc[row + R + n] * x[i];
        stateOut[s] = h;
        out += h * dbc[row + R + N + n];
      }
      y[i] = out * silu(xz[b * C + E + e]);
    }
  }
}
