// Selective scan (Mamba-1), token-major (B, L, E), float32 state. Four channels run side by side in SIMD lanes:
//   dt = softplus(delta + deltaBias), h_t = exp(dt·A) ⊙ h_{t−1} + dt·B_t·u_t, y_t = C_t·h_t + D·u_t, y ← y·silu(z)
// A, D, deltaBias, h0 are per channel (gathered into lanes); B_t, C_t are shared by all channels (splatted).
import { expv, gatherLanes, hsum, loadLanes, scatterAddLanes, scatterLanes, siluGradv, siluv, softplusGradv, softplusv, storeLanes } from './fastmath';

@inline function timeStep(delta: v128, bias: v128, softplus: bool): v128 {
  const raw = f32x4.add(delta, bias);
  return softplus ? softplusv(raw) : raw;
}

/** Optional pointers are 0 when absent. scratch: 2·N·16 bytes. */
export function scanForward(
  u: usize, delta: usize, A: usize, Bm: usize, Cm: usize, D: usize, z: usize, deltaBias: usize, h0: usize,
  y: usize, hLast: usize, B: i32, L: i32, E: i32, N: i32, softplus: bool, scratch: usize,
): void {
  const h = scratch;
  const Av = scratch + (<usize>N << 4);
  const nStride = <usize>N << 2;
  for (let e0 = 0; e0 < E; e0 += 4) {
    const cnt = min(4, E - e0);
    for (let n = 0; n < N; n++) v128.store(Av + (<usize>n << 4), gatherLanes(A + (<usize>(e0 * N + n) << 2), nStride, cnt));
    const Dv = D ? loadLanes(D + (<usize>e0 << 2), cnt) : f32x4.splat(0);
    const bias = deltaBias ? loadLanes(deltaBias + (<usize>e0 << 2), cnt) : f32x4.splat(0);
    for (let b = 0; b < B; b++) {
      for (let n = 0; n < N; n++) {
        const init = h0 ? gatherLanes(h0 + (<usize>((b * E + e0) * N + n) << 2), nStride, cnt) : f32x4.splat(0);
        v128.store(h + (<usize>n << 4), init);
      }
      for (let t = 0; t < L; t++) {
        const i = <usize>((b * L + t) * E + e0) << 2;
        const bc = <usize>((b * L + t) * N) << 2;
        const uv = loadLanes(u + i, cnt);
        const dt = timeStep(loadLanes(delta + i, cnt), bias, softplus);
        const dtu = f32x4.mul(dt, uv);
        let out = f32x4.mul(Dv, uv);
        for (let n = 0; n < N; n++) {
          const hp = h + (<usize>n << 4);
          const a = expv(f32x4.mul(dt, v128.load(Av + (<usize>n << 4))));
          const hn = f32x4.add(f32x4.mul(a, v128.load(hp)), f32x4.mul(dtu, v128.load32_splat(Bm + bc + (<usize>n << 2))));
          v128.store(hp, hn);
          out = f32x4.add(out, f32x4.mul(hn, v128.load32_splat(Cm + bc + (<usize>n << 2))));
        }
        if (z) out = f32x4.mul(out, siluv(loadLanes(z + i, cnt)));
        storeLanes(y + i, out, cnt);
      }
      if (hLast) {
        for (let n = 0; n < N; n++) scatterLanes(hLast + (<usize>((b * E + e0) * N + n) << 2), nStride, v128.load(h + (<usize>n << 4)), cnt);
      }
    }
  }
}

/**
 * Reverse-mode gradients. Outputs du, ddelta, dz (when z), dh0 (when h0 or requested) are written; dA, dBm, dCm, dD,
 * ddeltaBias are accumulated (zeroed by the caller). scratch: (L + 4)·N·16 bytes.
 */
