// The fused kernels of Mamba's recurrent (decode) step, inference only (no backward):
//
//   residualRmsNorm  sum = residual + update (stored in the residual's dtype), normed = sum·rstd·w,
//                    rstd = 1/sqrt(mean(sum²) + eps) of the stored sum                          block per row
//   convStep         x = act(bias + Σ_{k<W−1} w[k]·convState[k] + w[W−1]·xz[e]),
//                    state = [convState[1:], xz[e]]                                               thread per channel
//   ssmStep          Δ = softplus(dtWeight[e]·dbc[b, 0:R] + dtBias[e]), A = −exp(ALog),
//                    h = exp(Δ·A) ⊙ state + Δ·B·x, y = (C·h + D·x)·silu(z)                        G lanes per (b, e)
//
// Layouts (row-major): residual, update, sum, normed (rows, cols); xz (B, C), x = columns [0, E), z = [E, 2E);
// convState (B, E, W−1); conv weight (E, W); dbc (B, R + 2N) = [δ, B, C]; dtWeight (E, R); ALog (E, N);
// ssm state (B, E, N) f32. Rows of xz and dbc are read element by element: no alignment is assumed.
// Loads that belong together go through loadRun, whose dtype switch sits outside the loads so that they are in
// flight together (a switch per load serialises them: one memory latency each). Every kernel issues all of its
// global loads before it needs any of them: these kernels are latency-bound (one memory round trip each).
// Indices are 32-bit within a row (or a tile of rows); row starts are 64-bit (the launches check the bounds).
// These run inside a captured CUDA graph: no scratch memory, no host synchronisation.
#include <climits>

#include "device.cuh"

namespace mcuda {
namespace {

/** The tensor from element `offset` on (a row start: 64-bit once, so that the indices after it are 32-bit). */
__device__ __forceinline__ In from(In t, long long offset) {
  return In{static_cast<const char*>(t.p) + offset * (t.dtype == F16 || t.dtype == BF16 ? 2 : 4), t.dtype};
}
__device__ __forceinline__ Out from(Out t, long long offset) {
  return Out{static_cast<char*>(t.p) + offset * (t.dtype == F16 || t.dtype == BF16 ? 2 : 4), t.dtype};
}

template <class T, int K>
__device__ __forceinline__ void loadRunAs(const void* p, int base, int stride, int count, float (&v)[K]) {
  const T* q = static_cast<const T*>(p);
#pragma unroll
  for (int k = 0; k < K; k++) v[k] = k < count ? toFloat(q[base + k * stride]) : 0.0f;
}

/** v[k] = src[base + k·stride] as float for k < count, 0 past it (float dtypes). */
template <int K>
__device__ __forceinline__ void loadRun(In src, int base, int stride, int count, float (&v)[K]) {
  switch (src.dtype) {
    case F16: loadRunAs<__half>(src.p, base, stride, count, v); break;
    case BF16: loadRunAs<__nv_bfloat16>(src.p, base, stride, count, v); break;
    default: loadRunAs<float>(src.p, base, stride, count, v); break;
  }
}

/** v as a tensor of `dtype` stores it (rounded to nearest even for halves). */
__device__ __forceinline__ float roundAs(int dtype, float v) {
  switch (dtype) {
    case F16: return __half2float(__float2half_rn(v));
    case BF16: return __bfloat162float(__float2bfloat16_rn(v));
    default: return v;
  }
}

unsigned gridCap(long long blocks, long long perSm) {
  long long cap = static_cast<long long>(multiprocessors()) * perSm;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks < cap ? blocks : cap));
}

/** Throws unless n fits the kernels' 32-bit indices. */
void check32(const char* kernel, const char* what, long long n) {
  if (n > INT_MAX) {
    throw Failure(std::string(kernel) + ": " + what + " = " + std::to_string(n) + " exceeds the kernel's 32-bit " +
                  "indices (at most " + std::to_string(INT_MAX) + "); split the batch or the channels.");
  }
}

// ---- residualRmsNorm ----

/** Columns a thread takes per pass (kept in registers between the sum and the norm); the launch sizes blocks so
 *  that one pass usually covers the row. */
constexpr int kNormPerThread = 4;

