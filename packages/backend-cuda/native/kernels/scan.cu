// Selective scan (Mamba-1), token-major, fp32 state, chunked over the sequence.
//
//   dt_t = softplus(delta_t + deltaBias)        h_t = exp(dt_t·A) ⊙ h_{t−1} + dt_t·B_t·u_t      (h_{−1} = h0 or 0)
//   y_t  = (Σ_n h_t·C_t + D·u_t) · silu(z_t)
//
// Shapes: u, delta, z, y (B, L, E); A (E, N); Bm, Cm (B, L, N); D, deltaBias (E); h0, hLast (B, E, N).
//
// The recurrence is linear in h, so a chunk [t0, t1) maps its entry state H to P ⊙ H + hloc with
// P = Π exp(dt_t·A) = exp(A·Σ dt_t): a chunk is summarised by Σ dt (one number per channel) and hloc, its state
// from zero. Forward: (1) every chunk computes (Σ dt, hloc) in parallel, (2) one pass over the chunks turns hloc into
// chunk-entry states in place (the only states ever stored: (B, chunks, N, E), channel-fastest so every access is
// coalesced), (3) every chunk replays itself from its entry state and writes y.
//
// Backward: the same summaries and carries for the states and for the adjoint running backwards
// (dh_{t−1} = a_t·(dh_t + g_t·C_t)), then one thread per (b, chunk of ≤ 16 steps, e) recomputes its chunk state by
// state: for each n the 16 states h_t live in registers, are walked forwards (y's pre-gate sum, the C gradient) and
// back (the adjoint, the A/Δ/u gradients, the B gradient). Per-step values (Δ, u, the gated dy, and the per-step
// gradient sums) stay in registers across the n loop, so nothing spills to local memory. The B/C gradients are sums
// over channels: a warp reduces its 16 per-step values at once (a halving butterfly, 16 shuffles for 16 sums), into
// per-warp partials; dA, dD and dΔbias go to per-thread partials; small kernels add the partials in a fixed order
// (no atomics: gradients are reproducible run to run).
//
// Every kernel loads a thread's token values (u, Δ, z, dy) for a group of steps at once, with the dtype switch outside
// the loads, and the chunk kernel loads state n+1's entry state and adjoint while it works on state n: a memory
// latency per group instead of per step (serialised per-step loads were most of the previous kernels' time).
#include "device.cuh"
#include "../profile.h"

