// Elementwise kernels over float32 arrays: unary ops, broadcasting binary ops, affine, and the AdamW step.
import { erf64, expv, sigmoidv, siluv, softplusv } from './fastmath';

// Unary op codes (must match src/kernels/elementwise.ts).
const NEG = 0, EXP = 1, LOG = 2, SQRT = 3, RSQRT = 4, ABS = 5, SQUARE = 6, RECIPROCAL = 7, SIGMOID = 8, SILU = 9;
const SOFTPLUS = 10, TANH = 11, GELU = 12, RELU = 13, NORMAL_CDF = 14, STEP = 15, SIGN = 16;

@final class Neg { @inline v(x: v128): v128 { return f32x4.neg(x); } }
@final class Exp { @inline v(x: v128): v128 { return expv(x); } }
@final class Sqrt { @inline v(x: v128): v128 { return f32x4.sqrt(x); } }
@final class Rsqrt { @inline v(x: v128): v128 { return f32x4.div(f32x4.splat(1), f32x4.sqrt(x)); } }
@final class Abs { @inline v(x: v128): v128 { return f32x4.abs(x); } }
@final class Square { @inline v(x: v128): v128 { return f32x4.mul(x, x); } }
@final class Reciprocal { @inline v(x: v128): v128 { return f32x4.div(f32x4.splat(1), x); } }
@final class Sigmoid { @inline v(x: v128): v128 { return sigmoidv(x); } }
@final class Silu { @inline v(x: v128): v128 { return siluv(x); } }
@final class Softplus { @inline v(x: v128): v128 { return softplusv(x); } }
@final class Relu { @inline v(x: v128): v128 { return v128.and(x, f32x4.gt(x, f32x4.splat(0))); } }
@final class Step { @inline v(x: v128): v128 { return v128.and(f32x4.splat(1), f32x4.gt(x, f32x4.splat(0))); } }

/** y = op(x) on 4 lanes at a time; the tail goes through the same vector code on a zero-padded copy. */
@inline function unaryLoop<O>(op: O, x: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), op.v(v128.load(x + (<usize>i << 2))));
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), f32x4.extract_lane(op.v(f32x4.splat(load<f32>(x + (<usize>i << 2)))), 0));
}

function scalar64(op: i32, v: f64): f64 {
  switch (op) {
    case LOG: return Math.log(v);
    case TANH: return Math.tanh(v);
    case GELU: return 0.5 * v * (1 + erf64(v / Math.SQRT2));
    case NORMAL_CDF: return 0.5 * (1 + erf64(v / Math.SQRT2));
    case SIGN: return v > 0 ? 1 : v < 0 ? -1 : v;
    default: return NaN;
  }
}

export function unary(op: i32, x: usize, y: usize, n: i32): void {
  switch (op) {
    case NEG: unaryLoop(changetype<Neg>(0), x, y, n); return;
    case EXP: unaryLoop(changetype<Exp>(0), x, y, n); return;
    case SQRT: unaryLoop(changetype<Sqrt>(0), x, y, n); return;
    case RSQRT: unaryLoop(changetype<Rsqrt>(0), x, y, n); return;
    case ABS: unaryLoop(changetype<Abs>(0), x, y, n); return;
    case SQUARE: unaryLoop(changetype<Square>(0), x, y, n); return;
    case RECIPROCAL: unaryLoop(changetype<Reciprocal>(0), x, y, n); return;
    case SIGMOID: unaryLoop(changetype<Sigmoid>(0), x, y, n); return;
    case SILU: unaryLoop(changetype<Silu>(0), x, y, n); return;
    case SOFTPLUS: unaryLoop(changetype<Softplus>(0), x, y, n); return;
    case RELU: unaryLoop(changetype<Relu>(0), x, y, n); return;
    case STEP: unaryLoop(changetype<Step>(0), x, y, n); return;
  }
  // Rarely used ops (not on the Mamba path) in float64 for accuracy.
  for (let i = 0; i < n; i++) store<f32>(y + (<usize>i << 2), <f32>scalar64(op, <f64>load<f32>(x + (<usize>i << 2))));
}

// Binary op codes (must match src/kernels/elementwise.ts).
const ADD = 0, SUB = 1, MUL = 2, DIV = 3, MAXIMUM = 4, MINIMUM = 5, POW = 6, GREATER = 7, EQUAL = 8;