/** Columns c0, c0 + stride, … a thread takes in the pass that starts at c0 (at most kNormPerThread). */
__device__ __forceinline__ int normCount(int cols, int c0, int stride) {
  return min(kNormPerThread, (cols - c0 + stride - 1) / stride);
}

__global__ void residualRmsNormKernel(In residual, In update, In weight, Out sum, Out normed, int rows, int cols,
                                      float eps) {
  waitForPrevious();
  startNext();
  const int stride = blockDim.x;
  const int tile = kNormPerThread * stride;
  const bool inTile = cols <= tile;  // one pass: the sums and the weights stay in registers
  float w[kNormPerThread] = {};
  if (inTile && static_cast<int>(threadIdx.x) < cols) {
    loadRun(weight, threadIdx.x, stride, normCount(cols, threadIdx.x, stride), w);  // serves every row
  }
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const long long o = static_cast<long long>(r) * cols;
    const In res = from(residual, o), upd = update.present() ? from(update, o) : update;
    const Out sumRow = from(sum, o), normedRow = from(normed, o);
    float v[kNormPerThread] = {};
    float sq = 0.0f;
    for (int c0 = threadIdx.x; c0 < cols; c0 += tile) {
      const int count = normCount(cols, c0, stride);
      float u[kNormPerThread];
      loadRun(res, c0, stride, count, v);
      if (upd.present()) {
        loadRun(upd, c0, stride, count, u);
#pragma unroll
        for (int j = 0; j < kNormPerThread; j++) v[j] = roundAs(sum.dtype, v[j] + u[j]);  // f32 add, stored rounding
      }
#pragma unroll
      for (int j = 0; j < kNormPerThread; j++) {
        if (j < count) sumRow.set(c0 + j * stride, v[j]);
        sq += v[j] * v[j];
      }
    }
    const float rstd = rsqrtf(blockSum(sq) / static_cast<float>(cols) + eps);
    for (int c0 = threadIdx.x; c0 < cols; c0 += tile) {
      const int count = normCount(cols, c0, stride);
      if (!inTile) {
        loadRun(weight, c0, stride, count, w);
        loadRun(In{sumRow.p, sumRow.dtype}, c0, stride, count, v);  // this thread's stores of the first pass
      }
#pragma unroll
      for (int j = 0; j < kNormPerThread; j++) {
        if (j < count) normedRow.set(c0 + j * stride, v[j] * rstd * w[j]);
      }
    }
  }
}

/** residual, update?, weight, sum, normed, rows, cols, eps */
void residualRmsNormOp(Args& a) {
  In residual = readIn(a), update = readIn(a), weight = readIn(a);
  Out sum = readOut(a), normed = readOut(a);
  long long rows = a.i64(), cols = a.i64();
  float eps = a.f32();
  if (rows == 0 || cols == 0) return;
  check32("residualRmsNorm", "2·rows", 2 * rows);  // r + the grid stride stays in range
  check32("residualRmsNorm", "cols", cols);
  // About kNormPerThread columns per thread, whole warps, at most 1024 threads.
  long long perThread = (cols + kNormPerThread - 1) / kNormPerThread;
  int threads = static_cast<int>(((perThread + 31) / 32) * 32);
  if (threads > 1024) threads = 1024;
  launchDependent(residualRmsNormKernel, gridCap(rows, 8), threads, 0, residual, update, weight, sum, normed,
                  static_cast<int>(rows), static_cast<int>(cols), eps);
}

// ---- convStep ----

/** Taps held in registers; wider convolutions take the plain loop. */
constexpr int kConvTaps = 8;
constexpr int kConvThreads = 128;

/** Thread per channel e (blockIdx.x), batch rows blockIdx.y, blockIdx.y + gridDim.y, …: the weights and the bias
 *  are loaded once for all of them, and no index is divided. */