namespace mcuda {
namespace {

constexpr int kThreads = 128;
/** Steps per backward chunk: the per-step register arrays of chunkBackwardKernel have this length. */
constexpr int kBackwardChunk = 16;
/** Forward kernels stage B and C in shared memory this many steps at a time. */
constexpr int kTile = 32;
constexpr float kLog2e = 1.4426950408889634f;

/** 2^x on the special-function unit (relative error ~2^-22; results below 2^-126 flush to 0, as h's decay would). */
__device__ __forceinline__ float exp2Fast(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

struct Scan {
  In u, delta, A, Bm, Cm, D, z, deltaBias, h0;
  bool softplus;
  long long B, L, E, N;

  __device__ __forceinline__ long long tok(long long b, long long t, long long e) const { return (b * L + t) * E + e; }
  __device__ __forceinline__ long long bcIdx(long long b, long long t, long long n) const { return (b * L + t) * N + n; }
  /** (b, chunk c, n, e) in the per-chunk state arrays (B, chunks, N, E). */
  __device__ __forceinline__ long long chunkState(long long b, long long c, long long nc, long long n, long long e) const {
    return ((b * nc + c) * N + n) * E + e;
  }
  /** (b, chunk c, e) in the per-chunk arrays (B, chunks, E). */
  __device__ __forceinline__ long long chunkLane(long long b, long long c, long long nc, long long e) const {
    return (b * nc + c) * E + e;
  }
};

struct Step {
  float dt;
  float raw;
};

__device__ __forceinline__ Step stepOf(const Scan& s, long long i, long long e) {
  float raw = s.deltaBias.present() ? s.delta[i] + s.deltaBias[e] : s.delta[i];
  return Step{s.softplus ? softplusf(raw) : raw, raw};
}

/** Position of this thread: e across threads (coalesced), chunk and batch across the grid. */
struct Place {
  long long e, c, b;
  bool active;
};

__device__ __forceinline__ Place place(const Scan& s) {
  Place p;
  p.e = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  p.c = blockIdx.y;
  p.b = blockIdx.z;
  p.active = p.e < s.E;
  if (!p.active) p.e = s.E - 1;  // inactive lanes read valid memory, take part in block barriers, write nothing
  return p;
}

/** A·log2(e) for each state of channel e (exp(dt·A) = 2^(dt·A·log2 e)). */
template <int MAXN>
__device__ __forceinline__ void loadA2(const Scan& s, long long e, float (&A2)[MAXN]) {
#pragma unroll
  for (int n = 0; n < MAXN; n++) A2[n] = n < s.N ? s.A[e * s.N + n] * kLog2e : 0.0f;
}

/** rows[k][n] = src[b, t + k, n] for k < len (as float, zero past N): the block's B or C rows, step-major. */
template <int MAXN>
__device__ __forceinline__ void loadRows(const Scan& s, In src, long long b, long long t, int len, float (*rows)[MAXN]) {
  for (int k = threadIdx.x; k < len * MAXN; k += blockDim.x) {
    int r = k / MAXN, n = k % MAXN;
    rows[r][n] = n < s.N ? src[s.bcIdx(b, t + r, n)] : 0.0f;
  }
}

/** The state entering (b, chunk c, e): from the chunk-entry array, or h0 when there is a single chunk. */
__device__ __forceinline__ float entryState(const Scan& s, const float* entry, long long b, long long c, long long nc,
                                            long long n, long long e) {
  if (entry) return entry[s.chunkState(b, c, nc, n, e)];
  return s.h0.present() ? s.h0[(b * s.E + e) * s.N + n] : 0.0f;
}

/** v[k] = x[base + min(k, len − 1)·stride] as float, and 0 for k ≥ len. The dtype switch sits outside the loads, so
 *  the K loads are in flight together: one memory latency per K steps instead of one per step. */
template <int K>
__device__ __forceinline__ void loadStrided(In x, long long base, long long stride, int len, float (&v)[K]) {
  switch (x.dtype) {
    case F32: {
      const float* p = static_cast<const float*>(x.p);
#pragma unroll
      for (int k = 0; k < K; k++) v[k] = p[base + min(k, len - 1) * stride];
      break;
    }
    case BF16: {
      const __nv_bfloat16* p = static_cast<const __nv_bfloat16*>(x.p);
#pragma unroll
      for (int k = 0; k < K; k++) v[k] = __bfloat162float(p[base + min(k, len - 1) * stride]);
      break;
    }
    case F16: {
      const __half* p = static_cast<const __half*>(x.p);
#pragma unroll
      for (int k = 0; k < K; k++) v[k] = __half2float(p[base + min(k, len - 1) * stride]);
      break;
    }
    default: {
#pragma unroll
      for (int k = 0; k < K; k++) v[k] = x[base + min(k, len - 1) * stride];
    }
  }
#pragma unroll
  for (int k = 0; k < K; k++) {
    if (k >= len) v[k] = 0.0f;
  }
}

/** dt for K steps from x = delta (raw values in place): softplus(delta + deltaBias) or delta + deltaBias, 0 past len. */
template <int K>
__device__ __forceinline__ void stepsDt(const Scan& s, long long e, int len, float (&raw)[K], float (&dt)[K]) {
  const float bias = s.deltaBias.present() ? s.deltaBias[e] : 0.0f;
#pragma unroll
  for (int k = 0; k < K; k++) {
    raw[k] += bias;
    dt[k] = k < len ? (s.softplus ? softplusf(raw[k]) : raw[k]) : 0.0f;
  }
}

/** Forward kernels take the steps in groups of this many (their loads overlap). */
constexpr int kGroup = 8;

/** Forward (1): Σ dt and the chunk's state from zero. */
template <int MAXN>
__global__ void __launch_bounds__(kThreads) chunkSummaryKernel(Scan s, long long T, long long nc, float* dtSum, float* hloc) {
  __shared__ float Brows[kTile][MAXN];
  Place p = place(s);
  float A2[MAXN], h[MAXN];
  loadA2(s, p.e, A2);
#pragma unroll
  for (int n = 0; n < MAXN; n++) h[n] = 0.0f;
  float sum = 0.0f;
  long long t0 = p.c * T, t1 = min(s.L, t0 + T);
  for (long long tt = t0; tt < t1; tt += kTile) {
    int len = static_cast<int>(min((long long)kTile, t1 - tt));
    __syncthreads();
    loadRows<MAXN>(s, s.Bm, p.b, tt, len, Brows);
    __syncthreads();
    for (int k0 = 0; k0 < len; k0 += kGroup) {
      int cnt = min(kGroup, len - k0);
      long long base = s.tok(p.b, tt + k0, p.e);
      float raw[kGroup], dt[kGroup], u[kGroup];
      loadStrided(s.delta, base, s.E, cnt, raw);
      loadStrided(s.u, base, s.E, cnt, u);
      stepsDt(s, p.e, cnt, raw, dt);
#pragma unroll
      for (int k = 0; k < kGroup; k++) {
        if (k < cnt) {
          float dtu = dt[k] * u[k];
          sum += dt[k];
#pragma unroll
          for (int n = 0; n < MAXN; n++) {
            if (n < s.N) h[n] = fmaf(exp2Fast(dt[k] * A2[n]), h[n], dtu * Brows[k0 + k][n]);
          }
        }
      }
    }
  }
  if (!p.active) return;
  dtSum[s.chunkLane(p.b, p.c, nc, p.e)] = sum;
#pragma unroll
  for (int n = 0; n < MAXN; n++) {
    if (n < s.N) hloc[s.chunkState(p.b, p.c, nc, n, p.e)] = h[n];
  }
}

/** (2) One thread per (b, n, e) walks the chunks. States, in order: entry[0] = h0, entry[c+1] = P_c·entry[c] +
 *  hloc[c], written over hloc. Adjoints (backward only), last chunk first: exit[nc−1] = dhLast,
 *  exit[c−1] = P_c·exit[c] + gloc[c], written over gloc. P_c = exp(A·Σ_c dt). */
__global__ void chunkCarryKernel(Scan s, long long nc, const float* dtSum, float* states, float* adjoints, In dhLast) {
  constexpr int K = 8;  // chunks whose values are loaded together before any is overwritten
  long long total = s.B * s.N * s.E;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long e = i % s.E, n = (i / s.E) % s.N, b = i / (s.E * s.N);
    float A2 = s.A[e * s.N + n] * kLog2e;
    long long stateIdx = (b * s.E + e) * s.N + n;
    if (states) {
      float H = s.h0.present() ? s.h0[stateIdx] : 0.0f;
      for (long long c0 = 0; c0 < nc; c0 += K) {
        float local[K], decay[K];
#pragma unroll
        for (int j = 0; j < K; j++) {
          long long c = min(c0 + j, nc - 1);
          local[j] = states[s.chunkState(b, c, nc, n, e)];
          decay[j] = dtSum[s.chunkLane(b, c, nc, e)];
        }
#pragma unroll
        for (int j = 0; j < K; j++) {
          if (c0 + j < nc) {
            states[s.chunkState(b, c0 + j, nc, n, e)] = H;
            H = fmaf(exp2Fast(A2 * decay[j]), H, local[j]);
          }
        }
      }
    }
    if (adjoints) {
      float G = dhLast.present() ? dhLast[stateIdx] : 0.0f;
      for (long long c0 = nc - 1; c0 >= 0; c0 -= K) {
        float local[K], decay[K];
#pragma unroll
        for (int j = 0; j < K; j++) {
          long long c = max(c0 - j, 0LL);
          local[j] = adjoints[s.chunkState(b, c, nc, n, e)];
          decay[j] = dtSum[s.chunkLane(b, c, nc, e)];
        }
#pragma unroll
        for (int j = 0; j < K; j++) {
          if (c0 - j >= 0) {
            adjoints[s.chunkState(b, c0 - j, nc, n, e)] = G;
            G = fmaf(exp2Fast(A2 * decay[j]), G, local[j]);
          }
        }
      }
    }
  }
}

/** Forward (3): replay each chunk from its entry state, writing y; the last chunk writes hLast. */
template <int MAXN>
__global__ void __launch_bounds__(kThreads) chunkOutputKernel(Scan s, long long T, long long nc, const float* entry, Out y, Out hLast) {
  __shared__ float Brows[kTile][MAXN];
  __shared__ float Crows[kTile][MAXN];
  Place p = place(s);
  float A2[MAXN], h[MAXN];
  loadA2(s, p.e, A2);
#pragma unroll
  for (int n = 0; n < MAXN; n++) h[n] = n < s.N ? entryState(s, entry, p.b, p.c, nc, n, p.e) : 0.0f;
  const float De = s.D.present() ? s.D[p.e] : 0.0f;
  long long t0 = p.c * T, t1 = min(s.L, t0 + T);
  for (long long tt = t0; tt < t1; tt += kTile) {
    int len = static_cast<int>(min((long long)kTile, t1 - tt));
    __syncthreads();
    loadRows<MAXN>(s, s.Bm, p.b, tt, len, Brows);
    loadRows<MAXN>(s, s.Cm, p.b, tt, len, Crows);
    __syncthreads();
    for (int k0 = 0; k0 < len; k0 += kGroup) {
      int cnt = min(kGroup, len - k0);
      long long base = s.tok(p.b, tt + k0, p.e);
      float raw[kGroup], dt[kGroup], u[kGroup], gate[kGroup];
      loadStrided(s.delta, base, s.E, cnt, raw);
      loadStrided(s.u, base, s.E, cnt, u);
      if (s.z.present()) loadStrided(s.z, base, s.E, cnt, gate);
      stepsDt(s, p.e, cnt, raw, dt);
#pragma unroll
      for (int k = 0; k < kGroup; k++) {
        if (k < cnt) {
          float dtu = dt[k] * u[k];
          float out = De * u[k];
#pragma unroll
          for (int n = 0; n < MAXN; n++) {
            if (n < s.N) {
              h[n] = fmaf(exp2Fast(dt[k] * A2[n]), h[n], dtu * Brows[k0 + k][n]);
              out = fmaf(h[n], Crows[k0 + k][n], out);
            }
          }
          if (p.active) y.set(base + k * s.E, s.z.present() ? out * siluf(gate[k]) : out);
        }
      }
    }
  }
  if (p.active && hLast.present() && p.c == nc - 1) {
#pragma unroll
    for (int n = 0; n < MAXN; n++) {
      if (n < s.N) hLast.set((p.b * s.E + p.e) * s.N + n, h[n]);
    }
  }
}

constexpr int R = kBackwardChunk;

/** The per-step values of one backward chunk (steps past its end are inert: dt = u = g = 0, so a = 1 and nothing
 *  flows). Inactive lanes get u = g = 0 too, so their B/C gradient terms vanish from the warp sums. */
struct ChunkSteps {
  float dt[R], u[R], g[R];
};

__device__ __forceinline__ void loadSteps(const Scan& s, In dy, const Place& p, long long t0, int len, ChunkSteps& st) {
  long long base = s.tok(p.b, t0, p.e);
  float raw[R];
  loadStrided(s.delta, base, s.E, len, raw);
  loadStrided(s.u, base, s.E, len, st.u);
  loadStrided(dy, base, s.E, len, st.g);
  if (s.z.present()) {
    float z[R];
    loadStrided(s.z, base, s.E, len, z);
#pragma unroll
    for (int r = 0; r < R; r++) st.g[r] *= siluf(z[r]);
  }
  stepsDt(s, p.e, len, raw, st.dt);
  if (!p.active) {
#pragma unroll
    for (int r = 0; r < R; r++) st.u[r] = st.g[r] = 0.0f;
  }
}

/** cols[n][r] = src[b, t0 + r, n] (zero past the chunk or past N): the block's B or C values, state-major so that a
 *  state's R values are contiguous (read as float4). */
template <int MAXN>
__device__ __forceinline__ void loadColumns(const Scan& s, In src, long long b, long long t0, int len, float (*cols)[R]) {
  for (int k = threadIdx.x; k < MAXN * R; k += blockDim.x) {
    int n = k / R, r = k % R;
    cols[n][r] = (n < s.N && r < len) ? src[s.bcIdx(b, t0 + r, n)] : 0.0f;
  }
}

__device__ __forceinline__ void readColumn(const float (*cols)[R], int n, float (&v)[R]) {
  const float4* q = reinterpret_cast<const float4*>(cols[n]);
#pragma unroll
  for (int k = 0; k < R / 4; k++) {
    float4 x = q[k];
    v[4 * k] = x.x;
    v[4 * k + 1] = x.y;
    v[4 * k + 2] = x.z;
    v[4 * k + 3] = x.w;
  }
}

/** One butterfly level: lanes that differ in `bit` swap half of their `2·HALF` values and each keeps the sums of
 *  the other half (the upper lane the upper half). */
template <int HALF>
__device__ __forceinline__ void butterflyLevel(float (&v)[16], int lane) {
  const bool upper = (lane & (HALF * 2)) != 0;
#pragma unroll
  for (int i = 0; i < HALF; i++) {
    float send = upper ? v[i] : v[i + HALF];
    float keep = upper ? v[i + HALF] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, HALF * 2);
  }
}

/** Sums v[j] (j < 16) over the warp's 32 lanes with 16 shuffles: each level sends half of the remaining values to the
 *  partner lane and keeps the other half. Lane l returns the sum for j = l / 2. Fixed order: deterministic. */
__device__ __forceinline__ float warpSum16(float (&v)[16]) {
  static_assert(R == 16, "warpSum16 reduces one backward chunk of 16 steps");
  const int lane = threadIdx.x & 31;
  butterflyLevel<8>(v, lane);  // lanes l, l^16
  butterflyLevel<4>(v, lane);  // l, l^8
  butterflyLevel<2>(v, lane);  // l, l^4
  butterflyLevel<1>(v, lane);  // l, l^2
  return v[0] + __shfl_xor_sync(0xffffffffu, v[0], 1);
}

/** Backward (1): per chunk, Σ dt, the state from zero (hloc) and the adjoint it sends to its left from a zero adjoint
 *  at its right end (gloc). One state at a time, like the chunk kernel below. */
template <int MAXN>
__global__ void __launch_bounds__(kThreads) chunkSummaryBackwardKernel(Scan s, In dy, long long T, long long nc,
                                                                       float* dtSum, float* hloc, float* gloc) {
  __shared__ __align__(16) float Bcols[MAXN][R];
  __shared__ __align__(16) float Ccols[MAXN][R];
  Place p = place(s);
  long long t0 = p.c * T;
  int len = static_cast<int>(min(T, s.L - t0));
  loadColumns<MAXN>(s, s.Bm, p.b, t0, len, Bcols);
  loadColumns<MAXN>(s, s.Cm, p.b, t0, len, Ccols);
  ChunkSteps st;
  loadSteps(s, dy, p, t0, len, st);
  __syncthreads();
  if (!p.active) return;
  float sum = 0.0f;
#pragma unroll
  for (int r = 0; r < R; r++) sum += st.dt[r];
  dtSum[s.chunkLane(p.b, p.c, nc, p.e)] = sum;
#pragma unroll 1
  for (int n = 0; n < s.N; n++) {
    const float A2 = s.A[p.e * s.N + n] * kLog2e;
    float Bv[R], Cv[R], a[R];
    readColumn(Bcols, n, Bv);
    readColumn(Ccols, n, Cv);
    float h = 0.0f, dh = 0.0f;
#pragma unroll
    for (int r = 0; r < R; r++) {
      a[r] = exp2Fast(st.dt[r] * A2);
      h = fmaf(a[r], h, st.dt[r] * st.u[r] * Bv[r]);
    }
#pragma unroll
    for (int r = R - 1; r >= 0; r--) dh = fmaf(st.g[r], Cv[r], dh) * a[r];
    long long k = s.chunkState(p.b, p.c, nc, n, p.e);
    hloc[k] = h;
    gloc[k] = dh;
  }
}

/** Per-thread and per-warp partial sums, added up afterwards in a fixed order. */
struct ScanGrads {
  Out du, ddelta, dz, dh0;
  float* dBpart;     // (warps, B, N, L): one value per warp of 32 channels
  float* dCpart;
  float* dApart;     // (B·chunks, N, E): one value per thread
  float* dDpart;     // (B·chunks, E); null without D
  float* dbiasPart;  // (B·chunks, E); null without deltaBias
  long long warps;   // ceil(E / 32)
};

/** Reduces the warp's per-step values v and writes them to part (warps, B, N, L) at steps t0… of state n. */
__device__ __forceinline__ void writeWarpPartial(const Scan& s, const ScanGrads& gr, float* part, float (&v)[R], long long b,
                                                 long long n, long long t0, int len) {
  float total = warpSum16(v);
  const int lane = threadIdx.x & 31, j = lane >> 1;
  long long warp = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;  // warps past E hold only inactive lanes
  if ((lane & 1) == 0 && j < len && warp < gr.warps) part[((warp * s.B + b) * s.N + n) * s.L + t0 + j] = total;
}

/** Backward (3): per chunk, for each state n, recompute the chunk's states from the entry state, then walk back. */
template <int MAXN>
__global__ void __launch_bounds__(kThreads) chunkBackwardKernel(Scan s, In dy, In dhLast, long long T, long long nc,
                                                                const float* entry, const float* exitAdjoint, ScanGrads gr) {
  __shared__ __align__(16) float Bcols[MAXN][R];
  __shared__ __align__(16) float Ccols[MAXN][R];
  Place p = place(s);
  long long t0 = p.c * T;
  int len = static_cast<int>(min(T, s.L - t0));
  loadColumns<MAXN>(s, s.Bm, p.b, t0, len, Bcols);
  loadColumns<MAXN>(s, s.Cm, p.b, t0, len, Ccols);
  ChunkSteps st;
  loadSteps(s, dy, p, t0, len, st);
  __syncthreads();

  // Per-step sums over the states: Σ_n dh·a·h_{t−1}·A_n (→ ddt), Σ_n dh·B_n (→ du, ddt), Σ_n h·C_n (→ dz).
  float xA[R], dhB[R], pre[R];
#pragma unroll
  for (int r = 0; r < R; r++) xA[r] = dhB[r] = pre[r] = 0.0f;
  const long long slot = p.b * nc + p.c;  // this thread's row in the (B·chunks, …) partials

  // State n's A, entry state and exit adjoint are loaded one iteration ahead (their memory latency overlaps work).
  auto exitOf = [&](int n) {
    return exitAdjoint ? exitAdjoint[s.chunkState(p.b, p.c, nc, n, p.e)]
                       : (dhLast.present() ? dhLast[(p.b * s.E + p.e) * s.N + n] : 0.0f);
  };
  float nextA = s.N > 0 ? s.A[p.e * s.N] : 0.0f;
  float nextEntry = s.N > 0 ? entryState(s, entry, p.b, p.c, nc, 0, p.e) : 0.0f;
  float nextExit = s.N > 0 ? exitOf(0) : 0.0f;
#pragma unroll 1
  for (int n = 0; n < s.N; n++) {
    const float A = nextA, A2 = A * kLog2e;
    const long long stateIdx = (p.b * s.E + p.e) * s.N + n;
    const float hIn = nextEntry;
    float dh = nextExit;
    if (n + 1 < s.N) {
      nextA = s.A[p.e * s.N + n + 1];
      nextEntry = entryState(s, entry, p.b, p.c, nc, n + 1, p.e);
      nextExit = exitOf(n + 1);
    }
    float Bv[R], Cv[R], h[R], part[R];
    readColumn(Bcols, n, Bv);
    readColumn(Ccols, n, Cv);
    float prev = hIn;
#pragma unroll
    for (int r = 0; r < R; r++) {
      prev = fmaf(exp2Fast(st.dt[r] * A2), prev, st.dt[r] * st.u[r] * Bv[r]);
      h[r] = prev;
      pre[r] = fmaf(prev, Cv[r], pre[r]);
      part[r] = st.g[r] * prev;  // dC_t[n] = Σ_e g_t·h_t
    }
    writeWarpPartial(s, gr, gr.dCpart, part, p.b, n, t0, len);

    float dA = 0.0f;
#pragma unroll
    for (int r = R - 1; r >= 0; r--) {
      dh = fmaf(st.g[r], Cv[r], dh);  // the adjoint of h_t
      dhB[r] = fmaf(dh, Bv[r], dhB[r]);
      part[r] = dh * st.dt[r] * st.u[r];  // dB_t[n] = Σ_e dh_t·dt_t·u_t
      float dhNext = dh * exp2Fast(st.dt[r] * A2);  // the adjoint of h_{t−1} (a_t recomputed: fewer registers)
      float x = dhNext * (r > 0 ? h[r - 1] : hIn);
      dA = fmaf(x, st.dt[r], dA);
      xA[r] = fmaf(x, A, xA[r]);
      dh = dhNext;
    }
    writeWarpPartial(s, gr, gr.dBpart, part, p.b, n, t0, len);
    if (p.active) {
      gr.dApart[(slot * s.N + n) * s.E + p.e] = dA;
      if (p.c == 0 && gr.dh0.present()) gr.dh0.set(stateIdx, dh);
    }
  }

  if (!p.active) return;
  const float De = s.D.present() ? s.D[p.e] : 0.0f;
  const long long base = s.tok(p.b, t0, p.e);
  float raw[R];  // delta + deltaBias, for softplus'(raw)
  if (s.softplus) {
    loadStrided(s.delta, base, s.E, len, raw);
    const float bias = s.deltaBias.present() ? s.deltaBias[p.e] : 0.0f;
#pragma unroll
    for (int r = 0; r < R; r++) raw[r] += bias;
  }
  const bool gated = s.z.present() && gr.dz.present();
  float dyv[R], z[R];
  if (gated) {
    loadStrided(dy, base, s.E, len, dyv);
    loadStrided(s.z, base, s.E, len, z);
  }
  float dD = 0.0f, dbias = 0.0f;
#pragma unroll
  for (int r = 0; r < R; r++) {
    if (r < len) {
      long long i = base + r * s.E;
      gr.du.set(i, fmaf(st.dt[r], dhB[r], st.g[r] * De));
      float ddt = fmaf(st.u[r], dhB[r], xA[r]);
      float ddtRaw = s.softplus ? ddt * softplusGradf(raw[r]) : ddt;
      gr.ddelta.set(i, ddtRaw);
      if (gated) gr.dz.set(i, dyv[r] * fmaf(De, st.u[r], pre[r]) * siluGradf(z[r]));
      dD = fmaf(st.g[r], st.u[r], dD);
      dbias += ddtRaw;
    }
  }
  if (gr.dDpart) gr.dDpart[slot * s.E + p.e] = dD;
  if (gr.dbiasPart) gr.dbiasPart[slot * s.E + p.e] = dbias;
}

/** mid[g·width + i] = Σ part[k·width + i] over the rows k of group g (rows split into groups of `per`), in order. */
__global__ void sumRowGroupsKernel(const float* part, long long rows, long long width, long long per, float* mid) {
  long long g = blockIdx.y;
  long long k0 = g * per, k1 = min(rows, k0 + per);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < width; i += (long long)gridDim.x * blockDim.x) {
    float acc = 0.0f;
    for (long long k = k0; k < k1; k++) acc += part[k * width + i];
    mid[g * width + i] = acc;
  }
}