@final class Add { @inline v(a: v128, b: v128): v128 { return f32x4.add(a, b); } }
@final class Sub { @inline v(a: v128, b: v128): v128 { return f32x4.sub(a, b); } }
@final class Mul { @inline v(a: v128, b: v128): v128 { return f32x4.mul(a, b); } }
@final class Div { @inline v(a: v128, b: v128): v128 { return f32x4.div(a, b); } }
@final class Maximum { @inline v(a: v128, b: v128): v128 { return f32x4.max(a, b); } }
@final class Minimum { @inline v(a: v128, b: v128): v128 { return f32x4.min(a, b); } }
@final class Greater { @inline v(a: v128, b: v128): v128 { return v128.and(f32x4.splat(1), f32x4.gt(a, b)); } }
@final class Equal { @inline v(a: v128, b: v128): v128 { return v128.and(f32x4.splat(1), f32x4.eq(a, b)); } }
@final class Pow {
  @inline v(a: v128, b: v128): v128 {
    let r = f32x4.splat(<f32>Math.pow(f32x4.extract_lane(a, 0), f32x4.extract_lane(b, 0)));
    r = f32x4.replace_lane(r, 1, <f32>Math.pow(f32x4.extract_lane(a, 1), f32x4.extract_lane(b, 1)));
    r = f32x4.replace_lane(r, 2, <f32>Math.pow(f32x4.extract_lane(a, 2), f32x4.extract_lane(b, 2)));
    return f32x4.replace_lane(r, 3, <f32>Math.pow(f32x4.extract_lane(a, 3), f32x4.extract_lane(b, 3)));
  }
}

/**
 * One output row of n elements: a and b advance by sa / sb elements (1, or 0 for a broadcast operand).
 */
@inline function binaryRow<O>(op: O, a: usize, sa: i32, b: usize, sb: i32, y: usize, n: i32): void {
  let i = 0;
  if (sa == 1 && sb == 1) {
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(y + o, op.v(v128.load(a + o), v128.load(b + o)));
    }
  } else if (sa == 1 && sb == 0) {
    const bv = v128.load32_splat(b);
    for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), op.v(v128.load(a + (<usize>i << 2)), bv));
  } else if (sa == 0 && sb == 1) {
    const av = v128.load32_splat(a);
    for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), op.v(av, v128.load(b + (<usize>i << 2))));
  }
  for (; i < n; i++) {
    const av = f32x4.splat(load<f32>(a + (<usize>(i * sa) << 2)));
    const bv = f32x4.splat(load<f32>(b + (<usize>(i * sb) << 2)));
    store<f32>(y + (<usize>i << 2), f32x4.extract_lane(op.v(av, bv), 0));
  }
}

/**
 * y = op(a, b) over a 4-d output `shape` (params: shape[4], aStrides[4], bStrides[4] as i32, strides in elements,
 * 0 on broadcast axes). The innermost axis must have strides 1 or 0.
 */
@inline function binaryLoop<O>(op: O, a: usize, b: usize, y: usize, params: usize): void {
  const n0 = load<i32>(params), n1 = load<i32>(params, 4), n2 = load<i32>(params, 8), n3 = load<i32>(params, 12);
  const a0 = load<i32>(params, 16), a1 = load<i32>(params, 20), a2 = load<i32>(params, 24), a3 = load<i32>(params, 28);
  const b0 = load<i32>(params, 32), b1 = load<i32>(params, 36), b2 = load<i32>(params, 40), b3 = load<i32>(params, 44);
  let out = y;
  for (let i0 = 0; i0 < n0; i0++) {
    for (let i1 = 0; i1 < n1; i1++) {
      for (let i2 = 0; i2 < n2; i2++) {
        const ao = a + (<usize>(i0 * a0 + i1 * a1 + i2 * a2) << 2);
        const bo = b + (<usize>(i0 * b0 + i1 * b1 + i2 * b2) << 2);
        binaryRow(op, ao, a3, bo, b3, out, n3);
        out += <usize>n3 << 2;
      }
    }
  }
}

export function binary(op: i32, a: usize, b: usize, y: usize, params: usize): void {
  switch (op) {
    case ADD: binaryLoop(changetype<Add>(0), a, b, y, params); return;
    case SUB: binaryLoop(changetype<Sub>(0), a, b, y, params); return;
    case MUL: binaryLoop(changetype<Mul>(0), a, b, y, params); return;
    case DIV: binaryLoop(changetype<Div>(0), a, b, y, params); return;
    case MAXIMUM: binaryLoop(changetype<Maximum>(0), a, b, y, params); return;
    case MINIMUM: binaryLoop(changetype<Minimum>(0), a, b, y, params); return;
    case POW: binaryLoop(changetype<Pow>(0), a, b, y, params); return;
    case GREATER: binaryLoop(changetype<Greater>(0), a, b, y, params); return;
    case EQUAL: binaryLoop(changetype<Equal>(0), a, b, y, params); return;
  }
}