__global__ void __launch_bounds__(kConvThreads)
    convStepKernel(In xz, In convState, In weight, In bias, Out x, Out state, int B, int E, int C, int W, bool silu) {
  waitForPrevious();
  startNext();
  const int e = blockIdx.x * kConvThreads + threadIdx.x;
  if (e >= E) return;
  const bool inRegisters = W <= kConvTaps;
  float w[kConvTaps];
  if (inRegisters) loadRun(weight, e * W, 1, W, w);
  const float biasE = bias.present() ? bias[e] : 0.0f;
  for (int b = blockIdx.y; b < B; b += gridDim.y) {
    const long long i = static_cast<long long>(b) * E + e;
    const long long window = i * (W - 1);  // (b, e)'s W−1 inputs, oldest first
    const In past = from(convState, window);
    const Out next = from(state, window);
    const float newest = xz[static_cast<long long>(b) * C + e];
    float acc = biasE;
    if (inRegisters) {
      float p[kConvTaps];
      loadRun(past, 0, 1, W - 1, p);
#pragma unroll
      for (int k = 0; k < kConvTaps; k++) {
        if (k < W - 1) {
          acc += w[k] * p[k];
          if (k > 0) next.set(k - 1, p[k]);
        } else if (k == W - 1) {
          acc += w[k] * newest;
        }
      }
    } else {
      for (int k = 0; k < W - 1; k++) {
        const float p = past[k];
        acc += weight[e * W + k] * p;
        if (k > 0) next.set(k - 1, p);
      }
      acc += weight[e * W + W - 1] * newest;
    }
    if (W > 1) next.set(W - 2, newest);
    x.set(i, silu ? siluf(acc) : acc);
  }
}

/** xz, convState, weight, bias?, silu, B, E, C, W, x, state */
void convStepOp(Args& a) {
  In xz = readIn(a), convState = readIn(a), weight = readIn(a), bias = readIn(a);
  bool silu = a.flag();
  long long B = a.i64(), E = a.i64(), C = a.i64();
  int W = a.i32();
  Out x = readOut(a), state = readOut(a);
  if (B == 0 || E == 0) return;
  check32("convStep", "2·batch", 2 * B);  // b + the grid stride stays in range
  check32("convStep", "E·W (conv weight elements)", E * W);
  check32("convStep", "xz columns", C);
  // Rows beyond the grid loop (about 16 blocks per multiprocessor in all).
  const long long columns = blocksFor(E, kConvThreads);
  const long long rowBlocks = (gridCap(columns * B, 16) + columns - 1) / columns;
  const dim3 grid(static_cast<unsigned>(columns), static_cast<unsigned>(rowBlocks < 65535 ? rowBlocks : 65535));
  launchDependent(convStepKernel, grid, kConvThreads, 0, xz, convState, weight, bias, x, state, static_cast<int>(B),
                  static_cast<int>(E), static_cast<int>(C), W, silu);
}

// ---- ssmStep ----

struct SsmStep {
  const float* state;
  In x, xz, dbc, dtWeight, dtBias, ALog, D;
  Out y;
  float* stateOut;
  bool softplus;
  int B, E, N, R, C;
};

constexpr int kSsmThreads = 128;
/** Floats a block may take in shared memory (48 KiB, the default limit). */
constexpr long long kSsmSharedFloats = 12288;

/** The row whose total lane `lane` holds after spreadSum<G, K>. */
template <int G, int K>
__device__ __forceinline__ int spreadRow(int lane) {
  int row = 0;
#pragma unroll
  for (int o = G / 2, w = K; w > 1; o >>= 1, w >>= 1) {
    if (lane & o) row += w / 2;
  }
  return row;
}

/** The first lane of a group that holds row j's total after spreadSum<G, K>. */
template <int G, int K>
__device__ __forceinline__ int spreadLane(int j) {
  int lane = 0;
#pragma unroll
  for (int o = G / 2, w = K; w > 1; o >>= 1, w >>= 1) {
    if (j >= w / 2) {
      lane |= o;
      j -= w / 2;
    }
  }
  return lane;
}

/** Sums K values (one per row) over the G aligned lanes of a group (K ≤ G, powers of two) with a halving butterfly:
 *  each exchange sends half of the values a lane still holds and keeps the other half, so the K sums take
 *  K − 1 + log2(G / K) shuffles instead of K·log2(G), and lane l ends with the total of row spreadRow(l). */
