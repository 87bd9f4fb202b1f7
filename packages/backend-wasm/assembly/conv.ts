// Depthwise causal conv1d, token-major (B, L, E), on an input padded in front with the W−1 preceding inputs:
//   xpad[b, s + W − 1] = x[b, s] (s ≥ 0) or the initial state (or 0), y[b, t, e] = act(bias[e] + Σ_k wT[k, e]·xpad[b, t + k, e])
// with wT = weightᵀ (W, E), so every inner loop runs over contiguous channels.
import { siluGradv, siluv } from './fastmath';

/** dst (cols × rows) = srcᵀ for a float32 (rows × cols) matrix. */
export function transpose2d(src: usize, dst: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) store<f32>(dst + (<usize>(c * rows + r) << 2), load<f32>(src + (<usize>(r * cols + c) << 2)));
  }
}

/** Builds xpad (B, L + W − 1, E) from x and the optional initial state (B, E, W − 1). */
export function convPad(x: usize, state: usize, xpad: usize, B: i32, L: i32, E: i32, W: i32): void {
  const P = L + W - 1;
  for (let b = 0; b < B; b++) {
    const base = xpad + (<usize>(b * P * E) << 2);
    for (let j = 0; j < W - 1; j++) {
      for (let e = 0; e < E; e++) {
        const v: f32 = state ? load<f32>(state + (<usize>((b * E + e) * (W - 1) + j) << 2)) : 0;
        store<f32>(base + (<usize>(j * E + e) << 2), v);
      }
    }
    memory.copy(base + (<usize>((W - 1) * E) << 2), x + (<usize>(b * L * E) << 2), <usize>(L * E) << 2);
  }
}

/** The reverse of convPad: dx from the padded gradient, and the initial state's gradient when dstate ≠ 0. */
export function convUnpad(dxpad: usize, dx: usize, dstate: usize, B: i32, L: i32, E: i32, W: i32): void {
  const P = L + W - 1;
  for (let b = 0; b < B; b++) {
    const base = dxpad + (<usize>(b * P * E) << 2);
    if (dstate) {
      for (let j = 0; j < W - 1; j++) {
        for (let e = 0; e < E; e++) {
          store<f32>(dstate + (<usize>((b * E + e) * (W - 1) + j) << 2), load<f32>(base + (<usize>(j * E + e) << 2)));
        }
      }
    }
    memory.copy(dx + (<usize>(b * L * E) << 2), base + (<usize>((W - 1) * E) << 2), <usize>(L * E) << 2);
  }
}

@inline function preActivation(xrow: usize, wT: usize, bias: usize, E: i32, W: i32, e: i32): v128 {
  let acc = bias ? v128.load(bias + (<usize>e << 2)) : f32x4.splat(0);
  for (let k = 0; k < W; k++) {
    const o = <usize>(k * E + e) << 2;
    acc = f32x4.add(acc, f32x4.mul(v128.load(wT + o), v128.load(xrow + o)));
  }
  return acc;
}

/**
 * Channels are processed 4 at a time; E4 = E rounded up to 4 is the row stride of xpad, wT, bias and y (the
 * caller pads them), so the tail needs no special case.
 */
export function convForward(xpad: usize, wT: usize, bias: usize, y: usize, B: i32, L: i32, E4: i32, W: i32, silu: bool): void {
  const P = L + W - 1;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      const xrow = xpad + (<usize>((b * P + t) * E4) << 2);
      const yrow = y + (<usize>((b * L + t) * E4) << 2);
      for (let e = 0; e < E4; e += 4) {
        const pre = preActivation(xrow, wT, bias, E4, W, e);
        v128.store(yrow + (<usize>e << 2), silu ? siluv(pre) : pre);
      }
    }
  }
}

/** dxpad, dwT and dbias are accumulated (zeroed by the caller). Same E4 padding as convForward. */
export function convBackward(xpad: usize, wT: usize, bias: usize, dy: usize, dxpad: usize, dwT: usize, dbias: usize, B: i32, L: i32, E4: i32, W: i32, silu: bool): void {
  const P = L + W - 1;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      const xrow = xpad + (<usize>((b * P + t) * E4) << 2);
      const dxrow = dxpad + (<usize>((b * P + t) * E4) << 2);
      const dyrow = dy + (<usize>((b * L + t) * E4) << 2);
      for (let e = 0; e < E4; e += 4) {
        const eo = <usize>e << 2;
        let g = v128.load(dyrow + eo);
        if (silu) g = f32x4.mul(g, siluGradv(preActivation(xrow, wT, bias, E4, W, e)));
        if (dbias) v128.store(dbias + eo, f32x4.add(v128.load(dbias + eo), g));
        for (let k = 0; k < W; k++) {
          const o = (<usize>(k * E4) << 2) + eo;
          v128.store(dwT + o, f32x4.add(v128.load(dwT + o), f32x4.mul(g, v128.load(xrow + o))));
          v128.store(dxrow + o, f32x4.add(v128.load(dxrow + o), f32x4.mul(g, v128.load(wT + o))));
        }
      }
    }
  }
}
