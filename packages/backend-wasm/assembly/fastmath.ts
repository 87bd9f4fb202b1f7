// Vectorised float32 math for the hot loops (exp, sigmoid, silu, softplus) and lane helpers.
// exp: x = k·ln2 + r with |r| ≤ ln2/2, exp(r) by a degree-6 Taylor polynomial (relative error ≈ 2e-7),
// scaled by 2^k built directly in the exponent bits. Inputs are clamped to the float32 range of exp.

// The constants live in mutable globals loaded from a data segment, so the optimiser cannot fold them back into
// v128.const instructions: V8 re-materialises those inside every loop iteration, which made exp ~1.5× slower.
const EXP_DATA = memory.data<f32>([88.37626, -87.33654, 1.44269504, 0.693145751953125, 1.428606765330187e-6, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 12582912.0, 0.0]);
let X_MAX = v128.load32_splat(EXP_DATA);
let X_MIN = v128.load32_splat(EXP_DATA, 4);
let LOG2E = v128.load32_splat(EXP_DATA, 8);
let LN2_HI = v128.load32_splat(EXP_DATA, 12);
let LN2_LO = v128.load32_splat(EXP_DATA, 16);
let P6 = v128.load32_splat(EXP_DATA, 20);
let P5 = v128.load32_splat(EXP_DATA, 24);
let P4 = v128.load32_splat(EXP_DATA, 28);
let P3 = v128.load32_splat(EXP_DATA, 32);
let P2 = v128.load32_splat(EXP_DATA, 36);
let ONE = v128.load32_splat(EXP_DATA, 40);
/** 1.5·2^23: adding it rounds to an integer held in the low mantissa bits. */
let MAGIC = v128.load32_splat(EXP_DATA, 44);
let BIAS = i32x4.splat(127 + <i32>load<f32>(EXP_DATA, 48));

@inline export function expv(x: v128): v128 {
  x = f32x4.pmax(f32x4.pmin(x, X_MAX), X_MIN); // pmin/pmax: single x86 instructions; NaN in x still propagates
  const t = f32x4.add(f32x4.mul(x, LOG2E), MAGIC);
  const k = f32x4.sub(t, MAGIC);
  let r = f32x4.sub(x, f32x4.mul(k, LN2_HI));
  r = f32x4.sub(r, f32x4.mul(k, LN2_LO));
  let p = f32x4.add(f32x4.mul(r, P6), P5);
  p = f32x4.add(f32x4.mul(p, r), P4);
  p = f32x4.add(f32x4.mul(p, r), P3);
  p = f32x4.add(f32x4.mul(p, r), P2);
  p = f32x4.add(f32x4.mul(p, r), ONE);
  p = f32x4.add(f32x4.mul(p, r), ONE);
  // 2^k with k in [−126, 128] after the clamp, as two normal factors so that k = 128 still works.
  const ki = i32x4.sub(t, MAGIC);
  const half = i32x4.shr_s(ki, 1);
  const s1 = i32x4.shl(i32x4.add(half, BIAS), 23);
  const s2 = i32x4.shl(i32x4.add(i32x4.sub(ki, half), BIAS), 23);
  return f32x4.mul(f32x4.mul(p, s1), s2);
}

@inline export function exps(x: f32): f32 {
  return f32x4.extract_lane(expv(f32x4.splat(x)), 0);
}

/** Natural log of positive normal floats (the callers only pass 1 + e with e > 0). */
@inline export function logv(x: v128): v128 {
  const bits = x;
  let e = i32x4.sub(i32x4.shr_u(bits, 23), i32x4.splat(127));
  // Mantissa in [1, 2), moved to [sqrt(1/2), sqrt(2)) so the series argument stays small.
  let m = v128.or(v128.and(bits, i32x4.splat(0x7fffff)), i32x4.splat(0x3f800000));
  const big = f32x4.gt(m, f32x4.splat(1.41421356));
  m = v128.bitselect(f32x4.mul(m, f32x4.splat(0.5)), m, big);
  e = i32x4.sub(e, big); // big lanes are all ones (−1): e + 1
  const f = f32x4.sub(m, f32x4.splat(1.0));
  const s = f32x4.div(f, f32x4.add(f, f32x4.splat(2.0)));
  const s2 = f32x4.mul(s, s);
  // log(m) = 2·atanh(s) = 2s(1 + s²/3 + s⁴/5 + s⁶/7 + s⁸/9)
  let p = f32x4.add(f32x4.mul(s2, f32x4.splat(1.0 / 9.0)), f32x4.splat(1.0 / 7.0));
  p = f32x4.add(f32x4.mul(p, s2), f32x4.splat(1.0 / 5.0));
  p = f32x4.add(f32x4.mul(p, s2), f32x4.splat(1.0 / 3.0));
  p = f32x4.add(f32x4.mul(p, s2), f32x4.splat(1.0));
  const logm = f32x4.mul(f32x4.mul(s, f32x4.splat(2.0)), p);
  return f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(e), f32x4.splat(0.6931471805599453)), logm);
}