/** Column sums of part (rows, width), in row order, with column i = (o·middle + m)·inner + j written to
 *  out[(o·inner + j)·middle + m]: (…, middle, inner) → (…, inner, middle); middle = 1 keeps the order. */
__global__ void sumRowsKernel(const float* part, long long rows, long long width, long long inner, long long middle, Out out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < width; i += (long long)gridDim.x * blockDim.x) {
    float acc = 0.0f;
    for (long long k = 0; k < rows; k++) acc += part[k * width + i];
    long long j = i % inner, m = (i / inner) % middle, o = i / (inner * middle);
    out.set((o * inner + j) * middle + m, acc);
  }
}

__global__ void copyKernel(In src, Out dst, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    dst.set(i, src[i]);
  }
}

/** One recurrent step (decode): thread per (b, e), new state written to stateOut. */
__global__ void stateUpdateKernel(Scan s, In state, float* stateOut, Out y) {
  long long total = s.B * s.E;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long e = i % s.E, b = i / s.E;
    Step st = stepOf(s, i, e);
    float x = s.u[i];
    float out = s.D.present() ? s.D[e] * x : 0.0f;
    for (long long n = 0; n < s.N; n++) {
      long long k = i * s.N + n;
      float h = expf(st.dt * s.A[e * s.N + n]) * state[k] + st.dt * s.Bm[b * s.N + n] * x;
      stateOut[k] = h;
      out += h * s.Cm[b * s.N + n];
    }
    y.set(i, s.z.present() ? out * siluf(s.z[i]) : out);
  }
}

