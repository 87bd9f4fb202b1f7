// Blocked float32 GEMM: C (M×N) (+)= A (M×K) · B (K×N), with A and B given by element strides (so transposes are
// free). Goto-style loops: B is packed in KC×NR column panels; A is read in place when its rows are contiguous
// (else packed in panels of MR rows); a 4×8 register-tiled SIMD micro-kernel runs over them.

const MR = 4;
const NR = 8;
const KC = 512;
const MC = 64;
const NC = 1024;

/** Scratch bytes the caller must provide (packed panels of A and B plus one edge tile). */
export function gemmScratchBytes(): i32 {
  return (MC * KC + KC * NC + MR * NR) * 4;
}

/** Packs B[k0 : k0+kc, n0 : n0+nc] into panels of NR columns, zero-padded on the right. */
function packB(b: usize, sbk: i32, sbn: i32, k0: i32, kc: i32, n0: i32, nc: i32, out: usize): void {
  for (let j = 0; j < nc; j += NR) {
    const cols = min(NR, nc - j);
    const panel = out + (<usize>(j * kc) << 2);
    if (cols == NR && sbn == 1) {
      for (let k = 0; k < kc; k++) {
        const src = b + (<usize>((k0 + k) * sbk + n0 + j) << 2);
        const dst = panel + (<usize>(k * NR) << 2);
        v128.store(dst, v128.load(src));
        v128.store(dst, v128.load(src, 16), 16);
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const dst = panel + (<usize>(k * NR) << 2);
        const row = b + (<usize>((k0 + k) * sbk) << 2);
        for (let c = 0; c < NR; c++) {
          store<f32>(dst + (<usize>c << 2), c < cols ? load<f32>(row + (<usize>((n0 + j + c) * sbn) << 2)) : 0);
        }
      }
    }
  }
}

/** Packs A[m0 : m0+mc, k0 : k0+kc] into panels of MR rows (k-major inside a panel), zero-padded at the bottom. */
function packA(a: usize, sam: i32, sak: i32, m0: i32, mc: i32, k0: i32, kc: i32, out: usize): void {
  for (let i = 0; i < mc; i += MR) {
    const rows = min(MR, mc - i);
    const panel = out + (<usize>(i * kc) << 2);
    if (rows == MR && sam == 1) {
      // Transposed A: the MR rows of one k are contiguous.
      for (let k = 0; k < kc; k++) {
        const src = a + (<usize>((k0 + k) * sak + m0 + i) << 2);
        const dst = panel + (<usize>(k * MR) << 2);
        v128.store(dst, v128.load(src));
      }
    } else {
      for (let r = 0; r < MR; r++) {
        const row = a + (<usize>((m0 + i + r) * sam + k0 * sak) << 2);
        for (let k = 0; k < kc; k++) {
          store<f32>(panel + (<usize>(k * MR + r) << 2), r < rows ? load<f32>(row + (<usize>(k * sak) << 2)) : 0);
        }
      }
    }
  }
}

/**
 * The 4×8 micro-kernel: acc = A (4×kc) · Bp (kc×8) in 8 vector accumulators; writes or adds the rows×cols
 * corner into C (row stride ldc). A's element (r, k) is at ap + r·ars + k·aks: a packed panel (ars = 4,
 * aks = 16) or rows read in place (ars = row stride, aks = 4). (Measured against 6×8 and a k-unrolled 4×8 under
 * V8: 4×8 was fastest; 6×8 runs out of the 16 xmm registers.)
 */