template <int G, int K>
__device__ __forceinline__ float spreadSum(float (&v)[K], int lane) {
#pragma unroll
  for (int o = G / 2, w = K; o > 0; o >>= 1) {
    if (w > 1) {
      const bool upper = (lane & o) != 0;
#pragma unroll
      for (int i = 0; i < w / 2; i++) {
        const float send = upper ? v[i] : v[i + w / 2];
        const float keep = upper ? v[i + w / 2] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
      }
      w /= 2;
    } else {
      v[0] += __shfl_xor_sync(0xffffffffu, v[0], o);
    }
  }
  return v[0];
}

/** d[j] = src[j] for j < K from shared memory, in 16-byte loads when K is a multiple of 4 (src then 16-byte aligned). */
template <int K>
__device__ __forceinline__ void loadShared(const float* src, float (&d)[K]) {
  if constexpr (K % 4 == 0) {
#pragma unroll
    for (int i = 0; i < K / 4; i++) {
      const float4 q = reinterpret_cast<const float4*>(src)[i];
      d[4 * i] = q.x;
      d[4 * i + 1] = q.y;
      d[4 * i + 2] = q.z;
      d[4 * i + 3] = q.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < K; i++) d[i] = src[i];
  }
}

/** V consecutive states (V = 4: one 16-byte access, the address aligned). Streaming: a state is read and written
 *  once per step, so it is kept out of the caches' way. */
template <int V>
__device__ __forceinline__ void loadStates(const float* p, float (&v)[V]) {
  if constexpr (V == 4) {
    const float4 q = __ldcs(reinterpret_cast<const float4*>(p));
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
  } else {
#pragma unroll
    for (int i = 0; i < V; i++) v[i] = __ldcs(p + i);
  }
}
template <int V>
__device__ __forceinline__ void storeStates(float* p, const float (&v)[V]) {
  if constexpr (V == 4) {
    __stcs(reinterpret_cast<float4*>(p), make_float4(v[0], v[1], v[2], v[3]));
  } else {
#pragma unroll
    for (int i = 0; i < V; i++) __stcs(p + i, v[i]);
  }
}

/** Shared memory of one block, in floats: the dbc rows (16-byte aligned for their vector loads; rounded up to whole
 *  16 bytes). */
__host__ __device__ inline int ssmRowsFloats(int P, int rows) { return (P * rows + 3) / 4 * 4; }

/** dtWeight values a lane holds in registers for all of its row tiles (the δ terms past them are read as they come). */
constexpr int kSsmHeldWeights = 16;

constexpr float kLog2e = 1.4426950408889634f;

/**
 * A group of G lanes per channel e, kSsmThreads / G consecutive channels per block, ROWS batch rows at a time; lane l
 * takes the states n = V·(l + G·c) + v (v < V, chunk c = 0, 1, … while n < N; V = 4 moves them in 16-byte accesses).
 * The dbc rows sit in shared memory as float, interleaved (rows[k·ROWS + j] = dbc[b0 + j, k], so one vector load gives
 * column k of every row). Lanes split the δ dot product over R (r = l + G·k; each dtWeight value serves ROWS rows, and
 * the first kSsmHeldWeights of a lane are loaded once per block, into registers). spreadSum leaves each lane with
 * one row's total, so the softplus, the gate and the store happen once per (b, e). Every global load of a row tile
 * (the first chunk of states, x, z, dbc) is issued before the barrier that publishes the dbc rows.
 */