unsigned gridFor(long long n) {
  unsigned blocks = blocksFor(n, 256), cap = multiprocessors() * 16;
  return blocks < cap ? blocks : cap;
}

/** Column sums of part (rows, width) into out (see sumRowsKernel); many rows go through groups of 32 first, so that
 *  enough threads share the work. The order of additions is fixed. */
void sumRows(const float* part, long long rows, long long width, long long inner, long long middle, Out out) {
  if (rows <= 64) {
    sumRowsKernel<<<gridFor(width), 256, 0, stream()>>>(part, rows, width, inner, middle, out);
    return;
  }
  long long per = 32;
  if ((rows + per - 1) / per > 65535) per = (rows + 65534) / 65535;
  long long groups = (rows + per - 1) / per;
  Scratch mid(groups * width * sizeof(float));
  unsigned x = blocksFor(width, 256);
  dim3 grid(x < 1024 ? x : 1024, static_cast<unsigned>(groups));
  sumRowGroupsKernel<<<grid, 256, 0, stream()>>>(part, rows, width, per, mid.as<float>());
  sumRowsKernel<<<gridFor(width), 256, 0, stream()>>>(mid.as<float>(), groups, width, inner, middle, out);
}

/** u, delta, A, B, C, D?, z?, deltaBias?, h0?, softplus, batch, length, channels, state (absent = address 0) */
Scan readScan(Args& a) {
  Scan s;
  s.u = readIn(a);
  s.delta = readIn(a);
  s.A = readIn(a);
  s.Bm = readIn(a);
  s.Cm = readIn(a);
  s.D = readIn(a);
  s.z = readIn(a);
  s.deltaBias = readIn(a);
  s.h0 = readIn(a);
  s.softplus = a.flag();
  s.B = a.i64();
  s.L = a.i64();
  s.E = a.i64();
  s.N = a.i64();
  if (s.B > 65535) throw Failure("selectiveScan: the CUDA kernels support a batch of at most 65535, got " + std::to_string(s.B));
  return s;
}

