/**
 * Depthwise causal conv1d, token-major. PyTorch conv1d is a cross-correlation, so weight[e, W−1] multiplies the
 * current token and weight[e, 0] the oldest one in the window:
 *
 *   y[t, e] = act(bias[e] + Σ_{k=0}^{W−1} weight[e, k] · xin[t − (W−1) + k, e])
 *
 * where xin[s] = x[s] for s ≥ 0 and, for −(W−1) ≤ s < 0, the initial state (the W−1 inputs preceding x[0],
 * oldest first), or 0 without one. act is SiLU or the identity.
 *
 * Shapes: x, y: (B, L, E); weight: (E, W); bias: (E); initialState, finalState: (B, E, W−1).
 */
import type { FArray } from './common.js';
import { checkDims, checkLength, silu as siluFn, siluGrad } from './common.js';

export interface ConvDims {
  batch: number;
  length: number;
  channels: number;
  width: number;
}

export interface CausalConv1dInputs {
  dims: ConvDims;
  x: FArray;
  weight: FArray;
  bias?: FArray | null;
  initialState?: FArray | null;
  silu: boolean;
}

export interface CausalConv1dForwardArgs extends CausalConv1dInputs {
  y: FArray;
}

/** Gradient outputs are accumulated (+=). dinitialState is the gradient w.r.t. the initial state (zeros if absent). */
export interface CausalConv1dBackwardArgs extends CausalConv1dInputs {
  dy: FArray;
  dx: FArray;
  dweight: FArray;
  dbias?: FArray | null;
  dinitialState?: FArray | null;
}

export interface CausalConv1dFinalStateArgs {
  dims: ConvDims;
  x: FArray;
  initialState?: FArray | null;
  /** (B, E, W−1); allocated as a Float64Array when omitted. */
  finalState?: FArray | null;
}

function checkConvInputs(where: string, dims: ConvDims, x: FArray, initialState: FArray | null | undefined): void {
  checkDims(where, { ...dims });
  const { batch: B, length: L, channels: E, width: W } = dims;
  if (W < 1) throw new Error(`${where}: dims.width must be at least 1, got ${W}.`);
  checkLength(where, 'x', x, B * L * E, `(B, L, E) = (${B}, ${L}, ${E})`);
  checkLength(where, 'initialState', initialState, B * E * (W - 1), `(B, E, W−1) = (${B}, ${E}, ${W - 1})`);
}

/** Position of input time s (−(W−1) ≤ s < L) of (b, e): either an index into x or into the initial state. */
function inputAt(
  dims: ConvDims,
  x: FArray,
  initialState: FArray | null | undefined,
  b: number,
  s: number,
  e: number,
): number {
  const { length: L, channels: E, width: W } = dims;
  if (s >= 0) return x[(b * L + s) * E + e];
  return initialState ? initialState[(b * E + e) * (W - 1) + (W - 1) + s] : 0;
}

/** bias[e] + Σ_k weight[e, k] · xin[t − (W−1) + k]: the value before the activation. */
function preActivation(args: CausalConv1dInputs, b: number, t: number, e: number): number {
  const { dims, x, weight, bias, initialState } = args;
  const W = dims.width;
  let acc = bias ? bias[e] : 0;
  for (let k = 0; k < W; k++) acc += weight[e * W + k] * inputAt(dims, x, initialState, b, t - (W - 1) + k, e);
  return acc;
}

export function causalConv1dForward(args: CausalConv1dForwardArgs): void {
  const where = 'causalConv1dForward';
  const { dims, x, weight, bias, initialState, y } = args;
  checkConvInputs(where, dims, x, initialState);
  const { batch: B, length: L, channels: E, width: W } = dims;
  checkLength(where, 'weight', weight, E * W, `(E, W) = (${E}, ${W})`);
  checkLength(where, 'bias', bias, E, `(E) = (${E})`);
  checkLength(where, 'y', y, B * L * E, `(B, L, E) = (${B}, ${L}, ${E})`);

  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      for (let e = 0; e < E; e++) {
        const pre = preActivation(args, b, t, e);
        y[(b * L + t) * E + e] = args.silu ? siluFn(pre) : pre;
      }
    }
  }
}

export function causalConv1dBackward(args: CausalConv1dBackwardArgs): void {
  const where = 'causalConv1dBackward';
  const { dims, x, weight, bias, initialState, dy, dx, dweight, dbias, dinitialState } = args;
  checkConvInputs(where, dims, x, initialState);
  const { batch: B, length: L, channels: E, width: W } = dims;
  const ble = `(B, L, E) = (${B}, ${L}, ${E})`;
  checkLength(where, 'weight', weight, E * W, `(E, W) = (${E}, ${W})`);
  checkLength(where, 'bias', bias, E, `(E) = (${E})`);
  checkLength(where, 'dy', dy, B * L * E, ble);
  checkLength(where, 'dx', dx, B * L * E, ble);
  checkLength(where, 'dweight', dweight, E * W, `(E, W) = (${E}, ${W})`);
  checkLength(where, 'dbias', dbias, E, `(E) = (${E})`);
  checkLength(where, 'dinitialState', dinitialState, B * E * (W - 1), `(B, E, W−1) = (${B}, ${E}, ${W - 1})`);

  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      for (let e = 0; e < E; e++) {
        const i = (b * L + t) * E + e;
        // Gradient w.r.t. the pre-activation.
        const g = args.silu ? dy[i] * siluGrad(preActivation(args, b, t, e)) : dy[i];
        if (dbias) dbias[e] += g;
        for (let k = 0; k < W; k++) {
          const s = t - (W - 1) + k;
          dweight[e * W + k] += g * inputAt(dims, x, initialState, b, s, e);
          if (s >= 0) dx[(b * L + s) * E + e] += g * weight[e * W + k];
          else if (dinitialState) dinitialState[(b * E + e) * (W - 1) + (W - 1) + s] += g * weight[e * W + k];
        }
      }
    }
  }
}

/**
 * The last W−1 inputs (oldest first) after consuming x: what a recurrent step would hold next, and the
 * initialState that continues this sequence. When L < W−1 the older entries come from the initial state.
 */
export function causalConv1dFinalState(args: CausalConv1dFinalStateArgs): FArray {
  const where = 'causalConv1dFinalState';
  const { dims, x, initialState } = args;
  checkConvInputs(where, dims, x, initialState);
  const { batch: B, length: L, channels: E, width: W } = dims;
  const finalState = args.finalState ?? new Float64Array(B * E * (W - 1));
  checkLength(where, 'finalState', finalState, B * E * (W - 1), `(B, E, W−1) = (${B}, ${E}, ${W - 1})`);

  for (let b = 0; b < B; b++) {
    for (let e = 0; e < E; e++) {
      for (let j = 0; j < W - 1; j++) {
        finalState[(b * E + e) * (W - 1) + j] = inputAt(dims, x, initialState, b, L - (W - 1) + j, e);
      }
    }
  }
  return finalState;
}
