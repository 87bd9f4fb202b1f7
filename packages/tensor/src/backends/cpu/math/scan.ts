/**
 * Selective scan (Mamba-1 SSM), token-major layout. Reference oracle; see shared/reference/mamba-model.md §2, §8.
 *
 *   dt_t  = softplus(delta_t + deltaBias)          (softplus and bias optional)
 *   h_t   = exp(dt_t·A) ⊙ h_{t−1} + dt_t·B_t·u_t   (h_{−1} = h0, or 0)
 *   y_t   = Σ_n h_t·C_t + D·u_t
 *   y_t  ← y_t · silu(z_t)                          (when z is given)
 *
 * Shapes: u, delta, z, y: (B, L, E); A: (E, N); Bm, Cm: (B, L, N); D, deltaBias: (E); h0, hLast: (B, E, N).
 */
import type { FArray } from './common.js';
import { checkDims, checkLength, silu, siluGrad, softplus, softplusGrad } from './common.js';

export interface ScanDims {
  batch: number;
  length: number;
  channels: number;
  state: number;
}

export interface SelectiveScanInputs {
  dims: ScanDims;
  u: FArray;
  delta: FArray;
  A: FArray;
  Bm: FArray;
  Cm: FArray;
  D?: FArray | null;
  z?: FArray | null;
  deltaBias?: FArray | null;
  deltaSoftplus: boolean;
  h0?: FArray | null;
}

export interface SelectiveScanForwardArgs extends SelectiveScanInputs {
  y: FArray;
  hLast?: FArray | null;
}

/**
 * Gradient outputs are accumulated (+=). Absent D, deltaBias and h0 behave as zeros, so dD, ddeltaBias and dh0 are
 * still meaningful (the gradient at zero); dz needs z, because an absent z means "no gate", not z = 0.
 */
export interface SelectiveScanBackwardArgs extends SelectiveScanInputs {
  dy: FArray;
  dhLast?: FArray | null;
  du: FArray;
  ddelta: FArray;
  dA: FArray;
  dBm: FArray;
  dCm: FArray;
  dD?: FArray | null;
  dz?: FArray | null;
  ddeltaBias?: FArray | null;
  dh0?: FArray | null;
}

export interface StateUpdateDims {
  batch: number;
  channels: number;
  state: number;
}

export interface SelectiveStateUpdateArgs {
  dims: StateUpdateDims;
  /** (B, E, N) */
  state: FArray;
  /** x, delta, z, y: (B, E) */
  x: FArray;
  delta: FArray;
  A: FArray;
  /** Bm, Cm: (B, N) */
  Bm: FArray;
  Cm: FArray;
  D?: FArray | null;
  z?: FArray | null;
  deltaBias?: FArray | null;
  deltaSoftplus: boolean;
  y: FArray;
  /** (B, E, N); may be the same array as `state`. */
  stateOut: FArray;
}

/** The raw time step (delta + bias), before the optional softplus. */
/** Δ at element i of channel e: softplus(delta + bias) (or without the softplus). */
function timeStep(a: SelectiveScanInputs, i: number, e: number): number {
  const raw = rawDelta(a.delta[i], a.deltaBias, e);
  return a.deltaSoftplus ? softplus(raw) : raw;
}

function rawDelta(delta: number, deltaBias: FArray | null | undefined, e: number): number {
  return deltaBias ? delta + deltaBias[e] : delta;
}

function checkScanInputs(where: string, a: SelectiveScanInputs): void {
  checkDims(where, { ...a.dims });
  const { batch: B, length: L, channels: E, state: N } = a.dims;
  const ble = `(B, L, E) = (${B}, ${L}, ${E})`;
  const bln = `(B, L, N) = (${B}, ${L}, ${N})`;
  checkLength(where, 'u', a.u, B * L * E, ble);
  checkLength(where, 'delta', a.delta, B * L * E, ble);
  checkLength(where, 'z', a.z, B * L * E, ble);
  checkLength(where, 'A', a.A, E * N, `(E, N) = (${E}, ${N})`);
  checkLength(where, 'Bm', a.Bm, B * L * N, bln);
  checkLength(where, 'Cm', a.Cm, B * L * N, bln);
  checkLength(where, 'D', a.D, E, `(E) = (${E})`);
  checkLength(where, 'deltaBias', a.deltaBias, E, `(E) = (${E})`);
  checkLength(where, 'h0', a.h0, B * E * N, `(B, E, N) = (${B}, ${E}, ${N})`);
}

