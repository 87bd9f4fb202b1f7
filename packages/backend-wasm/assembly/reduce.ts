// Reductions over a contiguous run of axes, seen as (outer, red, inner); argmax and softmax over the last axis.
import { expv, hmax, hsum } from './fastmath';

const SUM = 0, MAX = 1, MIN = 2;

@inline function combine(kind: i32, a: v128, b: v128): v128 {
  return kind == SUM ? f32x4.add(a, b) : kind == MAX ? f32x4.max(a, b) : f32x4.min(a, b);
}

@inline function combineScalar(kind: i32, a: f32, b: f32): f32 {
  return f32x4.extract_lane(combine(kind, f32x4.splat(a), f32x4.splat(b)), 0);
}

export function reduce(kind: i32, x: usize, y: usize, outer: i32, red: i32, inner: i32): void {
  if (inner == 1) {
    // Contiguous rows: 4 lanes of partial results, combined at the end.
    for (let o = 0; o < outer; o++) {
      const row = x + (<usize>(o * red) << 2);
      let r = 0;
      let acc: f32 = kind == SUM ? 0 : load<f32>(row);
      if (red >= 8) {
        let v = v128.load(row);
        r = 4;
        for (; r + 4 <= red; r += 4) v = combine(kind, v, v128.load(row + (<usize>r << 2)));
        acc = kind == SUM ? hsum(v) : kind == MAX ? hmax(v) : -hmax(f32x4.neg(v));
      }
      for (; r < red; r++) acc = combineScalar(kind, acc, load<f32>(row + (<usize>r << 2)));
      store<f32>(y + (<usize>o << 2), acc);
    }
    return;
  }
  // Reduce whole rows of `inner` elements into the output row, 4 columns at a time.
  for (let o = 0; o < outer; o++) {
    const out = y + (<usize>(o * inner) << 2);
    const base = x + (<usize>(o * red * inner) << 2);
    memory.copy(out, base, <usize>inner << 2);
    for (let r = 1; r < red; r++) {
      const row = base + (<usize>(r * inner) << 2);
      let i = 0;
      for (; i + 4 <= inner; i += 4) {
        const p = out + (<usize>i << 2);
        v128.store(p, combine(kind, v128.load(p), v128.load(row + (<usize>i << 2))));
      }
      for (; i < inner; i++) {
        const p = out + (<usize>i << 2);
        store<f32>(p, combineScalar(kind, load<f32>(p), load<f32>(row + (<usize>i << 2))));
      }
    }
  }
}

/** Index of the first largest value of each row (NaN never wins, as in the cpu reference). */
export function argmax(x: usize, y: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const row = x + (<usize>(r * cols) << 2);
    let best = 0;
    let bestValue = load<f32>(row);
    for (let c = 1; c < cols; c++) {
      const v = load<f32>(row + (<usize>c << 2));
      if (v > bestValue) {
        best = c;
        bestValue = v;
      }
    }
    store<i32>(y + (<usize>r << 2), best);
  }
}

/** Max of a row of n floats (−Inf when empty). */
export function rowMax(p: usize, n: i32): f32 {
  let i = 0;
  let m: f32 = -Infinity;
  if (n >= 4) {
    let v = v128.load(p);
    for (i = 4; i + 4 <= n; i += 4) v = f32x4.pmax(v, v128.load(p + (<usize>i << 2)));
    m = hmax(v);
  }
  for (; i < n; i++) m = max(m, load<f32>(p + (<usize>i << 2)));
  return m;
}

/** Σ exp(x − shift) over a row; when `out` is non-zero the exponentials are stored there. */
export function rowSumExp(p: usize, n: i32, shift: f32, out: usize): f32 {
  const s = f32x4.splat(shift);
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const e = expv(f32x4.sub(v128.load(p + (<usize>i << 2)), s));
    if (out) v128.store(out + (<usize>i << 2), e);
    acc = f32x4.add(acc, e);
  }
  let tail: f32 = 0;
  for (; i < n; i++) {
    const e = f32x4.extract_lane(expv(f32x4.splat(load<f32>(p + (<usize>i << 2)) - shift)), 0);
    if (out) store<f32>(out + (<usize>i << 2), e);
    tail += e;
  }
  return hsum(acc) + tail;
}

export function softmax(x: usize, y: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const o = <usize>(r * cols) << 2;
    const m = rowMax(x + o, cols);
    const total = rowSumExp(x + o, cols, m, y + o);
    const inv = f32x4.splat(1 / total);
    let i = 0;
    for (; i + 4 <= cols; i += 4) {
      const p = y + o + (<usize>i << 2);
      v128.store(p, f32x4.mul(v128.load(p), inv));
    }
    for (; i < cols; i++) {
      const p = y + o + (<usize>i << 2);
      store<f32>(p, load<f32>(p) / total);
    }
  }
}