/** log(1 + u) for u ≥ 0, accurate for small u: log(w)·u/(w − 1) with w = 1 + u. */
@inline export function log1pv(u: v128): v128 {
  const w = f32x4.add(u, f32x4.splat(1.0));
  const d = f32x4.sub(w, f32x4.splat(1.0));
  const exact = f32x4.eq(d, f32x4.splat(0.0));
  const corrected = f32x4.mul(logv(w), f32x4.div(u, v128.bitselect(f32x4.splat(1.0), d, exact)));
  return v128.bitselect(u, corrected, exact);
}

/** softplus with PyTorch's threshold 20 (above it, the identity). */
@inline export function softplusv(x: v128): v128 {
  const sp = log1pv(expv(f32x4.pmin(x, f32x4.splat(20.0))));
  return v128.bitselect(x, sp, f32x4.gt(x, f32x4.splat(20.0)));
}

@inline export function sigmoidv(x: v128): v128 {
  return f32x4.div(ONE, f32x4.add(ONE, expv(f32x4.neg(x))));
}

@inline export function siluv(x: v128): v128 {
  return f32x4.mul(x, sigmoidv(x));
}

/** d silu / dx = σ(x)·(1 + x·(1 − σ(x))) */
@inline export function siluGradv(x: v128): v128 {
  const s = sigmoidv(x);
  return f32x4.mul(s, f32x4.add(f32x4.splat(1.0), f32x4.mul(x, f32x4.sub(f32x4.splat(1.0), s))));
}

/** d softplus / dx with the same threshold as the forward. */
@inline export function softplusGradv(x: v128): v128 {
  return v128.bitselect(f32x4.splat(1.0), sigmoidv(x), f32x4.gt(x, f32x4.splat(20.0)));
}

@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(f32x4.add(s, v128.shuffle<f32>(s, s, 1, 0, 3, 2)), 0);
}

@inline export function hmax(v: v128): f32 {
  const s = f32x4.max(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(f32x4.max(s, v128.shuffle<f32>(s, s, 1, 0, 3, 2)), 0);
}

/** Loads `count` (1…4) consecutive floats, zeros in the other lanes. */
@inline export function loadLanes(p: usize, count: i32): v128 {
  if (count >= 4) return v128.load(p);
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (count > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (count > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

/** Loads lanes at p, p + stride, p + 2·stride…; zeros beyond `count`. */
@inline export function gatherLanes(p: usize, strideBytes: usize, count: i32): v128 {
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (count > 1) v = f32x4.replace_lane(v, 1, load<f32>(p + strideBytes));
  if (count > 2) v = f32x4.replace_lane(v, 2, load<f32>(p + 2 * strideBytes));
  if (count > 3) v = f32x4.replace_lane(v, 3, load<f32>(p + 3 * strideBytes));
  return v;
}

@inline export function storeLanes(p: usize, v: v128, count: i32): void {
  if (count >= 4) {
    v128.store(p, v);
    return;
  }
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (count > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (count > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

@inline export function scatterLanes(p: usize, strideBytes: usize, v: v128, count: i32): void {
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (count > 1) store<f32>(p + strideBytes, f32x4.extract_lane(v, 1));
  if (count > 2) store<f32>(p + 2 * strideBytes, f32x4.extract_lane(v, 2));
  if (count > 3) store<f32>(p + 3 * strideBytes, f32x4.extract_lane(v, 3));
}

/** Adds v's lanes into p, p + stride, … */
@inline export function scatterAddLanes(p: usize, strideBytes: usize, v: v128, count: i32): void {
  store<f32>(p, load<f32>(p) + f32x4.extract_lane(v, 0));
  if (count > 1) store<f32>(p + strideBytes, load<f32>(p + strideBytes) + f32x4.extract_lane(v, 1));
  if (count > 2) store<f32>(p + 2 * strideBytes, load<f32>(p + 2 * strideBytes) + f32x4.extract_lane(v, 2));
  if (count > 3) store<f32>(p + 3 * strideBytes, load<f32>(p + 3 * strideBytes) + f32x4.extract_lane(v, 3));
}

/** erf in float64 (power series near 0, continued fraction for the tail), for gelu and the normal CDF. */
export function erf64(x: f64): f64 {
  const ax = Math.abs(x);
  const sign: f64 = x < 0 ? -1 : 1;
  if (ax < 2.5) {
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / <f64>n;
      const add = term / <f64>(2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return sign * (2.0 / Math.sqrt(Math.PI)) * sum;
  }
  let f = ax;
  let c = ax;
  let d: f64 = 0;
  for (let n = 1; n < 200; n++) {
    const an = <f64>n / 2;
    d = ax + an * d;
    d = d == 0 ? 1e-300 : 1 / d;
    c = ax + an / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return sign * (1 - erfc);
}