/** The same loops over i32 values (integer results; comparisons give 1 or 0). */
export function binaryI32(op: i32, a: usize, b: usize, y: usize, params: usize): void {
  const n0 = load<i32>(params), n1 = load<i32>(params, 4), n2 = load<i32>(params, 8), n3 = load<i32>(params, 12);
  const a0 = load<i32>(params, 16), a1 = load<i32>(params, 20), a2 = load<i32>(params, 24), a3 = load<i32>(params, 28);
  const b0 = load<i32>(params, 32), b1 = load<i32>(params, 36), b2 = load<i32>(params, 40), b3 = load<i32>(params, 44);
  let out = y;
  for (let i0 = 0; i0 < n0; i0++) {
    for (let i1 = 0; i1 < n1; i1++) {
      for (let i2 = 0; i2 < n2; i2++) {
        const ao = i0 * a0 + i1 * a1 + i2 * a2;
        const bo = i0 * b0 + i1 * b1 + i2 * b2;
        for (let i = 0; i < n3; i++) {
          const x = load<i32>(a + (<usize>(ao + i * a3) << 2));
          const z = load<i32>(b + (<usize>(bo + i * b3) << 2));
          let r: i32 = 0;
          switch (op) {
            case ADD: r = x + z; break;
            case SUB: r = x - z; break;
            case MUL: r = x * z; break;
            case DIV: r = z != 0 ? x / z : 0; break;
            case MAXIMUM: r = max(x, z); break;
            case MINIMUM: r = min(x, z); break;
            case POW: r = <i32>Math.pow(<f64>x, <f64>z); break;
            case GREATER: r = x > z ? 1 : 0; break;
            case EQUAL: r = x == z ? 1 : 0; break;
          }
          store<i32>(out, r);
          out += 4;
        }
      }
    }
  }
}

export function affine(x: usize, y: usize, n: i32, scale: f32, offset: f32): void {
  const s = f32x4.splat(scale);
  const o = f32x4.splat(offset);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), f32x4.add(f32x4.mul(v128.load(x + (<usize>i << 2)), s), o));
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), load<f32>(x + (<usize>i << 2)) * scale + offset);
}

export function fillF32(y: usize, n: i32, value: f32): void {
  const v = f32x4.splat(value);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), v);
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), value);
}

/**
 * One AdamW step in place on float32 param, m, v (torch.optim.AdamW): decoupled decay, bias-corrected moments.
 * stepSize = lr / (1 − β1^t), rsqrtBc2 = 1 / sqrt(1 − β2^t).
 */
export function adamw(param: usize, grad: usize, m: usize, v: usize, n: i32, lr: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, stepSize: f32, rsqrtBc2: f32): void {
  const decay = f32x4.splat(1 - lr * weightDecay);
  const b1 = f32x4.splat(beta1), c1 = f32x4.splat(1 - beta1);
  const b2 = f32x4.splat(beta2), c2 = f32x4.splat(1 - beta2);
  const e = f32x4.splat(eps), ss = f32x4.splat(stepSize), rb = f32x4.splat(rsqrtBc2);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const g = v128.load(grad + o);
    const mi = f32x4.add(f32x4.mul(b1, v128.load(m + o)), f32x4.mul(c1, g));
    const vi = f32x4.add(f32x4.mul(b2, v128.load(v + o)), f32x4.mul(f32x4.mul(c2, g), g));
    const denom = f32x4.add(f32x4.mul(f32x4.sqrt(vi), rb), e);
    const p = f32x4.mul(v128.load(param + o), decay);
    v128.store(m + o, mi);
    v128.store(v + o, vi);
    v128.store(param + o, f32x4.sub(p, f32x4.mul(ss, f32x4.div(mi, denom))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const g = load<f32>(grad + o);
    const mi = beta1 * load<f32>(m + o) + (1 - beta1) * g;
    const vi = beta2 * load<f32>(v + o) + (1 - beta2) * g * g;
    const denom = Mathf.sqrt(vi) * rsqrtBc2 + eps;
    store<f32>(m + o, mi);
    store<f32>(v + o, vi);
    store<f32>(param + o, load<f32>(param + o) * (1 - lr * weightDecay) - stepSize * (mi / denom));
  }
}
