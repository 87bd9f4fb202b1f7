// Selective scan (Mamba-1), token-major, fp32 state, chunked over the sequence.
//
//   dt_t = softplus(delta_t + deltaBias)        h_t = exp(dt_t·A) ⊙ h_{t−1} + dt_t·B_t·u_t      (h_{−1} = h0 or 0)
//   y_t  = (Σ_n h_t·C_t + D·u_t) · silu(z_t)
//
// Shapes: u, delta, z, y (B, L, E); A (E, N); Bm, Cm (B, L, N); D, deltaBias (E); h0, hLast (B, E, N).
//
// The recurrence is linear in h, so a chunk [t0, t1) maps its entry state H to P ⊙ H + hloc, with P = Π a_t and
// hloc the chunk's state from zero. Forward: (1) every chunk computes (P, hloc) in parallel, (2) one pass over the
// chunks turns them into chunk-entry states (the only states ever stored: (B, E, chunks, N)), (3) every chunk
// replays itself from its entry state and writes y. Backward does the same for the adjoint running backwards
// (dh_{t−1} = a_t·(dh_t + g_t·C_t)), then each chunk recomputes its own states from its entry state (in registers
// and local memory, at most kBackwardChunk steps) and walks them in reverse. One thread owns one (b, chunk, e);
// B/C gradients are summed over e within a warp into per-warp partials, dA, dD and dbias into per-thread partials;
// small kernels then add the partials up in a fixed order (deterministic, no atomics).
#include "device.cuh"
#include "../profile.h"

namespace mcuda {
namespace {

constexpr int kThreads = 128;
constexpr int kBackwardChunk = 32;

struct Scan {
  In u, delta, A, Bm, Cm, D, z, deltaBias, h0;
  bool softplus;
  long long B, L, E, N;