export function selectiveScanForward(args: SelectiveScanForwardArgs): void {
  const where = 'selectiveScanForward';
  checkScanInputs(where, args);
  const { dims, u, delta, A, Bm, Cm, D, z, deltaBias, deltaSoftplus, h0, y, hLast } = args;
  const { batch: B, length: L, channels: E, state: N } = dims;
  checkLength(where, 'y', y, B * L * E, `(B, L, E) = (${B}, ${L}, ${E})`);
  checkLength(where, 'hLast', hLast, B * E * N, `(B, E, N) = (${B}, ${E}, ${N})`);

  const h = new Float64Array(N);
  for (let b = 0; b < B; b++) {
    for (let e = 0; e < E; e++) {
      const stateBase = (b * E + e) * N;
      for (let n = 0; n < N; n++) h[n] = h0 ? h0[stateBase + n] : 0;

      for (let t = 0; t < L; t++) {
        const i = (b * L + t) * E + e;
        const bc = (b * L + t) * N;
        const dt = timeStep(args, i, e);

        let out = D ? D[e] * u[i] : 0;
        for (let n = 0; n < N; n++) {
          h[n] = Math.exp(dt * A[e * N + n]) * h[n] + dt * Bm[bc + n] * u[i];
          out += h[n] * Cm[bc + n];
        }
        y[i] = z ? out * silu(z[i]) : out;
      }

      if (hLast) for (let n = 0; n < N; n++) hLast[stateBase + n] = h[n];
    }
  }
}

/**
 * Reverse-mode gradients of the scan. Per (batch, channel) the forward states h_{−1..L−1} are recomputed and
 * stored, then walked backwards with the adjoint dh (gradient of the loss w.r.t. h_t, seeded by dhLast):
 *   dh_t     += g_t·C_t                   where g_t = dy_t·silu(z_t) is the gradient of the pre-gate output
 *   h_t       = a_t·h_{t−1} + dt_t·B_t·u_t, a_t = exp(dt_t·A)
 *   dA       += dh_t · h_{t−1} · a_t · dt_t
 *   d dt_t   += dh_t · (h_{t−1}·a_t·A + B_t·u_t)
 *   dh_{t−1}  = dh_t · a_t
 */
