// Cross-entropy helpers over rows of logits: log-sum-exp (also chunk by chunk) and the softmax-minus-one-hot gradient.
import { rowMax, rowSumExp } from './reduce';

/**
 * Folds a chunk (rows × width, row stride ld) into running (max, sum) pairs: sum is relative to max and is
 * rescaled when the max grows. runMax/runSum are float32 arrays of `rows`.
 */
export function lseAbsorb(logits: usize, rows: i32, width: i32, ld: i32, runMax: usize, runSum: usize): void {
  for (let r = 0; r < rows; r++) {
    const row = logits + (<usize>(r * ld) << 2);
    const m0 = load<f32>(runMax + (<usize>r << 2));
    const m = max(m0, rowMax(row, width));
    if (m == -Infinity) continue;
    const s = load<f32>(runSum + (<usize>r << 2)) * Mathf.exp(m0 - m) + rowSumExp(row, width, m, 0);
    store<f32>(runMax + (<usize>r << 2), m);
    store<f32>(runSum + (<usize>r << 2), s);
  }
}

/**
 * dlogits[r, v] = (exp(logits[r, v] − lse[r]) − [v = target[r] − col0]) · dloss[r], 0 on ignored rows; for a chunk
 * of columns starting at col0 (row stride ld for both logits and dlogits).
 */
export function softmaxXentGrad(logits: usize, lse: usize, targets: usize, dloss: usize, dlogits: usize, rows: i32, width: i32, ld: i32, col0: i32, ignoreIndex: i32): void {
  for (let r = 0; r < rows; r++) {
    const row = logits + (<usize>(r * ld) << 2);
    const out = dlogits + (<usize>(r * ld) << 2);
    const target = load<i32>(targets + (<usize>r << 2));
    if (target == ignoreIndex) {
      memory.fill(out, 0, <usize>width << 2);
      continue;
    }
    const scale = load<f32>(dloss + (<usize>r << 2));
    rowSumExp(row, width, load<f32>(lse + (<usize>r << 2)), out);
    const s = f32x4.splat(scale);
    let i = 0;
    for (; i + 4 <= width; i += 4) v128.store(out + (<usize>i << 2), f32x4.mul(v128.load(out + (<usize>i << 2)), s));
    for (; i < width; i++) store<f32>(out + (<usize>i << 2), load<f32>(out + (<usize>i << 2)) * scale);
    const local = target - col0;
    if (local >= 0 && local < width) store<f32>(out + (<usize>local << 2), load<f32>(out + (<usize>local << 2)) - scale);
  }
}