  __device__ __forceinline__ long long tok(long long b, long long t, long long e) const { return (b * L + t) * E + e; }
  __device__ __forceinline__ long long bcIdx(long long b, long long t, long long n) const { return (b * L + t) * N + n; }
  /** Start of (b, e, chunk)'s N entries in the per-chunk arrays (B, E, chunks, N). */
  __device__ __forceinline__ long long chunkBase(long long b, long long e, long long c, long long nc) const {
    return ((b * E + e) * nc + c) * N;
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
  if (!p.active) p.e = s.E - 1;  // inactive lanes read valid memory and contribute nothing
  return p;
}

template <int MAXN>
__device__ __forceinline__ void loadA(const Scan& s, long long e, float (&A)[MAXN]) {
#pragma unroll
  for (int n = 0; n < MAXN; n++) A[n] = n < s.N ? s.A[e * s.N + n] : 0.0f;
}

/** (1) P = Π a_t and the chunk's state from zero. */
template <int MAXN>
__global__ void chunkSummaryKernel(Scan s, long long T, long long nc, float* P, float* hloc) {
  Place p = place(s);
  if (!p.active) return;
  float A[MAXN], h[MAXN], prod[MAXN];
  loadA(s, p.e, A);
#pragma unroll
  for (int n = 0; n < MAXN; n++) {
    h[n] = 0.0f;
    prod[n] = 1.0f;
  }
  long long t0 = p.c * T, t1 = min(s.L, t0 + T);
  for (long long t = t0; t < t1; t++) {
    long long i = s.tok(p.b, t, p.e);
    Step st = stepOf(s, i, p.e);
    float u = s.u[i];
#pragma unroll
    for (int n = 0; n < MAXN; n++) {
      if (n < s.N) {
        float a = expf(st.dt * A[n]);
        h[n] = a * h[n] + st.dt * s.Bm[s.bcIdx(p.b, t, n)] * u;
        prod[n] *= a;
      }
    }
  }
  long long base = s.chunkBase(p.b, p.e, p.c, nc);
#pragma unroll
  for (int n = 0; n < MAXN; n++) {
    if (n < s.N) {
      P[base + n] = prod[n];
      hloc[base + n] = h[n];
    }
  }
}

/** (2) Entry state of every chunk, in order: entry[0] = h0, entry[c+1] = P[c]·entry[c] + hloc[c]. */
__global__ void chunkCarryKernel(Scan s, long long nc, const float* P, const float* hloc, float* entry) {
  long long total = s.B * s.E * s.N;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long n = i % s.N, be = i / s.N;
    float H = s.h0.present() ? s.h0[i] : 0.0f;
    for (long long c = 0; c < nc; c++) {
      long long k = (be * nc + c) * s.N + n;
      entry[k] = H;
      H = P[k] * H + hloc[k];
    }
  }
}

/** The state entering (b, e, chunk c): from the chunk-entry array, or h0 when there is a single chunk. */
__device__ __forceinline__ float entryState(const Scan& s, const float* entry, long long b, long long e, long long c,
                                            long long nc, int n) {
  if (entry) return entry[s.chunkBase(b, e, c, nc) + n];
  return s.h0.present() ? s.h0[(b * s.E + e) * s.N + n] : 0.0f;
}

/** (3) Replay each chunk from its entry state, writing y; the last chunk writes hLast. */
template <int MAXN>
__global__ void chunkOutputKernel(Scan s, long long T, long long nc, const float* entry, Out y, Out hLast) {
  Place p = place(s);
  if (!p.active) return;
  float A[MAXN], h[MAXN];
  loadA(s, p.e, A);
#pragma unroll
  for (int n = 0; n < MAXN; n++) h[n] = n < s.N ? entryState(s, entry, p.b, p.e, p.c, nc, n) : 0.0f;
  long long t0 = p.c * T, t1 = min(s.L, t0 + T);
  for (long long t = t0; t < t1; t++) {
    long long i = s.tok(p.b, t, p.e);
    Step st = stepOf(s, i, p.e);
    float u = s.u[i];
    float out = s.D.present() ? s.D[p.e] * u : 0.0f;
#pragma unroll
    for (int n = 0; n < MAXN; n++) {
      if (n < s.N) {
        h[n] = expf(st.dt * A[n]) * h[n] + st.dt * s.Bm[s.bcIdx(p.b, t, n)] * u;
        out += h[n] * s.Cm[s.bcIdx(p.b, t, n)];
      }
    }
    y.set(i, s.z.present() ? out * siluf(s.z[i]) : out);
  }
  if (hLast.present() && p.c == nc - 1) {
#pragma unroll
    for (int n = 0; n < MAXN; n++) {
      if (n < s.N) hLast.set((p.b * s.E + p.e) * s.N + n, h[n]);
    }
  }
}

/** Gradient of the pre-gate output: dy·silu(z), or dy without a gate. */
__device__ __forceinline__ float gateGrad(const Scan& s, In dy, long long i) {
  return s.z.present() ? dy[i] * siluf(s.z[i]) : dy[i];
}

/** Backward (1): the adjoint each chunk sends to its left from a zero adjoint at its right end. */
template <int MAXN>
__global__ void chunkAdjointKernel(Scan s, In dy, long long T, long long nc, float* gloc) {
  Place p = place(s);
  if (!p.active) return;
  float A[MAXN], dh[MAXN];
  loadA(s, p.e, A);
#pragma unroll
  for (int n = 0; n < MAXN; n++) dh[n] = 0.0f;
  long long t0 = p.c * T, t1 = min(s.L, t0 + T);
  for (long long t = t1 - 1; t >= t0; t--) {
    long long i = s.tok(p.b, t, p.e);
    Step st = stepOf(s, i, p.e);
    float g = gateGrad(s, dy, i);
#pragma unroll
    for (int n = 0; n < MAXN; n++) {
      if (n < s.N) dh[n] = (dh[n] + g * s.Cm[s.bcIdx(p.b, t, n)]) * expf(st.dt * A[n]);
    }
  }
  long long base = s.chunkBase(p.b, p.e, p.c, nc);
#pragma unroll
  for (int n = 0; n < MAXN; n++) {
    if (n < s.N) gloc[base + n] = dh[n];
  }
}

/** Backward (2): the adjoint entering every chunk from its right, last chunk first (seeded by dhLast). */
__global__ void adjointCarryKernel(Scan s, long long nc, const float* P, const float* gloc, In dhLast, float* exitAdjoint) {
  long long total = s.B * s.E * s.N;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long n = i % s.N, be = i / s.N;
    float D = dhLast.present() ? dhLast[i] : 0.0f;
    for (long long c = nc - 1; c >= 0; c--) {
      long long k = (be * nc + c) * s.N + n;
      exitAdjoint[k] = D;
      D = P[k] * D + gloc[k];
    }
  }
}

/** Per-thread and per-warp partial sums, added up afterwards in a fixed order (no atomics: deterministic, and
 *  millions of contended atomics per layer were the backward's largest cost). */
struct ScanGrads {
  Out du, ddelta, dz, dh0;
  float* dBpart;  // (B·L·N, warps): one value per warp of 32 channels
  float* dCpart;
  float* dApart;  // (B·chunks, E, N): one value per thread
  float* dDpart;  // (B·chunks, E); null without D
  float* dbiasPart;  // (B·chunks, E); null without deltaBias
  long long warps;   // ceil(E / 32)
};

/** Writes the warp's sum of v to part[index·warps + warp] (lane 0). */
__device__ __forceinline__ void warpPartial(float* part, long long index, long long warps, float v) {
  v = warpSum(v);
  long long warp = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32;  // warps past E hold only inactive lanes
  if ((threadIdx.x & 31) == 0 && warp < warps) part[index * warps + warp] = v;
}

/** Backward (3): per chunk, recompute the states from the entry state, then walk them in reverse. */
template <int MAXN>
__global__ void chunkBackwardKernel(Scan s, In dy, In dhLast, long long T, long long nc, const float* entry,
                                    const float* exitAdjoint, ScanGrads gr) {
  Place p = place(s);
  const float live = p.active ? 1.0f : 0.0f;
  float A[MAXN], hStart[MAXN], dh[MAXN], dA[MAXN];
  float hs[kBackwardChunk][MAXN];  // h_t for t in the chunk (local memory)
  loadA(s, p.e, A);
  long long t0 = p.c * T, t1 = min(s.L, t0 + T);
  long long stateBase = (p.b * s.E + p.e) * s.N;
#pragma unroll
  for (int n = 0; n < MAXN; n++) {
    hStart[n] = n < s.N ? entryState(s, entry, p.b, p.e, p.c, nc, n) : 0.0f;
    if (n >= s.N) dh[n] = 0.0f;
    else if (exitAdjoint) dh[n] = exitAdjoint[s.chunkBase(p.b, p.e, p.c, nc) + n];
    else dh[n] = dhLast.present() ? dhLast[stateBase + n] : 0.0f;
    dA[n] = 0.0f;
  }

  for (long long t = t0; t < t1; t++) {
    long long i = s.tok(p.b, t, p.e);
    Step st = stepOf(s, i, p.e);
    float u = s.u[i];
#pragma unroll
    for (int n = 0; n < MAXN; n++) {
      float prev = t == t0 ? hStart[n] : hs[t - t0 - 1][n];
      hs[t - t0][n] = n < s.N ? expf(st.dt * A[n]) * prev + st.dt * s.Bm[s.bcIdx(p.b, t, n)] * u : 0.0f;
    }
  }

  float dD = 0.0f, dbias = 0.0f;
  const float De = s.D.present() ? s.D[p.e] : 0.0f;
  for (long long t = t1 - 1; t >= t0; t--) {
    long long i = s.tok(p.b, t, p.e);
    Step st = stepOf(s, i, p.e);
    float u = s.u[i];
    float dyv = dy[i];
    float g = dyv;
    if (s.z.present()) {
      float preGate = De * u;
#pragma unroll
      for (int n = 0; n < MAXN; n++) {
        if (n < s.N) preGate += hs[t - t0][n] * s.Cm[s.bcIdx(p.b, t, n)];
      }
      float zv = s.z[i];
      if (gr.dz.present() && p.active) gr.dz.set(i, dyv * preGate * siluGradf(zv));
      g = dyv * siluf(zv);
    }
    float du = g * De;
    dD += g * u;
#pragma unroll
    for (int n = 0; n < MAXN; n++) {
      if (n < s.N) {
        float c = s.Cm[s.bcIdx(p.b, t, n)];
        warpPartial(gr.dCpart, s.bcIdx(p.b, t, n), gr.warps, live * g * hs[t - t0][n]);
        dh[n] += g * c;
      }
    }
    float ddt = 0.0f;
#pragma unroll
    for (int n = 0; n < MAXN; n++) {
      if (n < s.N) {
        float a = expf(st.dt * A[n]);
        float prev = t == t0 ? hStart[n] : hs[t - t0 - 1][n];
        float b = s.Bm[s.bcIdx(p.b, t, n)];
        dA[n] += dh[n] * prev * a * st.dt;
        ddt += dh[n] * (prev * a * A[n] + b * u);
        warpPartial(gr.dBpart, s.bcIdx(p.b, t, n), gr.warps, live * dh[n] * st.dt * u);
        du += dh[n] * st.dt * b;
        dh[n] *= a;
      }
    }
    float ddtRaw = s.softplus ? ddt * softplusGradf(st.raw) : ddt;
    if (p.active) {
      gr.du.set(i, du);
      gr.ddelta.set(i, ddtRaw);
    }
    dbias += ddtRaw;
  }

  if (!p.active) return;
  long long slot = p.b * nc + p.c;  // this thread's row in the (B·chunks, …) partials
#pragma unroll
  for (int n = 0; n < MAXN; n++) {
    if (n < s.N) gr.dApart[(slot * s.E + p.e) * s.N + n] = dA[n];
  }
  if (gr.dDpart) gr.dDpart[slot * s.E + p.e] = dD;
  if (gr.dbiasPart) gr.dbiasPart[slot * s.E + p.e] = dbias;
  if (p.c == 0 && gr.dh0.present()) {
#pragma unroll
    for (int n = 0; n < MAXN; n++) {
      if (n < s.N) gr.dh0.set(stateBase + n, dh[n]);
    }
  }
}

/** out[i] = Σ_k part[i·inner + k] for k < inner (contiguous parts) … */
__global__ void sumInnerPartsKernel(const float* part, long long n, long long inner, Out out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float acc = 0.0f;
    for (long long k = 0; k < inner; k++) acc += part[i * inner + k];
    out.set(i, acc);
  }
}

