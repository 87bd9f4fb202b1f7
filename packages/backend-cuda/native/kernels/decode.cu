// The fused kernels of Mamba's recurrent (decode) step, inference only (no backward):
//
//   residualRmsNorm  sum = residual + update (stored in the residual's dtype), normed = sum·rstd·w,
//                    rstd = 1/sqrt(mean(sum²) + eps) of the stored sum                          block per row
//   convStep         x = act(bias + Σ_{k<W−1} w[k]·convState[k] + w[W−1]·xz[e]),
//                    state = [convState[1:], xz[e]]                                               thread per (b, e)
//   ssmStep          Δ = softplus(dtWeight[e]·dbc[b, 0:R] + dtBias[e]), A = −exp(ALog),
//                    h = exp(Δ·A) ⊙ state + Δ·B·x, y = (C·h + D·x)·silu(z)                        G lanes per (b, e)
//
// Layouts (row-major): residual, update, sum, normed (rows, cols); xz (B, C), x = columns [0, E), z = [E, 2E);
// convState (B, E, W−1); conv weight (E, W); dbc (B, R + 2N) = [δ, B, C]; dtWeight (E, R); ALog (E, N);
// ssm state (B, E, N) f32. Rows of xz and dbc are read element by element: no alignment is assumed.
// Loads that belong together go through loadRun, whose dtype switch sits outside the loads so that they are in
// flight together (a switch per load serialises them: one memory latency each).
// These run inside a captured CUDA graph: no scratch memory, no host synchronisation.
#include "device.cuh"