export function selectiveScanBackward(args: SelectiveScanBackwardArgs): void {
  const where = 'selectiveScanBackward';
  checkScanInputs(where, args);
  const { dims, u, delta, A, Bm, Cm, D, z, deltaBias, deltaSoftplus, h0 } = args;
  const { dy, dhLast, du, ddelta, dA, dBm, dCm, dD, dz, ddeltaBias, dh0 } = args;
  const { batch: B, length: L, channels: E, state: N } = dims;
  const ble = `(B, L, E) = (${B}, ${L}, ${E})`;
  const ben = `(B, E, N) = (${B}, ${E}, ${N})`;
  checkLength(where, 'dy', dy, B * L * E, ble);
  checkLength(where, 'dhLast', dhLast, B * E * N, ben);
  checkLength(where, 'du', du, B * L * E, ble);
  checkLength(where, 'ddelta', ddelta, B * L * E, ble);
  checkLength(where, 'dA', dA, E * N, `(E, N) = (${E}, ${N})`);
  checkLength(where, 'dBm', dBm, B * L * N, `(B, L, N) = (${B}, ${L}, ${N})`);
  checkLength(where, 'dCm', dCm, B * L * N, `(B, L, N) = (${B}, ${L}, ${N})`);
  checkLength(where, 'dD', dD, E, `(E) = (${E})`);
  checkLength(where, 'dz', dz, B * L * E, ble);
  checkLength(where, 'ddeltaBias', ddeltaBias, E, `(E) = (${E})`);
  checkLength(where, 'dh0', dh0, B * E * N, ben);
  if (dz && !z) throw new Error(`${where}: dz was given but z was not (without z there is no gate to differentiate).`);

  // hs[(t + 1)·N + n] = h_t[n], for t = −1 … L−1.
  const hs = new Float64Array((L + 1) * N);
  const dh = new Float64Array(N);

  for (let b = 0; b < B; b++) {
    for (let e = 0; e < E; e++) {
      const stateBase = (b * E + e) * N;

      // Forward recomputation of all states.
      for (let n = 0; n < N; n++) hs[n] = h0 ? h0[stateBase + n] : 0;
      for (let t = 0; t < L; t++) {
        const i = (b * L + t) * E + e;
        const bc = (b * L + t) * N;
        const dt = timeStep(args, i, e);
        for (let n = 0; n < N; n++) {
          const hPrev = hs[t * N + n];
          hs[(t + 1) * N + n] = Math.exp(dt * A[e * N + n]) * hPrev + dt * Bm[bc + n] * u[i];
        }
      }

      // Reverse sweep.
      for (let n = 0; n < N; n++) dh[n] = dhLast ? dhLast[stateBase + n] : 0;
      for (let t = L - 1; t >= 0; t--) {
        const i = (b * L + t) * E + e;
        const bc = (b * L + t) * N;
        const dtRaw = rawDelta(delta[i], deltaBias, e);
        const dt = deltaSoftplus ? softplus(dtRaw) : dtRaw;
        const hT = (t + 1) * N;
        const hPrevT = t * N;

        // Output y_t = gate · (Σ_n h_t·C_t + D·u_t).
        let g = dy[i];
        if (z) {
          let preGate = D ? D[e] * u[i] : 0;
          for (let n = 0; n < N; n++) preGate += hs[hT + n] * Cm[bc + n];
          if (dz) dz[i] += dy[i] * preGate * siluGrad(z[i]);
          g = dy[i] * silu(z[i]);
        }
        if (D) du[i] += g * D[e];
        if (dD) dD[e] += g * u[i];
        for (let n = 0; n < N; n++) {
          dCm[bc + n] += g * hs[hT + n];
          dh[n] += g * Cm[bc + n];
        }

        // State update h_t = a_t·h_{t−1} + dt·B_t·u_t.
        let ddt = 0;
        for (let n = 0; n < N; n++) {
          const An = A[e * N + n];
          const a = Math.exp(dt * An);
          const hPrev = hs[hPrevT + n];
          dA[e * N + n] += dh[n] * hPrev * a * dt;
          ddt += dh[n] * (hPrev * a * An + Bm[bc + n] * u[i]);
          dBm[bc + n] += dh[n] * dt * u[i];
          du[i] += dh[n] * dt * Bm[bc + n];
          dh[n] *= a;
        }

        const ddtRaw = deltaSoftplus ? ddt * softplusGrad(dtRaw) : ddt;
        ddelta[i] += ddtRaw;
        if (ddeltaBias) ddeltaBias[e] += ddtRaw;
      }

      if (dh0) for (let n = 0; n < N; n++) dh0[stateBase + n] += dh[n];
    }
  }
}

/** One recurrent step of the scan (decode): the t-th iteration of selectiveScanForward on its own. */
export function selectiveStateUpdate(args: SelectiveStateUpdateArgs): void {
  const where = 'selectiveStateUpdate';
  checkDims(where, { ...args.dims });
  const { dims, state, x, delta, A, Bm, Cm, D, z, deltaBias, deltaSoftplus, y, stateOut } = args;
  const { batch: B, channels: E, state: N } = dims;
  const be = `(B, E) = (${B}, ${E})`;
  const bn = `(B, N) = (${B}, ${N})`;
  const ben = `(B, E, N) = (${B}, ${E}, ${N})`;
  checkLength(where, 'state', state, B * E * N, ben);
  checkLength(where, 'x', x, B * E, be);
  checkLength(where, 'delta', delta, B * E, be);
  checkLength(where, 'A', A, E * N, `(E, N) = (${E}, ${N})`);
  checkLength(where, 'Bm', Bm, B * N, bn);
  checkLength(where, 'Cm', Cm, B * N, bn);
  checkLength(where, 'D', D, E, `(E) = (${E})`);
  checkLength(where, 'z', z, B * E, be);
  checkLength(where, 'deltaBias', deltaBias, E, `(E) = (${E})`);
  checkLength(where, 'y', y, B * E, be);
  checkLength(where, 'stateOut', stateOut, B * E * N, ben);

  for (let b = 0; b < B; b++) {
    for (let e = 0; e < E; e++) {
      const i = b * E + e;
      const dtRaw = rawDelta(delta[i], deltaBias, e);
      const dt = deltaSoftplus ? softplus(dtRaw) : dtRaw;

      let out = D ? D[e] * x[i] : 0;
      for (let n = 0; n < N; n++) {
        const s = i * N + n;
        const h = Math.exp(dt * A[e * N + n]) * state[s] + dt * Bm[b * N + n] * x[i];
        stateOut[s] = h;
        out += h * Cm[b * N + n];
      }
      y[i] = z ? out * silu(z[i]) : out;
    }
  }
}
