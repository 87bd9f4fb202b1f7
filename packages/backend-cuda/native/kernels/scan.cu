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

#include <memory>
#include <vector>

namespace mcuda {
namespace {

constexpr int kThreads = 128;
/** Steps per backward chunk: the per-step register arrays of chunkBackwardKernel have this length. */
constexpr int kBackwardChunk = 16;
/** Forward kernels stage B and C in shared memory this many steps at a time. */
constexpr int kTile = 32;
constexpr float kLog2e = 1.4426950408889634f;
/** The largest state size N the kernels take. */
constexpr int kMaxState = 64;

/** 2^x on the special-function unit (relative error ~2^-22; results below 2^-126 flush to 0, as h's decay would). */
__device__ __forceinline__ float exp2Fast(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Activations through __expf and an approximate division (relative error ~1e-6): every scan kernel evaluates them
// once per token and channel, where the accurate versions (IEEE division, branches) cost about as much as the N state
// updates they feed.
__device__ __forceinline__ float sigmoidFast(float x) { return __fdividef(1.0f, 1.0f + __expf(-x)); }
__device__ __forceinline__ float siluFast(float x) { return x * sigmoidFast(x); }
__device__ __forceinline__ float siluGradFast(float x) { return siluGradOf(x, sigmoidFast(x)); }
__device__ __forceinline__ float softplusFast(float x) { return x > kSoftplusThreshold ? x : log1pf(__expf(x)); }
__device__ __forceinline__ float softplusGradFast(float x) { return x > kSoftplusThreshold ? 1.0f : sigmoidFast(x); }

/** The scan's operands. The token tensors share one float type T (the host converts any that differ), so loads
 *  need no dtype switch; the per-channel parameters and the states keep their own dtypes. */
template <class T>
struct Scan {
  const T *u, *delta, *Bm, *Cm, *z;  // u, delta, z (B, L, E); Bm, Cm (B, L, N); z may be null
  In A, D, deltaBias, h0;
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

/** out[i] = v, with one uniform check instead of a dtype switch when out holds T (as the token tensors). */
template <class T>
__device__ __forceinline__ void storeAs(Out out, long long i, float v) {
  constexpr int dtype = dtypeOf<T>();
  if (out.dtype == dtype) static_cast<T*>(out.p)[i] = fromFloat<T>(v);
  else out.set(i, v);
}

/** Position of this thread: e across threads (coalesced), chunk and batch across the grid. */
struct Place {
  long long e, c, b;
  bool active;
};

__device__ __forceinline__ Place place(long long E) {
  Place p;
  p.e = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  p.c = blockIdx.y;
  p.b = blockIdx.z;
  p.active = p.e < E;
  if (!p.active) p.e = E - 1;  // inactive lanes read valid memory, take part in block barriers, write nothing
  return p;
}

/** Whether state n exists: always for EXACT kernels (N is MAXN), else n < N. */
template <int MAXN, bool EXACT>
__device__ __forceinline__ bool hasState(int n, long long N) {
  return EXACT || n < N;
}

/** A·log2(e) for each state of channel e (exp(dt·A) = 2^(dt·A·log2 e)). */
template <int MAXN, bool EXACT, class T>
__device__ __forceinline__ void loadA2(const Scan<T>& s, long long e, float (&A2)[MAXN]) {
#pragma unroll
  for (int n = 0; n < MAXN; n++) A2[n] = hasState<MAXN, EXACT>(n, s.N) ? s.A[e * s.N + n] * kLog2e : 0.0f;
}

/** rows[k][n] = src[b, t + k, n] for k < len (as float, zero past N): the block's B or C rows, step-major. */
template <int MAXN, bool EXACT, class T>
__device__ __forceinline__ void loadRows(const Scan<T>& s, const T* src, long long b, long long t, int len, float (*rows)[MAXN]) {
  for (int k = threadIdx.x; k < len * MAXN; k += blockDim.x) {
    int r = k / MAXN, n = k % MAXN;
    rows[r][n] = hasState<MAXN, EXACT>(n, s.N) ? toFloat(src[s.bcIdx(b, t + r, n)]) : 0.0f;
  }
}

/** The state entering (b, chunk c, e): from the chunk-entry array, or h0 when there is a single chunk. */
template <class T>
__device__ __forceinline__ float entryState(const Scan<T>& s, const float* entry, long long b, long long c, long long nc,
                                            long long n, long long e) {
  if (entry) return entry[s.chunkState(b, c, nc, n, e)];
  return s.h0.present() ? s.h0[(b * s.E + e) * s.N + n] : 0.0f;
}

/** v[k] = x[base + min(k, len − 1)·stride] as float, and 0 for k ≥ len: the K loads are unconditional, so they are in
 *  flight together (one memory latency per K steps instead of one per step). */
template <int K, class T>
__device__ __forceinline__ void loadStrided(const T* x, long long base, long long stride, int len, float (&v)[K]) {
#pragma unroll
  for (int k = 0; k < K; k++) v[k] = toFloat(x[base + min(k, len - 1) * stride]);
#pragma unroll
  for (int k = 0; k < K; k++) {
    if (k >= len) v[k] = 0.0f;
  }
}

/** dt for K steps from x = delta (raw values in place): softplus(delta + deltaBias) or delta + deltaBias, 0 past len
 *  (a step with dt = 0 and u = 0 leaves the state as it is). */
template <int K, class T>
__device__ __forceinline__ void stepsDt(const Scan<T>& s, long long e, int len, float (&raw)[K], float (&dt)[K]) {
  const float bias = s.deltaBias.present() ? s.deltaBias[e] : 0.0f;
#pragma unroll
  for (int k = 0; k < K; k++) {
    raw[k] += bias;
    dt[k] = k < len ? (s.softplus ? softplusFast(raw[k]) : raw[k]) : 0.0f;
  }
}

/** Forward kernels take the steps in groups of this many (their loads overlap). */
constexpr int kGroup = 8;

/** Forward (1): Σ dt and the chunk's state from zero. */
template <class T, int MAXN, bool EXACT>
__global__ void __launch_bounds__(kThreads) chunkSummaryKernel(Scan<T> s, long long span, long long nc, float* dtSum, float* hloc) {
  __shared__ __align__(16) float Brows[kTile][MAXN];
  Place p = place(s.E);
  float A2[MAXN], h[MAXN];
  loadA2<MAXN, EXACT>(s, p.e, A2);
#pragma unroll
  for (int n = 0; n < MAXN; n++) h[n] = 0.0f;
  float sum = 0.0f;
  long long t0 = p.c * span, t1 = min(s.L, t0 + span);
  for (long long tt = t0; tt < t1; tt += kTile) {
    int len = static_cast<int>(min((long long)kTile, t1 - tt));
    __syncthreads();
    loadRows<MAXN, EXACT>(s, s.Bm, p.b, tt, len, Brows);
    __syncthreads();
    for (int k0 = 0; k0 < len; k0 += kGroup) {
      int cnt = min(kGroup, len - k0);
      long long base = s.tok(p.b, tt + k0, p.e);
      float raw[kGroup], dt[kGroup], u[kGroup];
      loadStrided(s.delta, base, s.E, cnt, raw);
      loadStrided(s.u, base, s.E, cnt, u);
      stepsDt(s, p.e, cnt, raw, dt);
#pragma unroll
      for (int k = 0; k < kGroup; k++) {  // steps past cnt are inert (dt = u = 0)
        float dtu = dt[k] * u[k];
        sum += dt[k];
#pragma unroll
        for (int n = 0; n < MAXN; n++) {
          if (hasState<MAXN, EXACT>(n, s.N)) h[n] = fmaf(exp2Fast(dt[k] * A2[n]), h[n], dtu * Brows[k0 + k][n]);
        }
      }
    }
  }
  if (!p.active) return;
  dtSum[s.chunkLane(p.b, p.c, nc, p.e)] = sum;
#pragma unroll
  for (int n = 0; n < MAXN; n++) {
    if (hasState<MAXN, EXACT>(n, s.N)) hloc[s.chunkState(p.b, p.c, nc, n, p.e)] = h[n];
  }
}

/** What the carry pass walks: per-chunk states (B, chunks, N, E) and their Σ dt (B, chunks, E). */
struct Carry {
  In A, h0, dhLast;
  long long B, E, N, nc;
  const float* dtSum;
  float* states;    // null: no state walk
  float* adjoints;  // null: no adjoint walk
};

/** V consecutive floats from p (one vector access for V = 4). */
template <int V>
__device__ __forceinline__ void loadVec(const float* p, float (&v)[V]) {
  if constexpr (V == 4) {
    float4 x = *reinterpret_cast<const float4*>(p);
    v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
  } else {
#pragma unroll
    for (int j = 0; j < V; j++) v[j] = p[j];
  }
}

template <int V>
__device__ __forceinline__ void storeVec(float* p, const float (&v)[V]) {
  if constexpr (V == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else {
#pragma unroll
    for (int j = 0; j < V; j++) p[j] = v[j];
  }
}

/** (2) One thread per (b, n, V consecutive channels) walks the chunks. States, in order: entry[0] = h0,
 *  entry[c+1] = P_c·entry[c] + hloc[c], written over hloc. Adjoints, last chunk first: exit[nc−1] = dhLast,
 *  exit[c−1] = P_c·exit[c] + gloc[c], written over gloc. P_c = exp(A·Σ_c dt). The first B·N·E/V threads walk the
 *  states, the next ones the adjoints. The walk is bound by memory latency: each thread loads K chunks ahead of its
 *  chain, with vector accesses, so that many bytes are in flight. */
template <int V>
__global__ void __launch_bounds__(256) chunkCarryKernel(Carry c) {
  constexpr int K = 8;
  const long long groups = c.E / V, walkers = c.B * c.N * groups;
  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  const bool adjoint = c.states == nullptr || i >= walkers;
  if (c.states && adjoint) i -= walkers;
  float* data = adjoint ? c.adjoints : c.states;
  if (i >= walkers || data == nullptr) return;
  const long long e0 = (i % groups) * V, n = (i / groups) % c.N, b = i / (groups * c.N);
  const In init = adjoint ? c.dhLast : c.h0;
  float A2[V], H[V];
#pragma unroll
  for (int j = 0; j < V; j++) {
    A2[j] = c.A[(e0 + j) * c.N + n] * kLog2e;
    H[j] = init.present() ? init[(b * c.E + e0 + j) * c.N + n] : 0.0f;
  }
  float* first = data + (b * c.nc * c.N + n) * c.E + e0;  // chunk 0 of this walk
  const float* sums = c.dtSum + b * c.nc * c.E + e0;
  const long long step = c.N * c.E;
  auto chunkAt = [&](long long j) { return adjoint ? c.nc - 1 - j : j; };  // the walk's j-th chunk
  for (long long j0 = 0; j0 < c.nc; j0 += K) {
    float local[K][V], decay[K][V];
#pragma unroll
    for (int k = 0; k < K; k++) {
      long long ch = chunkAt(min(j0 + k, c.nc - 1));
      loadVec(first + ch * step, local[k]);
      loadVec(sums + ch * c.E, decay[k]);
    }
#pragma unroll
    for (int k = 0; k < K; k++) {
      if (j0 + k < c.nc) {
        storeVec(first + chunkAt(j0 + k) * step, H);
#pragma unroll
        for (int j = 0; j < V; j++) H[j] = fmaf(exp2Fast(A2[j] * decay[k][j]), H[j], local[k][j]);
      }
    }
  }
}

/** Forward (3): replay each chunk from its entry state, writing y; the last chunk writes hLast. */
template <class T, int MAXN, bool EXACT>
__global__ void __launch_bounds__(kThreads, 5) chunkOutputKernel(Scan<T> s, long long span, long long nc, const float* entry, Out y, Out hLast) {
  __shared__ __align__(16) float Brows[kTile][MAXN];
  __shared__ __align__(16) float Crows[kTile][MAXN];
  Place p = place(s.E);
  float A2[MAXN], h[MAXN];
  loadA2<MAXN, EXACT>(s, p.e, A2);
#pragma unroll
  for (int n = 0; n < MAXN; n++) h[n] = hasState<MAXN, EXACT>(n, s.N) ? entryState(s, entry, p.b, p.c, nc, n, p.e) : 0.0f;
  const float De = s.D.present() ? s.D[p.e] : 0.0f;
  long long t0 = p.c * span, t1 = min(s.L, t0 + span);
  for (long long tt = t0; tt < t1; tt += kTile) {
    int len = static_cast<int>(min((long long)kTile, t1 - tt));
    __syncthreads();
    loadRows<MAXN, EXACT>(s, s.Bm, p.b, tt, len, Brows);
    loadRows<MAXN, EXACT>(s, s.Cm, p.b, tt, len, Crows);
    __syncthreads();
    for (int k0 = 0; k0 < len; k0 += kGroup) {
      int cnt = min(kGroup, len - k0);
      long long base = s.tok(p.b, tt + k0, p.e);
      float raw[kGroup], dt[kGroup], u[kGroup], gate[kGroup];
      loadStrided(s.delta, base, s.E, cnt, raw);
      loadStrided(s.u, base, s.E, cnt, u);
      if (s.z) loadStrided(s.z, base, s.E, cnt, gate);
      stepsDt(s, p.e, cnt, raw, dt);
#pragma unroll
      for (int k = 0; k < kGroup; k++) {  // steps past cnt are inert (dt = u = 0)
        float dtu = dt[k] * u[k];
        float out = De * u[k];
#pragma unroll
        for (int n = 0; n < MAXN; n++) {
          if (hasState<MAXN, EXACT>(n, s.N)) {
            h[n] = fmaf(exp2Fast(dt[k] * A2[n]), h[n], dtu * Brows[k0 + k][n]);
            out = fmaf(h[n], Crows[k0 + k][n], out);
          }
        }
        if (p.active && k < cnt) storeAs<T>(y, base + k * s.E, s.z ? out * siluFast(gate[k]) : out);
      }
    }
  }
  if (p.active && hLast.present() && p.c == nc - 1) {
#pragma unroll
    for (int n = 0; n < MAXN; n++) {
      if (hasState<MAXN, EXACT>(n, s.N)) hLast.set((p.b * s.E + p.e) * s.N + n, h[n]);
    }
  }
}

constexpr int R = kBackwardChunk;

/** The per-step values of one backward chunk (steps past its end are inert: dt = dt·u = g = 0, so a = 1 and nothing
 *  flows). Inactive lanes get dt·u = g = 0 too, so their B/C gradient terms vanish from the warp sums. */
struct ChunkSteps {
  float dt[R], dtu[R], g[R];
};

template <class T>
__device__ __forceinline__ void loadSteps(const Scan<T>& s, const T* dy, const Place& p, long long t0, int len, ChunkSteps& st) {
  long long base = s.tok(p.b, t0, p.e);
  float raw[R], u[R];
  loadStrided(s.delta, base, s.E, len, raw);
  loadStrided(s.u, base, s.E, len, u);
  loadStrided(dy, base, s.E, len, st.g);
  if (s.z) {
    float z[R];
    loadStrided(s.z, base, s.E, len, z);
#pragma unroll
    for (int r = 0; r < R; r++) st.g[r] *= siluFast(z[r]);
  }
  stepsDt(s, p.e, len, raw, st.dt);
#pragma unroll
  for (int r = 0; r < R; r++) {
    st.dtu[r] = p.active ? st.dt[r] * u[r] : 0.0f;
    if (!p.active) st.g[r] = 0.0f;
  }
}

/** cols[n][r] = src[b, t0 + r, n] for n < N (zero past the chunk): the block's B or C values, state-major so that a
 *  state's R values are contiguous (read as float4). */
template <class T>
__device__ __forceinline__ void loadColumns(const Scan<T>& s, const T* src, long long b, long long t0, int len, float (*cols)[R]) {
  for (int k = threadIdx.x; k < s.N * R; k += blockDim.x) {
    int n = k / R, r = k % R;
    cols[n][r] = r < len ? toFloat(src[s.bcIdx(b, t0 + r, n)]) : 0.0f;
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

/** Where a backward chunk starts: the thread's place, the chunk's first step and its length. */
struct ChunkStart {
  Place p;
  long long t0;
  int len;
};

/** Stages the chunk's B/C columns in shared memory and loads the thread's per-step values (ends with a barrier). */
template <class T>
__device__ __forceinline__ ChunkStart startChunk(const Scan<T>& s, const T* dy, long long span, float (*Bcols)[R],
                                                 float (*Ccols)[R], ChunkSteps& st) {
  Place p = place(s.E);
  long long t0 = p.c * span;
  int len = static_cast<int>(min(span, s.L - t0));
  loadColumns(s, s.Bm, p.b, t0, len, Bcols);
  loadColumns(s, s.Cm, p.b, t0, len, Ccols);
  loadSteps(s, dy, p, t0, len, st);
  __syncthreads();
  return ChunkStart{p, t0, len};
}

/** Backward (1): per chunk, Σ dt, the state from zero (hloc) and the adjoint it sends to its left from a zero adjoint
 *  at its right end (gloc). One state at a time, like the chunk kernel below. */
template <class T>
__global__ void __launch_bounds__(kThreads, 5) chunkSummaryBackwardKernel(Scan<T> s, const T* dy, long long span, long long nc,
                                                                       float* dtSum, float* hloc, float* gloc) {
  __shared__ __align__(16) float Bcols[kMaxState][R];
  __shared__ __align__(16) float Ccols[kMaxState][R];
  ChunkSteps st;
  const Place p = startChunk(s, dy, span, Bcols, Ccols, st).p;
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
      h = fmaf(a[r], h, st.dtu[r] * Bv[r]);
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
  float* dApart;     // (B·chunks, N, E): one value per thread; null when A is frozen (no dA)
  float* dDpart;     // (B·chunks, E); null without D
  float* dbiasPart;  // (B·chunks, E); null without deltaBias
  long long warps;   // ceil(E / 32)
};

/** Reduces the warp's per-step values v and writes them to part (warps, B, N, L) at steps t0… of state n. */
template <class T>
__device__ __forceinline__ void writeWarpPartial(const Scan<T>& s, const ScanGrads& gr, float* part, float (&v)[R], long long b,
                                                 long long n, long long t0, int len) {
  float total = warpSum16(v);
  const int lane = threadIdx.x & 31, j = lane >> 1;
  long long warp = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;  // warps past E hold only inactive lanes
  if ((lane & 1) == 0 && j < len && warp < gr.warps) part[((warp * s.B + b) * s.N + n) * s.L + t0 + j] = total;
}

/** Backward (3): per chunk, for each state n, recompute the chunk's states from the entry state, then walk back. */
template <class T>
__global__ void __launch_bounds__(kThreads, 3) chunkBackwardKernel(Scan<T> s, const T* dy, In dhLast, long long span, long long nc,
                                                                const float* entry, const float* exitAdjoint, ScanGrads gr) {
  __shared__ __align__(16) float Bcols[kMaxState][R];
  __shared__ __align__(16) float Ccols[kMaxState][R];
  ChunkSteps st;
  const ChunkStart start = startChunk(s, dy, span, Bcols, Ccols, st);
  const Place p = start.p;
  const long long t0 = start.t0;
  const int len = start.len;

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
      prev = fmaf(exp2Fast(st.dt[r] * A2), prev, st.dtu[r] * Bv[r]);
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
      part[r] = dh * st.dtu[r];  // dB_t[n] = Σ_e dh_t·dt_t·u_t
      float dhNext = dh * exp2Fast(st.dt[r] * A2);  // the adjoint of h_{t−1} (a_t recomputed: fewer registers)
      float x = dhNext * (r > 0 ? h[r - 1] : hIn);
      dA = fmaf(x, st.dt[r], dA);
      xA[r] = fmaf(x, A, xA[r]);
      dh = dhNext;
    }
    writeWarpPartial(s, gr, gr.dBpart, part, p.b, n, t0, len);
    if (p.active) {
      if (gr.dApart) gr.dApart[(slot * s.N + n) * s.E + p.e] = dA;
      if (p.c == 0 && gr.dh0.present()) gr.dh0.set(stateIdx, dh);
    }
  }

  if (!p.active) return;
  const float De = s.D.present() ? s.D[p.e] : 0.0f;
  const long long base = s.tok(p.b, t0, p.e);
  float raw[R], u[R];  // raw = delta + deltaBias, for softplus'(raw)
  loadStrided(s.u, base, s.E, len, u);
  if (s.softplus) {
    loadStrided(s.delta, base, s.E, len, raw);
    const float bias = s.deltaBias.present() ? s.deltaBias[p.e] : 0.0f;
#pragma unroll
    for (int r = 0; r < R; r++) raw[r] += bias;
  }
  const bool gated = s.z && gr.dz.present();
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
      storeAs<T>(gr.du, i, fmaf(st.dt[r], dhB[r], st.g[r] * De));
      float ddt = fmaf(u[r], dhB[r], xA[r]);
      float ddtRaw = s.softplus ? ddt * softplusGradFast(raw[r]) : ddt;
      storeAs<T>(gr.ddelta, i, ddtRaw);
      if (gated) storeAs<T>(gr.dz, i, dyv[r] * fmaf(De, u[r], pre[r]) * siluGradFast(z[r]));
      dD = fmaf(st.g[r], u[r], dD);
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
#pragma unroll 8
    for (long long k = k0; k < k1; k++) acc += part[k * width + i];  // loads in flight together, adds in order
    mid[g * width + i] = acc;
  }
}

/** Column sums of part (rows, width), in row order, with column i = (o·middle + m)·inner + j written to
 *  out[(o·inner + j)·middle + m]: (…, middle, inner) → (…, inner, middle); middle = 1 keeps the order. */
__global__ void sumRowsKernel(const float* part, long long rows, long long width, long long inner, long long middle, Out out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < width; i += (long long)gridDim.x * blockDim.x) {
    float acc = 0.0f;
#pragma unroll 8
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
struct StateUpdate {
  In state, u, delta, A, Bm, Cm, D, z, deltaBias;
  bool softplus;
  long long B, E, N;
};

__global__ void stateUpdateKernel(StateUpdate s, float* stateOut, Out y) {
  long long total = s.B * s.E;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long e = i % s.E, b = i / s.E;
    float raw = s.deltaBias.present() ? s.delta[i] + s.deltaBias[e] : s.delta[i];
    float dt = s.softplus ? softplusf(raw) : raw;
    float x = s.u[i];
    float out = s.D.present() ? s.D[e] * x : 0.0f;
    for (long long n = 0; n < s.N; n++) {
      long long k = i * s.N + n;
      float h = expf(dt * s.A[e * s.N + n]) * s.state[k] + dt * s.Bm[b * s.N + n] * x;
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

/** The scan's arguments as passed: every tensor with its own dtype. */
struct ScanArgs {
  In u, delta, A, Bm, Cm, D, z, deltaBias, h0;
  bool softplus;
  long long B, L, E, N;
};

/** u, delta, A, B, C, D?, z?, deltaBias?, h0?, softplus, batch, length, channels, state (absent = address 0) */
ScanArgs readScan(Args& a) {
  ScanArgs s;
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
  if (s.N > kMaxState) {
    throw Failure("selectiveScan: the CUDA kernels support a state size N of at most " + std::to_string(kMaxState) +
                  ", got " + std::to_string(s.N));
  }
  return s;
}

/** Converted copies of token tensors, alive until the op's kernels are queued (the allocator is stream-ordered). */
using Conversions = std::vector<std::unique_ptr<Scratch>>;

/** x's address when it already holds T (or is absent), else a converted copy of its `count` elements. */
template <class T>
const T* tokensAs(In x, long long count, Conversions& keep) {
  constexpr int dtype = dtypeOf<T>();
  if (!x.present() || x.dtype == dtype) return static_cast<const T*>(x.p);
  keep.push_back(std::make_unique<Scratch>(count * sizeof(T)));
  copyKernel<<<gridFor(count), 256, 0, stream()>>>(x, Out{keep.back()->get(), dtype}, count);
  return keep.back()->as<const T>();
}

template <class T>
Scan<T> typedScan(const ScanArgs& a, Conversions& keep) {
  const long long tokens = a.B * a.L * a.E, rows = a.B * a.L * a.N;
  return Scan<T>{tokensAs<T>(a.u, tokens, keep), tokensAs<T>(a.delta, tokens, keep), tokensAs<T>(a.Bm, rows, keep),
                 tokensAs<T>(a.Cm, rows, keep),  tokensAs<T>(a.z, tokens, keep),     a.A,
                 a.D,                            a.deltaBias,                        a.h0,
                 a.softplus,                     a.B,                                a.L,
                 a.E,                            a.N};
}

/** Runs f(scan) with the token tensors in u's float type (f32 when u is not a float tensor). */
template <class F>
void withTypedScan(const ScanArgs& a, F&& f) {
  Conversions keep;
  if (!withFloatType(a.u.dtype, [&](auto tag) { f(typedScan<decltype(tag)>(a, keep)); })) f(typedScan<float>(a, keep));
}

/** Forward kernels keep the states of a channel in registers: exactly 16 (the usual Mamba N, no per-state checks),
 *  at most 16, or at most kMaxState. */
#define MCUDA_BY_STATE(T, N, KERNEL, LAUNCH, ...)                   \
  if ((N) == 16) KERNEL<T, 16, true> LAUNCH(__VA_ARGS__);           \
  else if ((N) < 16) KERNEL<T, 16, false> LAUNCH(__VA_ARGS__);      \
  else KERNEL<T, kMaxState, false> LAUNCH(__VA_ARGS__);

/** Forward chunk length: enough chunks to fill the GPU when B·E alone does not. */
template <class T>
long long forwardChunk(const Scan<T>& s) {
  if (options().scanForwardChunk > 0) return options().scanForwardChunk;
  long long lanes = s.B * s.E;
  long long wanted = (static_cast<long long>(multiprocessors()) * 2048 + lanes - 1) / lanes;
  if (wanted <= 1 || s.L <= 64) return s.L > 0 ? s.L : 1;
  long long span = (s.L + wanted - 1) / wanted;
  return span < 32 ? 32 : span;
}

template <class T>
long long backwardChunk(const Scan<T>& s) {
  long long span = options().scanBackwardChunk > 0 ? options().scanBackwardChunk : kBackwardChunk;
  if (span > kBackwardChunk) span = kBackwardChunk;
  return s.L < span ? (s.L > 0 ? s.L : 1) : span;
}

template <class T>
dim3 chunkGrid(const Scan<T>& s, long long nc) {
  if (nc > 65535) throw Failure("selectiveScan: too many sequence chunks (" + std::to_string(nc) + ")");
  return dim3(blocksFor(s.E, kThreads), static_cast<unsigned>(nc), static_cast<unsigned>(s.B));
}

/** The carry pass over (B, nc, N, E) chunk states; adjoints may be null (forward), states too (not used). */
template <class T>
void carry(const Scan<T>& s, long long nc, const float* dtSum, float* states, float* adjoints, In dhLast) {
  Carry c{s.A, s.h0, dhLast, s.B, s.E, s.N, nc, dtSum, states, adjoints};
  int walks = (states ? 1 : 0) + (adjoints ? 1 : 0);
  if (s.E % 4 == 0) {
    chunkCarryKernel<4><<<blocksFor(walks * s.B * s.N * (s.E / 4), 256), 256, 0, stream()>>>(c);
  } else {
    chunkCarryKernel<1><<<blocksFor(walks * s.B * s.N * s.E, 256), 256, 0, stream()>>>(c);
  }
}

#define CHUNK_LAUNCH(grid) <<<grid, kThreads, 0, stream()>>>

template <class T>
void scanForward(const Scan<T>& s, Out y, Out hLast) {
  long long span = forwardChunk(s);
  long long nc = (s.L + span - 1) / span;
  dim3 grid = chunkGrid(s, nc);
  if (nc == 1) {
    MCUDA_BY_STATE(T, s.N, chunkOutputKernel, CHUNK_LAUNCH(grid), s, span, nc, nullptr, y, hLast);
    return;
  }
  Scratch dtSum(s.B * nc * s.E * sizeof(float)), states(s.B * s.E * s.N * nc * sizeof(float));
  {
    MCUDA_PROFILE_RANGE("scan.forward summaries+carries");
    MCUDA_BY_STATE(T, s.N, chunkSummaryKernel, CHUNK_LAUNCH(grid), s, span, nc, dtSum.as<float>(), states.as<float>());
    carry(s, nc, dtSum.as<float>(), states.as<float>(), nullptr, In{nullptr, F32});
  }
  MCUDA_BY_STATE(T, s.N, chunkOutputKernel, CHUNK_LAUNCH(grid), s, span, nc, states.as<float>(), y, hLast);
}

/** scan prefix, y, hLast */
void selectiveScanOp(Args& a) {
  ScanArgs sa = readScan(a);
  Out y = readOut(a), hLast = readOut(a);
  if (sa.B * sa.E == 0) return;
  long long stateCount = sa.B * sa.E * sa.N;
  if (sa.L == 0) {
    // No tokens: the final state is the initial state.
    if (sa.h0.present()) copyKernel<<<gridFor(stateCount), 256, 0, stream()>>>(sa.h0, hLast, stateCount);
    else zeroFill(hLast.p, stateCount * sizeof(float));
    return;
  }
  withTypedScan(sa, [&](const auto& s) { scanForward(s, y, hLast); });
}

template <class T>
void scanBackward(const Scan<T>& s, const T* dy, In dhLast, ScanGrads gr, Out dA, Out dB, Out dC, Out dD, Out dbias) {
  long long E = s.E, N = s.N, BL = s.B * s.L;
  long long span = backwardChunk(s);
  long long nc = (s.L + span - 1) / span;
  dim3 grid = chunkGrid(s, nc);
  long long slots = s.B * nc;
  Scratch dBpart(gr.warps * BL * N * sizeof(float)), dCpart(gr.warps * BL * N * sizeof(float));
  Scratch dApart(dA.present() ? slots * N * E * sizeof(float) : 0);
  Scratch dDpart(dD.present() ? slots * E * sizeof(float) : 0), dbiasPart(dbias.present() ? slots * E * sizeof(float) : 0);
  gr.dBpart = dBpart.as<float>();
  gr.dCpart = dCpart.as<float>();
  gr.dApart = dA.present() ? dApart.as<float>() : nullptr;
  gr.dDpart = dD.present() ? dDpart.as<float>() : nullptr;
  gr.dbiasPart = dbias.present() ? dbiasPart.as<float>() : nullptr;
  if (nc == 1) {
    MCUDA_PROFILE_RANGE("scan.backward chunks");
    chunkBackwardKernel<T> CHUNK_LAUNCH(grid)(s, dy, dhLast, span, nc, nullptr, nullptr, gr);
  } else {
    long long chunkStates = s.B * E * N * nc;
    Scratch dtSum(slots * E * sizeof(float)), states(chunkStates * sizeof(float)), adjoints(chunkStates * sizeof(float));
    {
      MCUDA_PROFILE_RANGE("scan.backward summaries");
      chunkSummaryBackwardKernel<T> CHUNK_LAUNCH(grid)(s, dy, span, nc, dtSum.as<float>(), states.as<float>(),
                                                        adjoints.as<float>());
    }
    {
      MCUDA_PROFILE_RANGE("scan.backward carries");
      carry(s, nc, dtSum.as<float>(), states.as<float>(), adjoints.as<float>(), dhLast);
    }
    MCUDA_PROFILE_RANGE("scan.backward chunks");
    chunkBackwardKernel<T> CHUNK_LAUNCH(grid)(s, dy, dhLast, span, nc, states.as<float>(), adjoints.as<float>(), gr);
  }
  MCUDA_PROFILE_RANGE("scan.backward partial sums");
  sumRows(gr.dBpart, gr.warps, s.B * N * s.L, s.L, N, dB);
  sumRows(gr.dCpart, gr.warps, s.B * N * s.L, s.L, N, dC);
  if (dA.present()) sumRows(gr.dApart, slots, N * E, E, N, dA);
  if (dD.present()) sumRows(gr.dDpart, slots, E, E, 1, dD);
  if (dbias.present()) sumRows(gr.dbiasPart, slots, E, E, 1, dbias);
}

/** dy, dhLast?, scan prefix, then the gradients: du, ddelta, dA?, dB, dC, dD?, dz?, ddeltaBias?, dh0? (dA, dD and
 *  ddeltaBias absent: frozen parameters, their partial sums are skipped). */
void selectiveScanGradOp(Args& a) {
  In dy = readIn(a), dhLast = readIn(a);
  ScanArgs sa = readScan(a);
  Out du = readOut(a), ddelta = readOut(a), dA = readOut(a), dB = readOut(a), dC = readOut(a);
  Out dD = readOut(a), dz = readOut(a), dbias = readOut(a), dh0 = readOut(a);

  long long E = sa.E, N = sa.N, BL = sa.B * sa.L;
  long long stateCount = sa.B * E * N;
  if (sa.L == 0 || sa.B * E == 0) {
    // No tokens (or no lanes): the parameter gradients are zero and dh0 = dhLast.
    if (dA.present()) zeroFill(dA.p, E * N * bytesOf(dA.dtype));
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
  ScanGrads gr{du, ddelta, dz, dh0, nullptr, nullptr, nullptr, nullptr, nullptr, (E + 31) / 32};
  Conversions keep;
  withTypedScan(sa, [&](const auto& s) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(s.u)>>;
    scanBackward(s, tokensAs<T>(dy, BL * E, keep), dhLast, gr, dA, dB, dC, dD, dbias);
  });
}

/** state, x, delta, A, B, C, D?, z?, deltaBias?, softplus, batch, channels, stateSize, y, stateOut */
void selectiveStateUpdateOp(Args& a) {
  StateUpdate s;
  s.state = readIn(a);
  s.u = readIn(a);
  s.delta = readIn(a);
  s.A = readIn(a);
  s.Bm = readIn(a);
  s.Cm = readIn(a);
  s.D = readIn(a);
  s.z = readIn(a);
  s.deltaBias = readIn(a);
  s.softplus = a.flag();
  s.B = a.i64();
  s.E = a.i64();
  s.N = a.i64();
  Out y = readOut(a);
  float* stateOut = a.as<float>();
  long long n = s.B * s.E;
  if (n == 0) return;
  stateUpdateKernel<<<gridFor(n), 256, 0, stream()>>>(s, stateOut, y);
}

MCUDA_OP("selectiveScan", selectiveScanOp);
MCUDA_OP("selectiveScanGrad", selectiveScanGradOp);
MCUDA_OP("selectiveStateUpdate", selectiveStateUpdateOp);

}  // namespace
}  // namespace mcuda