export function scanBackward(
  u: usize, delta: usize, A: usize, Bm: usize, Cm: usize, D: usize, z: usize, deltaBias: usize, h0: usize,
  dy: usize, dhLast: usize, du: usize, ddelta: usize, dA: usize, dBm: usize, dCm: usize, dD: usize, dz: usize,
  ddeltaBias: usize, dh0: usize, B: i32, L: i32, E: i32, N: i32, softplus: bool, scratch: usize,
): void {
  const Av = scratch;
  const dh = scratch + (<usize>N << 4);
  const dAacc = scratch + (<usize>(2 * N) << 4);
  const hs = scratch + (<usize>(3 * N) << 4); // (L + 1)·N vectors: hs[t + 1] = h_t
  const nStride = <usize>N << 2;
  for (let e0 = 0; e0 < E; e0 += 4) {
    const cnt = min(4, E - e0);
    for (let n = 0; n < N; n++) {
      v128.store(Av + (<usize>n << 4), gatherLanes(A + (<usize>(e0 * N + n) << 2), nStride, cnt));
      v128.store(dAacc + (<usize>n << 4), f32x4.splat(0));
    }
    const Dv = D ? loadLanes(D + (<usize>e0 << 2), cnt) : f32x4.splat(0);
    const bias = deltaBias ? loadLanes(deltaBias + (<usize>e0 << 2), cnt) : f32x4.splat(0);
    let dDacc = f32x4.splat(0);
    let dBiasAcc = f32x4.splat(0);
    for (let b = 0; b < B; b++) {
      // Forward recomputation of every state.
      for (let n = 0; n < N; n++) {
        const init = h0 ? gatherLanes(h0 + (<usize>((b * E + e0) * N + n) << 2), nStride, cnt) : f32x4.splat(0);
        v128.store(hs + (<usize>n << 4), init);
      }
      for (let t = 0; t < L; t++) {
        const i = <usize>((b * L + t) * E + e0) << 2;
        const bc = <usize>((b * L + t) * N) << 2;
        const dt = timeStep(loadLanes(delta + i, cnt), bias, softplus);
        const dtu = f32x4.mul(dt, loadLanes(u + i, cnt));
        const prev = hs + (<usize>(t * N) << 4);
        const next = hs + (<usize>((t + 1) * N) << 4);
        for (let n = 0; n < N; n++) {
          const a = expv(f32x4.mul(dt, v128.load(Av + (<usize>n << 4))));
          const hn = f32x4.add(f32x4.mul(a, v128.load(prev + (<usize>n << 4))), f32x4.mul(dtu, v128.load32_splat(Bm + bc + (<usize>n << 2))));
          v128.store(next + (<usize>n << 4), hn);
        }
      }
      // Reverse sweep with the adjoint dh.
      for (let n = 0; n < N; n++) {
        const init = dhLast ? gatherLanes(dhLast + (<usize>((b * E + e0) * N + n) << 2), nStride, cnt) : f32x4.splat(0);
        v128.store(dh + (<usize>n << 4), init);
      }
      for (let t = L - 1; t >= 0; t--) {
        const i = <usize>((b * L + t) * E + e0) << 2;
        const bc = <usize>((b * L + t) * N) << 2;
        const uv = loadLanes(u + i, cnt);
        const raw = f32x4.add(loadLanes(delta + i, cnt), bias);
        const dt = softplus ? softplusv(raw) : raw;
        const hT = hs + (<usize>((t + 1) * N) << 4);
        const hPrevT = hs + (<usize>(t * N) << 4);
        const dyv = loadLanes(dy + i, cnt);
        let g = dyv;
        if (z) {
          const zv = loadLanes(z + i, cnt);
          let preGate = f32x4.mul(Dv, uv);
          for (let n = 0; n < N; n++) preGate = f32x4.add(preGate, f32x4.mul(v128.load(hT + (<usize>n << 4)), v128.load32_splat(Cm + bc + (<usize>n << 2))));
          storeLanes(dz + i, f32x4.mul(f32x4.mul(dyv, preGate), siluGradv(zv)), cnt);
          g = f32x4.mul(dyv, siluv(zv));
        }
        let duv = f32x4.mul(g, Dv);
        dDacc = f32x4.add(dDacc, f32x4.mul(g, uv));
        let ddt = f32x4.splat(0);
        for (let n = 0; n < N; n++) {
          const no = <usize>n << 4;
          const cOff = Cm + bc + (<usize>n << 2);
          const bOff = Bm + bc + (<usize>n << 2);
          const Bn = v128.load32_splat(bOff);
          store<f32>(dCm + bc + (<usize>n << 2), load<f32>(dCm + bc + (<usize>n << 2)) + hsum(f32x4.mul(g, v128.load(hT + no))));
          let dhn = f32x4.add(v128.load(dh + no), f32x4.mul(g, v128.load32_splat(cOff)));
          const An = v128.load(Av + no);
          const a = expv(f32x4.mul(dt, An));
          const hPrev = v128.load(hPrevT + no);
          const dhHa = f32x4.mul(f32x4.mul(dhn, hPrev), a);
          v128.store(dAacc + no, f32x4.add(v128.load(dAacc + no), f32x4.mul(dhHa, dt)));
          ddt = f32x4.add(ddt, f32x4.add(f32x4.mul(dhHa, An), f32x4.mul(f32x4.mul(dhn, Bn), uv)));
          store<f32>(dBm + bc + (<usize>n << 2), load<f32>(dBm + bc + (<usize>n << 2)) + hsum(f32x4.mul(f32x4.mul(dhn, dt), uv)));
          duv = f32x4.add(duv, f32x4.mul(f32x4.mul(dhn, dt), Bn));
          dhn = f32x4.mul(dhn, a);
          v128.store(dh + no, dhn);
        }
        const ddtRaw = softplus ? f32x4.mul(ddt, softplusGradv(raw)) : ddt;
        storeLanes(ddelta + i, ddtRaw, cnt);
        dBiasAcc = f32x4.add(dBiasAcc, ddtRaw);
        storeLanes(du + i, duv, cnt);
      }
      if (dh0) {
        for (let n = 0; n < N; n++) scatterLanes(dh0 + (<usize>((b * E + e0) * N + n) << 2), nStride, v128.load(dh + (<usize>n << 4)), cnt);
      }
    }
    for (let n = 0; n < N; n++) scatterAddLanes(dA + (<usize>(e0 * N + n) << 2), nStride, v128.load(dAacc + (<usize>n << 4)), cnt);
    if (dD) storeLanes(dD + (<usize>e0 << 2), f32x4.add(loadLanes(dD + (<usize>e0 << 2), cnt), dDacc), cnt);
    if (ddeltaBias) storeLanes(ddeltaBias + (<usize>e0 << 2), f32x4.add(loadLanes(ddeltaBias + (<usize>e0 << 2), cnt), dBiasAcc), cnt);
  }
}