namespace mcuda {
namespace {

__device__ __forceinline__ float toFloat(float v) { return v; }
__device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ float toFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T, int K>
__device__ __forceinline__ void loadRunAs(const void* p, long long base, long long stride, int count, float (&v)[K]) {
  const T* q = static_cast<const T*>(p);
#pragma unroll
  for (int k = 0; k < K; k++) v[k] = k < count ? toFloat(q[base + k * stride]) : 0.0f;
}

/** v[k] = src[base + k·stride] as float for k < count, 0 past it (float dtypes). */
template <int K>
__device__ __forceinline__ void loadRun(In src, long long base, long long stride, int count, float (&v)[K]) {
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

// ---- residualRmsNorm ----

/** Columns a thread takes per pass (kept in registers between the sum and the norm); the launch sizes blocks so
 *  that one pass usually covers the row. */
constexpr int kNormPerThread = 4;

__global__ void residualRmsNormKernel(In residual, In update, In weight, Out sum, Out normed, long long rows,
                                      long long cols, float eps) {
  const long long stride = blockDim.x;
  const long long tile = kNormPerThread * stride;
  const bool inTile = cols <= tile;  // one pass: the sums stay in registers for the norm
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const long long o = r * cols;
    float v[kNormPerThread] = {};
    float sq = 0.0f;
    for (long long c0 = threadIdx.x; c0 < cols; c0 += tile) {
      const int count = static_cast<int>(min(static_cast<long long>(kNormPerThread), (cols - c0 + stride - 1) / stride));
      float u[kNormPerThread];
      loadRun(residual, o + c0, stride, count, v);
      if (update.present()) {
        loadRun(update, o + c0, stride, count, u);
#pragma unroll
        for (int j = 0; j < kNormPerThread; j++) v[j] = roundAs(sum.dtype, v[j] + u[j]);  // f32 add, stored rounding
      }
#pragma unroll
      for (int j = 0; j < kNormPerThread; j++) {
        if (j < count) sum.set(o + c0 + j * stride, v[j]);
        sq += v[j] * v[j];
      }
    }
    const float rstd = rsqrtf(blockSum(sq) / static_cast<float>(cols) + eps);
    for (long long c0 = threadIdx.x; c0 < cols; c0 += tile) {
      const int count = static_cast<int>(min(static_cast<long long>(kNormPerThread), (cols - c0 + stride - 1) / stride));
      float w[kNormPerThread];
      loadRun(weight, c0, stride, count, w);
      if (!inTile) loadRun(In{sum.p, sum.dtype}, o + c0, stride, count, v);  // this thread's stores of the first pass
#pragma unroll
      for (int j = 0; j < kNormPerThread; j++) {
        if (j < count) normed.set(o + c0 + j * stride, v[j] * rstd * w[j]);
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
  // About kNormPerThread columns per thread, whole warps, at most 1024 threads.
  long long perThread = (cols + kNormPerThread - 1) / kNormPerThread;
  int threads = static_cast<int>(((perThread + 31) / 32) * 32);
  if (threads > 1024) threads = 1024;
  residualRmsNormKernel<<<gridCap(rows, 8), threads, 0, stream()>>>(residual, update, weight, sum, normed, rows, cols,
                                                                      eps);
}

// ---- convStep ----

/** Taps held in registers; wider convolutions take the plain loop. */
constexpr int kConvTaps = 8;

__global__ void convStepKernel(In xz, In convState, In weight, In bias, Out x, Out state, long long B, long long E,
                               long long C, int W, bool silu) {
  const long long total = B * E;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long e = i % E, b = i / E;
    const long long window = i * (W - 1);  // (b, e)'s W−1 inputs, oldest first
    const float newest = xz[b * C + e];
    float acc = bias.present() ? bias[e] : 0.0f;
    if (W <= kConvTaps) {
      float past[kConvTaps], w[kConvTaps];
      loadRun(convState, window, 1, W - 1, past);
      loadRun(weight, e * W, 1, W, w);
#pragma unroll
      for (int k = 0; k < kConvTaps; k++) {
        if (k < W - 1) {
          acc += w[k] * past[k];
          if (k > 0) state.set(window + k - 1, past[k]);
        } else if (k == W - 1) {
          acc += w[k] * newest;
        }
      }
    } else {
      for (int k = 0; k < W - 1; k++) {
        const float past = convState[window + k];
        acc += weight[e * W + k] * past;
        if (k > 0) state.set(window + k - 1, past);
      }
      acc += weight[e * W + W - 1] * newest;
    }
    if (W > 1) state.set(window + W - 2, newest);
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
  long long n = B * E;
  if (n == 0) return;
  constexpr int kThreads = 256;
  convStepKernel<<<gridCap(blocksFor(n, kThreads), 16), kThreads, 0, stream()>>>(xz, convState, weight, bias, x, state,
                                                                                 B, E, C, W, silu);
}

// ---- ssmStep ----

struct SsmStep {
  const float* state;
  In x, xz, dbc, dtWeight, dtBias, ALog, D;
  Out y;
  float* stateOut;
  bool softplus;
  long long B, E, N, R, C;
};

constexpr int kSsmThreads = 128;
/** Floats of dbc rows a block stages in shared memory (48 KiB). */
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

/** A group of G lanes per channel e, kSsmThreads / G consecutive channels per block, ROWS batch rows at a time.
 *  Their dbc rows sit in shared memory as float, interleaved (rows[k·ROWS + j] = dbc[b0 + j, k], so one vector load
 *  gives column k of every row). Lanes split the δ dot product over R (each dtWeight value read serves ROWS rows) and
 *  the states: lane l takes states l, l + G, … (SPL of them ahead in registers, any further ones in a loop).
 *  spreadSum leaves each lane with one row's total, so the softplus, the gate and the store happen once per (b, e).
 *  The state and x loads are issued first: their latency overlaps the staging and the dot product. */
template <int G, int ROWS, int SPL, int MIN_BLOCKS>
__global__ void __launch_bounds__(kSsmThreads, MIN_BLOCKS) ssmStepKernel(SsmStep p) {
  static_assert(ROWS <= G, "every row's total must land on some lane");
  constexpr int kUnroll = 4;  // dtWeight values in flight per lane
  extern __shared__ __align__(16) float rows[];
  const long long P = p.R + 2 * p.N;
  const long long EN = p.E * p.N;
  const int lane = threadIdx.x % G;
  const long long eFree = blockIdx.x * static_cast<long long>(kSsmThreads / G) + threadIdx.x / G;
  // Groups past the last channel compute on a valid channel (the warp's shuffles need every lane) and write nothing.
  const bool active = eFree < p.E;
  const long long e = active ? eFree : p.E - 1;
  const int myRow = spreadRow<G, ROWS>(lane);
  const bool writer = active && (lane & (G / ROWS - 1)) == 0;  // one of the lanes holding myRow's total
  const float bias = p.dtBias.present() ? p.dtBias[e] : 0.0f;
  const float De = p.D.present() ? p.D[e] : 0.0f;
  float A[SPL];  // A of the lane's first SPL states
#pragma unroll
  for (int i = 0; i < SPL; i++) A[i] = lane + i * G < p.N ? -expf(p.ALog[e * p.N + lane + i * G]) : 0.0f;

  for (long long b0 = blockIdx.y * static_cast<long long>(ROWS); b0 < p.B; b0 += gridDim.y * static_cast<long long>(ROWS)) {
    const int nRows = static_cast<int>(min(static_cast<long long>(ROWS), p.B - b0));
    const long long stateBase = (b0 * p.E + e) * p.N + lane;  // + j·EN + i·G
    float h0[SPL][ROWS], xv[ROWS];
#pragma unroll
    for (int i = 0; i < SPL; i++) {
#pragma unroll
      for (int j = 0; j < ROWS; j++) h0[i][j] = j < nRows && lane + i * G < p.N ? p.state[stateBase + j * EN + i * G] : 0.0f;
    }
    loadRun(p.x, b0 * p.E + e, p.E, nRows, xv);
    const float zv = myRow < nRows ? p.xz[(b0 + myRow) * p.C + p.E + e] : 0.0f;

    __syncthreads();  // the previous rows are no longer read
    for (long long k = threadIdx.x; k < P; k += blockDim.x) {
      float col[ROWS];
      loadRun(p.dbc, b0 * P + k, P, nRows, col);  // zeros past nRows
#pragma unroll
      for (int j = 0; j < ROWS; j++) rows[k * ROWS + j] = col[j];
    }
    __syncthreads();

    // δ[j] = Σ_r dtWeight[e, r] · dbc[b0 + j, r]; Δ once per (row, channel), then handed to every lane.
    float acc[ROWS];
#pragma unroll
    for (int j = 0; j < ROWS; j++) acc[j] = 0.0f;
    for (long long r0 = lane; r0 < p.R; r0 += kUnroll * G) {
      const int n = static_cast<int>(min(static_cast<long long>(kUnroll), (p.R - r0 + G - 1) / G));
      float w[kUnroll];
      loadRun(p.dtWeight, e * p.R + r0, G, n, w);
#pragma unroll
      for (int k = 0; k < kUnroll; k++) {
        if (k < n) {
          float d[ROWS];
          loadShared(rows + (r0 + k * G) * ROWS, d);
#pragma unroll
          for (int j = 0; j < ROWS; j++) acc[j] += w[k] * d[j];
        }
      }
    }
    const float delta = spreadSum<G, ROWS>(acc, lane) + bias;
    const float dtMine = p.softplus ? softplusf(delta) : delta;
    float dt[ROWS], out[ROWS];
#pragma unroll
    for (int j = 0; j < ROWS; j++) {
      dt[j] = __shfl_sync(0xffffffffu, dtMine, spreadLane<G, ROWS>(j), G);
      out[j] = lane == 0 ? De * xv[j] : 0.0f;
    }

    // h = exp(Δ·A) ⊙ state + Δ·B·x and the C·h partial sums, for the lane's states n = lane + i·G.
    for (long long n = lane, i = 0; n < p.N; n += G, i++) {
      const bool ahead = i < SPL;  // A and the states are in registers
      float An = 0.0f, hs[ROWS];
#pragma unroll
      for (int k = 0; k < SPL; k++) {
        if (i == k) {
          An = A[k];
#pragma unroll
          for (int j = 0; j < ROWS; j++) hs[j] = h0[k][j];
        }
      }
      if (!ahead) {
        An = -expf(p.ALog[e * p.N + n]);
#pragma unroll
        for (int j = 0; j < ROWS; j++) hs[j] = j < nRows ? p.state[stateBase + j * EN + (n - lane)] : 0.0f;
      }
      float Bn[ROWS], Cn[ROWS];
      loadShared(rows + (p.R + n) * ROWS, Bn);
      loadShared(rows + (p.R + p.N + n) * ROWS, Cn);
#pragma unroll
      for (int j = 0; j < ROWS; j++) {
        if (j < nRows) {
          const float h = expf(dt[j] * An) * hs[j] + dt[j] * Bn[j] * xv[j];
          if (active) p.stateOut[stateBase + j * EN + (n - lane)] = h;
          out[j] += h * Cn[j];
        }
      }
    }
    const float y = spreadSum<G, ROWS>(out, lane);
    if (writer && myRow < nRows) p.y.set((b0 + myRow) * p.E + e, y * siluf(zv));
  }
}

template <int G, int ROWS, int SPL, int MIN_BLOCKS>
void launchSsmStep(const SsmStep& p) {
  const long long perBlock = kSsmThreads / G;
  const long long rowBlocks = (p.B + ROWS - 1) / ROWS;
  dim3 grid(static_cast<unsigned>((p.E + perBlock - 1) / perBlock), static_cast<unsigned>(rowBlocks < 65535 ? rowBlocks : 65535));
  const size_t sharedBytes = sizeof(float) * ROWS * static_cast<size_t>(p.R + 2 * p.N);
  ssmStepKernel<G, ROWS, SPL, MIN_BLOCKS><<<grid, kSsmThreads, sharedBytes, stream()>>>(p);
}

/** Small batches (latency-bound): one row per block, G ≥ N lanes per channel. Batches of 4 or more (whose dbc rows
 *  fit in shared memory): four rows per block, fewer lanes per channel (two states each) so that the per-(b, e) work
 *  is shared by fewer lanes, and at most 64 registers for 8 blocks per multiprocessor (the fastest of the variants
 *  timed on an H200 at batch 64 for Mamba-130m and -2.8b shapes). */
void launchSsmStep(const SsmStep& p) {
  if (p.B >= 4 && 4 * (p.R + 2 * p.N) <= kSsmSharedFloats) {
    if (p.N <= 8) launchSsmStep<8, 4, 1, 8>(p);
    else if (p.N <= 16) launchSsmStep<8, 4, 2, 8>(p);
    else if (p.N <= 32) launchSsmStep<16, 4, 2, 8>(p);
    else launchSsmStep<32, 4, 2, 8>(p);
  } else {
    if (p.N <= 8) launchSsmStep<8, 1, 1, 1>(p);
    else if (p.N <= 16) launchSsmStep<16, 1, 1, 1>(p);
    else launchSsmStep<32, 1, 1, 1>(p);
  }
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
  p.B = a.i64();
  p.E = a.i64();
  p.N = a.i64();
  p.R = a.i64();
  p.C = a.i64();
  p.y = readOut(a);
  p.stateOut = a.as<float>();
  if (p.B == 0 || p.E == 0) return;
  const long long P = p.R + 2 * p.N;
  if (P > kSsmSharedFloats) {
    throw Failure("ssmStep: a dbc row of R + 2N = " + std::to_string(P) + " values does not fit the shared memory the " +
                  "kernel stages it in (at most " + std::to_string(kSsmSharedFloats) + " values).");
  }
  launchSsmStep(p);
}

MCUDA_OP("residualRmsNorm", residualRmsNormOp);
MCUDA_OP("convStep", convStepOp);
MCUDA_OP("ssmStep", ssmStepOp);

}  // namespace
}  // namespace mcuda