/** The largest state size N the kernels take. */
constexpr int kMaxState = 64;

/** Forward kernels keep MAXN states per thread in registers: two sizes (16, the usual Mamba N, and kMaxState) keep the
 *  build short; N below a bucket's size costs only idle predicated lanes. */
int stateBucket(long long N) {
  if (N <= 16) return 16;
  if (N <= kMaxState) return kMaxState;
  throw Failure("selectiveScan: the CUDA kernels support a state size N of at most 64, got " + std::to_string(N));
}

#define MCUDA_BY_STATE(N, KERNEL, LAUNCH, ...)                 \
  switch (stateBucket(N)) {                                    \
    case 16: KERNEL<16> LAUNCH(__VA_ARGS__); break;            \
    default: KERNEL<kMaxState> LAUNCH(__VA_ARGS__); break;     \
  }

/** Forward chunk length: enough chunks to fill the GPU when B·E alone does not. */
long long forwardChunk(const Scan& s) {
  if (options().scanForwardChunk > 0) return options().scanForwardChunk;
  long long lanes = s.B * s.E;
  long long wanted = (static_cast<long long>(multiprocessors()) * 2048 + lanes - 1) / lanes;
  if (wanted <= 1 || s.L <= 64) return s.L > 0 ? s.L : 1;
  long long T = (s.L + wanted - 1) / wanted;
  return T < 32 ? 32 : T;
}