/** … or out[i] = Σ_k part[k·n + i] for k < outer (strided parts, coalesced across i). */
__global__ void sumOuterPartsKernel(const float* part, long long n, long long outer, Out out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float acc = 0.0f;
    for (long long k = 0; k < outer; k++) acc += part[k * n + i];
    out.set(i, acc);
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

int stateBucket(long long N) {
  if (N <= 4) return 4;
  if (N <= 8) return 8;
  if (N <= 16) return 16;
  if (N <= 32) return 32;
  if (N <= 64) return 64;
  throw Failure("selectiveScan: the CUDA kernels support a state size N of at most 64, got " + std::to_string(N));
}

#define MCUDA_BY_STATE(N, KERNEL, LAUNCH, ...)                 \
  switch (stateBucket(N)) {                                    \
    case 4: KERNEL<4> LAUNCH(__VA_ARGS__); break;              \
    case 8: KERNEL<8> LAUNCH(__VA_ARGS__); break;              \
    case 16: KERNEL<16> LAUNCH(__VA_ARGS__); break;            \
    case 32: KERNEL<32> LAUNCH(__VA_ARGS__); break;            \
    default: KERNEL<64> LAUNCH(__VA_ARGS__); break;            \
  }

/** Forward chunk length: enough chunks to fill the GPU when B·E alone does not. */
long long forwardChunk(const Scan& s) {
  if (options().scanForwardChunk > 0) return options().scanForwardChunk;
  long long lanes = s.B * s.E;
  long long wanted = (static_cast<long long>(multiprocessors()) * 1024 + lanes - 1) / lanes;
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
  long long chunkStates = stateCount * nc;
  Scratch P(chunkStates * sizeof(float)), hloc(chunkStates * sizeof(float)), entry(chunkStates * sizeof(float));
  {
    MCUDA_PROFILE_RANGE("scan.forward summaries+carries");
    MCUDA_BY_STATE(s.N, chunkSummaryKernel, CHUNK_LAUNCH(grid), s, T, nc, P.as<float>(), hloc.as<float>());
  }
  chunkCarryKernel<<<gridFor(stateCount), 256, 0, stream()>>>(s, nc, P.as<float>(), hloc.as<float>(), entry.as<float>());
  MCUDA_BY_STATE(s.N, chunkOutputKernel, CHUNK_LAUNCH(grid), s, T, nc, entry.as<float>(), y, hLast);
}

/** dy, dhLast?, scan prefix, then the gradients: du, ddelta, dA, dB, dC, dD?, dz?, ddeltaBias?, dh0? */
void selectiveScanGradOp(Args& a) {
  In dy = readIn(a), dhLast = readIn(a);
  Scan s = readScan(a);
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
  Scratch dBpart(BL * N * warps * sizeof(float)), dCpart(BL * N * warps * sizeof(float));
  Scratch dApart(slots * E * N * sizeof(float));
  Scratch dDpart(dD.present() ? slots * E * sizeof(float) : 0), dbiasPart(dbias.present() ? slots * E * sizeof(float) : 0);
  ScanGrads gr{du, ddelta, dz, dh0, dBpart.as<float>(), dCpart.as<float>(), dApart.as<float>(),
               dD.present() ? dDpart.as<float>() : nullptr, dbias.present() ? dbiasPart.as<float>() : nullptr, warps};
  if (nc == 1) {
    MCUDA_PROFILE_RANGE("scan.backward chunks");
    MCUDA_BY_STATE(N, chunkBackwardKernel, CHUNK_LAUNCH(grid), s, dy, dhLast, T, nc, nullptr, nullptr, gr);
  } else {
    long long chunkStates = stateCount * nc;
    Scratch P(chunkStates * sizeof(float)), local(chunkStates * sizeof(float));
    Scratch entry(chunkStates * sizeof(float)), exitAdjoint(chunkStates * sizeof(float));
    {
      MCUDA_PROFILE_RANGE("scan.backward summaries");
      MCUDA_BY_STATE(N, chunkSummaryKernel, CHUNK_LAUNCH(grid), s, T, nc, P.as<float>(), local.as<float>());
    }
    {
      MCUDA_PROFILE_RANGE("scan.backward carries");
      chunkCarryKernel<<<gridFor(stateCount), 256, 0, stream()>>>(s, nc, P.as<float>(), local.as<float>(), entry.as<float>());
    }
    {
      MCUDA_PROFILE_RANGE("scan.backward adjoints");
      MCUDA_BY_STATE(N, chunkAdjointKernel, CHUNK_LAUNCH(grid), s, dy, T, nc, local.as<float>());
      adjointCarryKernel<<<gridFor(stateCount), 256, 0, stream()>>>(s, nc, P.as<float>(), local.as<float>(), dhLast,
                                                                    exitAdjoint.as<float>());
    }
    MCUDA_PROFILE_RANGE("scan.backward chunks");
    MCUDA_BY_STATE(N, chunkBackwardKernel, CHUNK_LAUNCH(grid), s, dy, dhLast, T, nc, entry.as<float>(),
                   exitAdjoint.as<float>(), gr);
  }
  MCUDA_PROFILE_RANGE("scan.backward partial sums");
  sumInnerPartsKernel<<<gridFor(BL * N), 256, 0, stream()>>>(dBpart.as<float>(), BL * N, warps, dB);
  sumInnerPartsKernel<<<gridFor(BL * N), 256, 0, stream()>>>(dCpart.as<float>(), BL * N, warps, dC);
  sumOuterPartsKernel<<<gridFor(E * N), 256, 0, stream()>>>(dApart.as<float>(), E * N, slots, dA);
  if (dD.present()) sumOuterPartsKernel<<<gridFor(E), 256, 0, stream()>>>(dDpart.as<float>(), E, slots, dD);
  if (dbias.present()) sumOuterPartsKernel<<<gridFor(E), 256, 0, stream()>>>(dbiasPart.as<float>(), E, slots, dbias);
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