template <int G, int V, int ROWS>
__global__ void __launch_bounds__(kSsmThreads, ROWS == 1 ? 1 : 6) ssmStepKernel(SsmStep p) {
  static_assert(ROWS <= G, "every row's total must land on some lane");
  constexpr int kChannels = kSsmThreads / G;
  constexpr int kUnroll = 4;  // δ terms in flight per lane
  constexpr int kStage = 8;   // dbc values in flight per thread (one pass stages up to 1024)
  extern __shared__ __align__(16) float shared[];
  const int N = p.N, R = p.R, E = p.E, P = R + 2 * N;
  float* rows = shared;
  const int lane = threadIdx.x % G;
  const int eFree = blockIdx.x * kChannels + threadIdx.x / G;
  // Groups past the last channel compute on a valid channel (the warp's shuffles need every lane) and write nothing.
  const bool active = eFree < E;
  const int e = active ? eFree : E - 1;
  const int terms = (R - lane + G - 1) / G;  // δ terms r = lane + G·k of this lane
  const int myRow = spreadRow<G, ROWS>(lane);
  const bool writer = active && (lane & (G / ROWS - 1)) == 0;  // one of the lanes holding myRow's total
  const int n0 = V * lane;                                      // the lane's first state
  const int stateOffset = e * N + n0;                           // in a batch row of the state
  {  // the block's states of its first row tile, on their way into L2 while the previous kernel finishes
    const int lineFloats = 32, blockFloats = kChannels * N, lines = (blockFloats + lineFloats - 1) / lineFloats;
    const long long first = static_cast<long long>(blockIdx.x) * blockFloats;
    for (int i = threadIdx.x; i < ROWS * lines; i += kSsmThreads) {
      const int j = i / lines, b = blockIdx.y * ROWS + j;
      const long long at = first + static_cast<long long>(i - j * lines) * lineFloats;
      if (b < p.B && at < static_cast<long long>(E) * N) prefetchL2(p.state + b * static_cast<long long>(E) * N + at);
    }
  }
  waitForPrevious();
  startNext();

  const float bias = p.dtBias.present() ? p.dtBias[e] : 0.0f;
  const float De = p.D.present() ? p.D[e] : 0.0f;
  float aLog[V];  // of the lane's first chunk; A = −exp(aLog) is taken once the states are on their way
  loadRun(p.ALog, e * N + n0, 1, n0 < N ? V : 0, aLog);
  float held[kSsmHeldWeights];
  loadRun(p.dtWeight, e * R + lane, G, min(terms, kSsmHeldWeights), held);

  for (int b0 = blockIdx.y * ROWS; b0 < p.B; b0 += gridDim.y * ROWS) {
    const int nRows = min(ROWS, p.B - b0);
    const long long EN = static_cast<long long>(E) * N;
    const float* stateTile = p.state + b0 * EN;  // rows b0 … b0 + ROWS − 1: offsets j·EN + … fit 32 bits
    float* stateOutTile = p.stateOut + b0 * EN;
    const int en = static_cast<int>(EN);

    float h0[ROWS][V];
#pragma unroll
    for (int j = 0; j < ROWS; j++) {
      if (j < nRows && n0 < N) loadStates<V>(stateTile + j * en + stateOffset, h0[j]);
      else {
#pragma unroll
        for (int v = 0; v < V; v++) h0[j][v] = 0.0f;
      }
    }
    float xv[ROWS];
    loadRun(from(p.x, static_cast<long long>(b0) * E), e, E, nRows, xv);
    const float zv = myRow < nRows ? p.xz[static_cast<long long>(b0 + myRow) * p.C + E + e] : 0.0f;

    // The tile's dbc rows (contiguous in memory) into rows[k·ROWS + j], zeros past the last row.
    __syncthreads();  // the previous rows are no longer read
    const In dbcTile = from(p.dbc, static_cast<long long>(b0) * P);
    for (int i0 = threadIdx.x; i0 < ROWS * P; i0 += kStage * kSsmThreads) {
      float v[kStage];
      loadRun(dbcTile, i0, kSsmThreads, max(0, min(kStage, (nRows * P - i0 + kSsmThreads - 1) / kSsmThreads)), v);
#pragma unroll
      for (int u = 0; u < kStage; u++) {
        const int i = i0 + u * kSsmThreads;
        if (i < ROWS * P) {
          const int j = i / P;
          rows[(i - j * P) * ROWS + j] = v[u];
        }
      }
    }
    __syncthreads();

    // δ[j] = Σ_r dtWeight[e, r] · dbc[b0 + j, r]; Δ once per (row, channel), then handed to every lane.
    float acc[ROWS];
#pragma unroll
    for (int j = 0; j < ROWS; j++) acc[j] = 0.0f;
#pragma unroll
    for (int k = 0; k < kSsmHeldWeights; k++) {
      if (k < terms) {
        float d[ROWS];
        loadShared(rows + (lane + k * G) * ROWS, d);
#pragma unroll
        for (int j = 0; j < ROWS; j++) acc[j] += held[k] * d[j];
      }
    }
    for (int k0 = kSsmHeldWeights; k0 < terms; k0 += kUnroll) {
      float w[kUnroll];
      loadRun(p.dtWeight, e * R + lane + k0 * G, G, min(kUnroll, terms - k0), w);
#pragma unroll
      for (int k = 0; k < kUnroll; k++) {
        if (k0 + k < terms) {
          float d[ROWS];
          loadShared(rows + (lane + (k0 + k) * G) * ROWS, d);
#pragma unroll
          for (int j = 0; j < ROWS; j++) acc[j] += w[k] * d[j];
        }
      }
    }
    const float delta = spreadSum<G, ROWS>(acc, lane) + bias;
    const float dtMine = p.softplus ? softplusf(delta) : delta;
    float dt[ROWS], dtx[ROWS], out[ROWS];
#pragma unroll
    for (int j = 0; j < ROWS; j++) {
      dt[j] = ROWS == 1 ? dtMine : __shfl_sync(0xffffffffu, dtMine, spreadLane<G, ROWS>(j), G);
      dtx[j] = dt[j] * xv[j];
      out[j] = 0.0f;
    }

    // h = exp(Δ·A) ⊙ state + Δ·B·x in place and the C·h partial sums, for the states first … first + V − 1; one
    // state (all rows) at a time, so that only its B and C columns are held.
    auto advance = [&](int first, const float (&a2)[V], float (&h)[ROWS][V]) {
#pragma unroll
      for (int v = 0; v < V; v++) {
        float Bn[ROWS], Cn[ROWS];
        loadShared(rows + (R + first + v) * ROWS, Bn);
        loadShared(rows + (R + N + first + v) * ROWS, Cn);
#pragma unroll
        for (int j = 0; j < ROWS; j++) {
          h[j][v] = exp2f(dt[j] * a2[v]) * h[j][v] + dtx[j] * Bn[j];
          out[j] += h[j][v] * Cn[j];
        }
      }
#pragma unroll
      for (int j = 0; j < ROWS; j++) {
        if (active && j < nRows) storeStates<V>(stateOutTile + j * en + e * N + first, h[j]);
      }
    };
    if (n0 < N) {
      float a2[V];
#pragma unroll
      for (int v = 0; v < V; v++) a2[v] = -expf(aLog[v]) * kLog2e;
      advance(n0, a2, h0);
    }
    for (int first = n0 + V * G; first < N; first += V * G) {  // states past the first chunk (N > V·G)
      float a2[V], h[ROWS][V];
      loadRun(p.ALog, e * N + first, 1, V, a2);
#pragma unroll
      for (int v = 0; v < V; v++) a2[v] = -expf(a2[v]) * kLog2e;
#pragma unroll
      for (int j = 0; j < ROWS; j++) {
        if (j < nRows) loadStates<V>(stateTile + j * en + e * N + first, h[j]);
        else {
#pragma unroll
          for (int v = 0; v < V; v++) h[j][v] = 0.0f;
        }
      }
      advance(first, a2, h);
    }

    const float y = spreadSum<G, ROWS>(out, lane);
    if (writer && myRow < nRows) {
      float xMine = 0.0f;
#pragma unroll
      for (int j = 0; j < ROWS; j++) xMine = j == myRow ? xv[j] : xMine;
      p.y.set(static_cast<long long>(b0 + myRow) * E + e, (y + De * xMine) * siluf(zv));
    }
  }
}