long long backwardChunk(const Scan& s) {
  long long T = options().scanBackwardChunk > 0 ? options().scanBackwardChunk : kBackwardChunk;
  if (T > kBackwardChunk) T = kBackwardChunk;
  return s.L < T ? (s.L > 0 ? s.L : 1) : T;
}

dim3 chunkGrid(const Scan& s, long long nc) {
  if (nc > 65535) throw Failure("selectiveScan: too many sequence chunks (" + std::to_string(nc) + ")");
  return dim3(blocksFor(s.E, kThreads), static_cast<unsigned>(nc), static_cast<unsigned>(s.B));
}

#define CHUNK_LAUNCH(grid) <<<grid, kThreads, 0, stream()>>>

/** scan prefix, y, hLast */
void selectiveScanOp(Args& a) {
  Scan s = readScan(a);
  Out y = readOut(a), hLast = readOut(a);
  if (s.B * s.E == 0) return;
  long long stateCount = s.B * s.E * s.N;
  if (s.L == 0) {
    // No tokens: the final state is the initial state.
    if (s.h0.present()) copyKernel<<<gridFor(stateCount), 256, 0, stream()>>>(s.h0, hLast, stateCount);
    else zeroFill(hLast.p, stateCount * sizeof(float));
    return;
  }
  long long T = forwardChunk(s);
  long long nc = (s.L + T - 1) / T;
  dim3 grid = chunkGrid(s, nc);
  if (nc == 1) {
    MCUDA_BY_STATE(s.N, chunkOutputKernel, CHUNK_LAUNCH(grid), s, T, nc, nullptr, y, hLast);
    return;
  }
  Scratch dtSum(s.B * nc * s.E * sizeof(float)), states(stateCount * nc * sizeof(float));
  {
    MCUDA_PROFILE_RANGE("scan.forward summaries+carries");
    MCUDA_BY_STATE(s.N, chunkSummaryKernel, CHUNK_LAUNCH(grid), s, T, nc, dtSum.as<float>(), states.as<float>());
    chunkCarryKernel<<<gridFor(stateCount), 256, 0, stream()>>>(s, nc, dtSum.as<float>(), states.as<float>(), nullptr,
                                                               In{nullptr, F32});
  }
  MCUDA_BY_STATE(s.N, chunkOutputKernel, CHUNK_LAUNCH(grid), s, T, nc, states.as<float>(), y, hLast);
}

