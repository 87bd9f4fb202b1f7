// rmsNorm and layerNorm over the last axis (rows × cols), forward and backward, float32 statistics.
import { hsum } from './fastmath';

@inline function dot(a: usize, b: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
  let s = hsum(acc);
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

@inline function rowSum(a: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) acc = f32x4.add(acc, v128.load(a + (<usize>i << 2)));
  let s = hsum(acc);
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2));
  return s;
}

/** y = x · rstd · w, rstd = 1/sqrt(mean(x²) + eps) */
export function rmsNormForward(x: usize, w: usize, y: usize, rows: i32, cols: i32, eps: f32): void {
  for (let r = 0; r < rows; r++) {
    const o = <usize>(r * cols) << 2;
    const rstd: f32 = <f32>1.0 / Mathf.sqrt(dot(x + o, x + o, cols) / <f32>cols + eps);
    const s = f32x4.splat(rstd);
    let c = 0;
    for (; c + 4 <= cols; c += 4) {
      const p = <usize>c << 2;
      v128.store(y + o + p, f32x4.mul(f32x4.mul(v128.load(x + o + p), s), v128.load(w + p)));
    }
    for (; c < cols; c++) {
      const p = <usize>c << 2;
      store<f32>(y + o + p, load<f32>(x + o + p) * rstd * load<f32>(w + p));
    }
  }
}

/** dx = rstd·(dy⊙w − x̂·mean(dy⊙w⊙x̂)), dw = Σ_rows dy⊙x̂ (dw must be zeroed by the caller). */
export function rmsNormBackward(x: usize, w: usize, dy: usize, dx: usize, dw: usize, rows: i32, cols: i32, eps: f32): void {
  for (let r = 0; r < rows; r++) {
    const o = <usize>(r * cols) << 2;
    const rstd: f32 = <f32>1.0 / Mathf.sqrt(dot(x + o, x + o, cols) / <f32>cols + eps);
    const s = f32x4.splat(rstd);
    // mean(dy·w·x̂) = rstd · Σ dy·w·x / cols
    let accv = f32x4.splat(0);
    let c = 0;
    for (; c + 4 <= cols; c += 4) {
      const p = <usize>c << 2;
      accv = f32x4.add(accv, f32x4.mul(f32x4.mul(v128.load(dy + o + p), v128.load(w + p)), v128.load(x + o + p)));
    }
    let acc = hsum(accv);
    for (; c < cols; c++) {
      const p = <usize>c << 2;
      acc += load<f32>(dy + o + p) * load<f32>(w + p) * load<f32>(x + o + p);
    }
    const meanGX = acc * rstd / <f32>cols;
    const m = f32x4.splat(meanGX);
    for (c = 0; c + 4 <= cols; c += 4) {
      const p = <usize>c << 2;
      const xHat = f32x4.mul(v128.load(x + o + p), s);
      const g = v128.load(dy + o + p);
      v128.store(dw + p, f32x4.add(v128.load(dw + p), f32x4.mul(g, xHat)));
      v128.store(dx + o + p, f32x4.mul(s, f32x4.sub(f32x4.mul(g, v128.load(w + p)), f32x4.mul(xHat, m))));
    }
    for (; c < cols; c++) {
      const p = <usize>c << 2;
      const xHat = load<f32>(x + o + p) * rstd;
      const g = load<f32>(dy + o + p);
      store<f32>(dw + p, load<f32>(dw + p) + g * xHat);
      store<f32>(dx + o + p, rstd * (g * load<f32>(w + p) - xHat * meanGX));
    }
  }
}

/** Row mean and rstd into stats[0], stats[1]. */
@inline function meanRstd(x: usize, cols: i32, eps: f32): v128 {
  const mean = rowSum(x, cols) / <f32>cols;
  const mv = f32x4.splat(mean);
  let accv = f32x4.splat(0);
  let c = 0;
  for (; c + 4 <= cols; c += 4) {
    const d = f32x4.sub(v128.load(x + (<usize>c << 2)), mv);
    accv = f32x4.add(accv, f32x4.mul(d, d));
  }
  let acc = hsum(accv);
  for (; c < cols; c++) {
    const d = load<f32>(x + (<usize>c << 2)) - mean;
    acc += d * d;
  }
  return f32x4.replace_lane(f32x4.splat(mean), 1, <f32>1.0 / Mathf.sqrt(acc / <f32>cols + eps));
}

export function layerNormForward(x: usize, w: usize, b: usize, y: usize, rows: i32, cols: i32, eps: f32): void {
  for (let r = 0; r < rows; r++) {
    const o = <usize>(r * cols) << 2;
    const stats = meanRstd(x + o, cols, eps);
    const mean = f32x4.extract_lane(stats, 0);
    const rstd = f32x4.extract_lane(stats, 1);
    for (let c = 0; c < cols; c++) {
      const p = <usize>c << 2;
      store<f32>(y + o + p, (load<f32>(x + o + p) - mean) * rstd * load<f32>(w + p) + load<f32>(b + p));
    }
  }
}

/** dw and db must be zeroed by the caller. */
export function layerNormBackward(x: usize, w: usize, dy: usize, dx: usize, dw: usize, db: usize, rows: i32, cols: i32, eps: f32): void {
  for (let r = 0; r < rows; r++) {
    const o = <usize>(r * cols) << 2;
    const stats = meanRstd(x + o, cols, eps);
    const mean = f32x4.extract_lane(stats, 0);
    const rstd = f32x4.extract_lane(stats, 1);
    let meanG: f32 = 0;
    let meanGX: f32 = 0;
    for (let c = 0; c < cols; c++) {
      const p = <usize>c << 2;
      const xHat = (load<f32>(x + o + p) - mean) * rstd;
      const d = load<f32>(dy + o + p);
      const g = d * load<f32>(w + p);
      store<f32>(dw + p, load<f32>(dw + p) + d * xHat);
      store<f32>(db + p, load<f32>(db + p) + d);
      meanG += g;
      meanGX += g * xHat;
    }
    meanG /= <f32>cols;
    meanGX /= <f32>cols;
    for (let c = 0; c < cols; c++) {
      const p = <usize>c << 2;
      const xHat = (load<f32>(x + o + p) - mean) * rstd;
      store<f32>(dx + o + p, rstd * (load<f32>(dy + o + p) * load<f32>(w + p) - meanG - xHat * meanGX));
    }
  }
}