@inline function microKernel(ap: usize, ars: usize, aks: usize, bp: usize, kc: i32, c: usize, ldc: i32, rows: i32, cols: i32, add: bool, tile: usize): void {
  const ar2 = ars * 2, ar3 = ars * 3;
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c00 = f32x4.add(c00, f32x4.mul(a, b0));
    c01 = f32x4.add(c01, f32x4.mul(a, b1));
    a = v128.load32_splat(ap + ars);
    c10 = f32x4.add(c10, f32x4.mul(a, b0));
    c11 = f32x4.add(c11, f32x4.mul(a, b1));
    a = v128.load32_splat(ap + ar2);
    c20 = f32x4.add(c20, f32x4.mul(a, b0));
    c21 = f32x4.add(c21, f32x4.mul(a, b1));
    a = v128.load32_splat(ap + ar3);
    c30 = f32x4.add(c30, f32x4.mul(a, b0));
    c31 = f32x4.add(c31, f32x4.mul(a, b1));
    ap += aks;
    bp += NR * 4;
  }
  const stride = <usize>ldc << 2;
  if (rows == MR && cols == NR) {
    let p = c;
    if (add) {
      v128.store(p, f32x4.add(v128.load(p), c00)); v128.store(p, f32x4.add(v128.load(p, 16), c01), 16); p += stride;
      v128.store(p, f32x4.add(v128.load(p), c10)); v128.store(p, f32x4.add(v128.load(p, 16), c11), 16); p += stride;
      v128.store(p, f32x4.add(v128.load(p), c20)); v128.store(p, f32x4.add(v128.load(p, 16), c21), 16); p += stride;
      v128.store(p, f32x4.add(v128.load(p), c30)); v128.store(p, f32x4.add(v128.load(p, 16), c31), 16);
    } else {
      v128.store(p, c00); v128.store(p, c01, 16); p += stride;
      v128.store(p, c10); v128.store(p, c11, 16); p += stride;
      v128.store(p, c20); v128.store(p, c21, 16); p += stride;
      v128.store(p, c30); v128.store(p, c31, 16);
    }
    return;
  }
  // Edge tile: spill to scratch, copy the valid corner.
  v128.store(tile, c00); v128.store(tile, c01, 16);
  v128.store(tile, c10, 32); v128.store(tile, c11, 48);
  v128.store(tile, c20, 64); v128.store(tile, c21, 80);
  v128.store(tile, c30, 96); v128.store(tile, c31, 112);
  for (let r = 0; r < rows; r++) {
    const dst = c + <usize>r * stride;
    for (let j = 0; j < cols; j++) {
      const v = load<f32>(tile + (<usize>(r * NR + j) << 2));
      const p = dst + (<usize>j << 2);
      store<f32>(p, add ? load<f32>(p) + v : v);
    }
  }
}

/**
 * C (M×N, row stride ldc) = A·B, or C += A·B when `accumulate`. A's element (m, k) is at a + (m·sam + k·sak)·4,
 * B's (k, n) at b + (k·sbk + n·sbn)·4. `scratch` holds gemmScratchBytes() bytes, 16-byte aligned.
 */
export function gemm(M: i32, N: i32, K: i32, a: usize, sam: i32, sak: i32, b: usize, sbk: i32, sbn: i32, c: usize, ldc: i32, accumulate: bool, scratch: usize): void {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate) for (let m = 0; m < M; m++) memory.fill(c + (<usize>(m * ldc) << 2), 0, <usize>N << 2);
    return;
  }
  const packedA = scratch;
  const packedB = scratch + (<usize>(MC * KC) << 2);
  const tile = packedB + (<usize>(KC * NC) << 2);
  for (let n0 = 0; n0 < N; n0 += NC) {
    const nc = min(NC, N - n0);
    for (let k0 = 0; k0 < K; k0 += KC) {
      const kc = min(KC, K - k0);
      const add = accumulate || k0 > 0;
      packB(b, sbk, sbn, k0, kc, n0, nc, packedB);
      for (let m0 = 0; m0 < M; m0 += MC) {
        const mc = min(MC, M - m0);
        // Row-major A (k contiguous) is read in place for whole panels of MR rows; only a partial last panel
        // (or a transposed A) is packed.
        const direct = sak == 1;
        const full = direct ? mc - mc % MR : 0;
        if (mc > full) packA(a, sam, sak, m0 + full, mc - full, k0, kc, packedA);
        for (let j = 0; j < nc; j += NR) {
          const cols = min(NR, nc - j);
          const bp = packedB + (<usize>(j * kc) << 2);
          for (let i = 0; i < full; i += MR) {
            const cp = c + (<usize>((m0 + i) * ldc + n0 + j) << 2);
            microKernel(a + (<usize>((m0 + i) * sam + k0) << 2), <usize>sam << 2, 4, bp, kc, cp, ldc, MR, cols, add, tile);
          }
          for (let i = full; i < mc; i += MR) {
            const rows = min(MR, mc - i);
            const cp = c + (<usize>((m0 + i) * ldc + n0 + j) << 2);
            microKernel(packedA + (<usize>((i - full) * kc) << 2), 4, MR * 4, bp, kc, cp, ldc, rows, cols, add, tile);
          }
        }
      }
    }
  }
}