/** dy, dhLast?, scan prefix, then the gradients: du, ddelta, dA, dB, dC, dD?, dz?, ddeltaBias?, dh0? */
void selectiveScanGradOp(Args& a) {
  In dy = readIn(a), dhLast = readIn(a);
  Scan s = readScan(a);
  stateBucket(s.N);  // rejects N > kMaxState
  Out du = readOut(a), ddelta = readOut(a), dA = readOut(a), dB = readOut(a), dC = readOut(a);
  Out dD = readOut(a), dz = readOut(a), dbias = readOut(a), dh0 = readOut(a);

  long long E = s.E, N = s.N, BL = s.B * s.L;
  long long stateCount = s.B * E * N;
  if (s.L == 0 || s.B * E == 0) {
    // No tokens (or no lanes): the parameter gradients are zero and dh0 = dhLast.
    zeroFill(dA.p, E * N * bytesOf(dA.dtype));
    zeroFill(dB.p, BL * N * bytesOf(dB.dtype));
    zeroFill(dC.p, BL * N * bytesOf(dC.dtype));
    if (dD.present()) zeroFill(dD.p, E * bytesOf(dD.dtype));
    if (dbias.present()) zeroFill(dbias.p, E * bytesOf(dbias.dtype));
    if (dh0.present() && stateCount > 0) {
      if (dhLast.present()) copyKernel<<<gridFor(stateCount), 256, 0, stream()>>>(dhLast, dh0, stateCount);
      else zeroFill(dh0.p, stateCount * bytesOf(dh0.dtype));
    }
    return;
  }
  long long T = backwardChunk(s);
  long long nc = (s.L + T - 1) / T;
  dim3 grid = chunkGrid(s, nc);
  long long warps = (E + 31) / 32;
  long long slots = s.B * nc;
  Scratch dBpart(warps * BL * N * sizeof(float)), dCpart(warps * BL * N * sizeof(float));
  Scratch dApart(slots * N * E * sizeof(float));
  Scratch dDpart(dD.present() ? slots * E * sizeof(float) : 0), dbiasPart(dbias.present() ? slots * E * sizeof(float) : 0);
  ScanGrads gr{du, ddelta, dz, dh0, dBpart.as<float>(), dCpart.as<float>(), dApart.as<float>(),
               dD.present() ? dDpart.as<float>() : nullptr, dbias.present() ? dbiasPart.as<float>() : nullptr, warps};
  if (nc == 1) {
    MCUDA_PROFILE_RANGE("scan.backward chunks");
    chunkBackwardKernel<kMaxState> CHUNK_LAUNCH(grid)(s, dy, dhLast, T, nc, nullptr, nullptr, gr);
  } else {
    long long chunkStates = stateCount * nc;
    Scratch dtSum(slots * E * sizeof(float)), states(chunkStates * sizeof(float)), adjoints(chunkStates * sizeof(float));
    {
      MCUDA_PROFILE_RANGE("scan.backward summaries");
      chunkSummaryBackwardKernel<kMaxState> CHUNK_LAUNCH(grid)(s, dy, T, nc, dtSum.as<float>(),
                     states.as<float>(), adjoints.as<float>());
    }
    {
      MCUDA_PROFILE_RANGE("scan.backward carries");
      chunkCarryKernel<<<gridFor(stateCount), 256, 0, stream()>>>(s, nc, dtSum.as<float>(), states.as<float>(),
                                                                 adjoints.as<float>(), dhLast);
    }
    MCUDA_PROFILE_RANGE("scan.backward chunks");
    chunkBackwardKernel<kMaxState> CHUNK_LAUNCH(grid)(s, dy, dhLast, T, nc, states.as<float>(), adjoints.as<float>(), gr);
  }
  MCUDA_PROFILE_RANGE("scan.backward partial sums");
  sumRows(dBpart.as<float>(), warps, s.B * N * s.L, s.L, N, dB);
  sumRows(dCpart.as<float>(), warps, s.B * N * s.L, s.L, N, dC);
  sumRows(dApart.as<float>(), slots, N * E, E, N, dA);
  if (dD.present()) sumRows(dDpart.as<float>(), slots, E, E, 1, dD);
  if (dbias.present()) sumRows(dbiasPart.as<float>(), slots, E, E, 1, dbias);
}

/** state, x, delta, A, B, C, D?, z?, deltaBias?, softplus, batch, channels, stateSize, y, stateOut */
void selectiveStateUpdateOp(Args& a) {
  In state = readIn(a);
  Scan s;
  s.u = readIn(a);
  s.delta = readIn(a);
  s.A = readIn(a);
  s.Bm = readIn(a);
  s.Cm = readIn(a);
  s.D = readIn(a);
  s.z = readIn(a);
  s.deltaBias = readIn(a);
  s.h0 = In{nullptr, F32};
  s.softplus = a.flag();
  s.B = a.i64();
  s.L = 1;
  s.E = a.i64();
  s.N = a.i64();
  Out y = readOut(a);
  float* stateOut = a.as<float>();
  long long n = s.B * s.E;
  if (n == 0) return;
  stateUpdateKernel<<<gridFor(n), 256, 0, stream()>>>(s, state, stateOut, y);
}

MCUDA_OP("selectiveScan", selectiveScanOp);
MCUDA_OP("selectiveScanGrad", selectiveScanGradOp);
MCUDA_OP("selectiveStateUpdate", selectiveStateUpdateOp);

}  // namespace
}  // namespace mcuda