/** Resident blocks per multiprocessor of a kernel at `sharedBytes` (the query cached per kernel and size). */
template <auto kKernel>
int residentBlocks(size_t sharedBytes) {
  static size_t cachedBytes = ~size_t{0};
  static int resident = 1;
  if (sharedBytes != cachedBytes) {
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kKernel, kSsmThreads, sharedBytes),
          "ssmStep occupancy");
    if (resident < 1) resident = 1;
    cachedBytes = sharedBytes;
  }
  return resident;
}

/** Grid: channel tiles × row tiles, the row tiles capped so that every block is resident at once (one wave); blocks
 *  then loop over the remaining row tiles in even shares. */
template <int G, int V, int ROWS>
void launchSsmStepAs(SsmStep p) {
  constexpr auto kernel = ssmStepKernel<G, V, ROWS>;
  const size_t sharedBytes = sizeof(float) * static_cast<size_t>(ssmRowsFloats(p.R + 2 * p.N, ROWS));
  const long long channelTiles = (p.E + kSsmThreads / G - 1) / (kSsmThreads / G);
  const long long rowTiles = (p.B + ROWS - 1) / ROWS;
  const long long slots = static_cast<long long>(multiprocessors()) * residentBlocks<kernel>(sharedBytes);
  long long rowBlocks = slots / channelTiles;
  if (rowBlocks < 1) rowBlocks = 1;
  if (rowBlocks > 65535) rowBlocks = 65535;
  if (rowBlocks < rowTiles) {
    const long long rounds = (rowTiles + rowBlocks - 1) / rowBlocks;
    rowBlocks = (rowTiles + rounds - 1) / rounds;
  } else {
    rowBlocks = rowTiles;
  }
  const dim3 grid(static_cast<unsigned>(channelTiles), static_cast<unsigned>(rowBlocks));
  launchDependent(kernel, grid, kSsmThreads, sharedBytes, p);
}

/** Lanes per channel: enough for N states V at a time (at most 32; more states loop), at least 4 (so that four
 *  batch rows share a group). V = 4 (16-byte state accesses) needs N a multiple of 4 and aligned state buffers. */
template <int V, int ROWS>
void launchSsmStepLanes(const SsmStep& p) {
  const int lanes = (p.N + V - 1) / V;
  if (lanes <= 4) launchSsmStepAs<4, V, ROWS>(p);
  else if (lanes <= 8) launchSsmStepAs<8, V, ROWS>(p);
  else if (lanes <= 16) launchSsmStepAs<16, V, ROWS>(p);
  else launchSsmStepAs<32, V, ROWS>(p);
}

/** Batches of 4 or more take four rows per block (each dtWeight value read, and each group's δ reduction, serves
 *  four rows); smaller ones a row per block. */
template <int V>
void launchSsmStepRows(const SsmStep& p) {
  if (p.B >= 4 && ssmRowsFloats(p.R + 2 * p.N, 4) <= kSsmSharedFloats) launchSsmStepLanes<V, 4>(p);
  else launchSsmStepLanes<V, 1>(p);
}

/** state, x, xz, dbc, dtWeight, dtBias?, ALog, D?, softplus, B, E, N, R, C, y, stateOut */
void ssmStepOp(Args& a) {
  SsmStep p;
  In state = readIn(a);
  if (state.dtype != F32) throw Failure(std::string("ssmStep: the scan state must be f32, got ") + dtypeName(state.dtype));
  p.state = static_cast<const float*>(state.p);
  p.x = readIn(a);
  p.xz = readIn(a);
  p.dbc = readIn(a);
  p.dtWeight = readIn(a);
  p.dtBias = readIn(a);
  p.ALog = readIn(a);
  p.D = readIn(a);
  p.softplus = a.flag();
  const long long B = a.i64(), E = a.i64(), N = a.i64(), R = a.i64(), C = a.i64();
  p.y = readOut(a);
  p.stateOut = a.as<float>();
  if (B == 0 || E == 0) return;
  const long long P = R + 2 * N;
  if (P > kSsmSharedFloats) {
    throw Failure("ssmStep: a dbc row of R + 2N = " + std::to_string(P) + " values does not fit the shared memory the " +
                  "kernel stages it in (at most " + std::to_string(kSsmSharedFloats) + " values).");
  }
  check32("ssmStep", "2·batch", 2 * B);  // b0 + the grid stride stays in range
  check32("ssmStep", "4·E·N (state elements of four batch rows)", 4 * E * N);
  check32("ssmStep", "E·R (dtWeight elements)", E * R);
  check32("ssmStep", "xz columns", C);
  p.B = static_cast<int>(B);
  p.E = static_cast<int>(E);
  p.N = static_cast<int>(N);
  p.R = static_cast<int>(R);
  p.C = static_cast<int>(C);
  const bool vectors = N % 4 == 0 && packAligned<float, 4>(p.state) && packAligned<float, 4>(p.stateOut);
  if (vectors) launchSsmStepRows<4>(p);
  else launchSsmStepRows<1>(p);
}

MCUDA_OP("residualRmsNorm", residualRmsNormOp);
MCUDA_OP("convStep", convStepOp);
MCUDA_OP("ssmStep", ssmStepOp);

}  // namespace
}  // namespace mcuda
