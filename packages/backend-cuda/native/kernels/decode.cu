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
// These run inside a captured CUDA graph: no scratch memory, no host synchronisation.
#include "device.cuh"

namespace mcuda {
namespace {

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

/** Columns a thread keeps in registers between the two passes; the launch sizes blocks so that usually all fit. */
constexpr int kNormPerThread = 4;

/** residual + update in f32, rounded as `sum` stores it (the residual alone, exactly, without update). */
__device__ __forceinline__ float residualSum(In residual, In update, int sumDtype, long long i) {
  float r = residual[i];
  return update.present() ? roundAs(sumDtype, r + update[i]) : r;
}

__global__ void residualRmsNormKernel(In residual, In update, In weight, Out sum, Out normed, long long rows,
                                      long long cols, float eps) {
  const long long tile = kNormPerThread * static_cast<long long>(blockDim.x);
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const long long o = r * cols;
    float v[kNormPerThread];
#pragma unroll
    for (int j = 0; j < kNormPerThread; j++) {
      long long c = threadIdx.x + j * static_cast<long long>(blockDim.x);
      v[j] = c < cols ? residualSum(residual, update, sum.dtype, o + c) : 0.0f;
    }
    float sq = 0.0f;
#pragma unroll
    for (int j = 0; j < kNormPerThread; j++) {
      long long c = threadIdx.x + j * static_cast<long long>(blockDim.x);
      if (c < cols) sum.set(o + c, v[j]);
      sq += v[j] * v[j];
    }
    for (long long c = tile + threadIdx.x; c < cols; c += blockDim.x) {  // past the register tile (very wide rows)
      float s = residualSum(residual, update, sum.dtype, o + c);
      sum.set(o + c, s);
      sq += s * s;
    }
    const float rstd = rsqrtf(blockSum(sq) / static_cast<float>(cols) + eps);
#pragma unroll
    for (int j = 0; j < kNormPerThread; j++) {
      long long c = threadIdx.x + j * static_cast<long long>(blockDim.x);
      if (c < cols) normed.set(o + c, v[j] * rstd * weight[c]);
    }
    for (long long c = tile + threadIdx.x; c < cols; c += blockDim.x) {
      normed.set(o + c, residualSum(residual, update, sum.dtype, o + c) * rstd * weight[c]);
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

__global__ void convStepKernel(In xz, In convState, In weight, In bias, Out x, Out state, long long B, long long E,
                               long long C, int W, bool silu) {
  const long long total = B * E;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long e = i % E, b = i / E;
    const long long window = i * (W - 1);  // (b, e)'s W−1 inputs, oldest first
    const float newest = xz[b * C + e];
    float acc = bias.present() ? bias[e] : 0.0f;
    for (int k = 0; k < W - 1; k++) {
      const float past = convState[window + k];
      acc += weight[e * W + k] * past;
      if (k > 0) state.set(window + k - 1, past);
    }
    acc += weight[e * W + W - 1] * newest;
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
  In state, x, xz, dbc, dtWeight, dtBias, ALog, D;
  Out y;
  float* stateOut;
  bool softplus;
  long long B, E, N, R, C;
};

constexpr int kSsmThreads = 128;

/** Sum over the G aligned lanes of a group (G a power of two ≤ 32); every lane of the group gets it. */
template <int G>
__device__ __forceinline__ float groupSum(float v) {
#pragma unroll
  for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/** A group of G lanes per (b, e): lanes split the δ dot product over R and the states n. The block shares one
 *  batch row b (its dbc row sits in shared memory as float) and covers kSsmThreads / G consecutive channels. */
template <int G>
__global__ void __launch_bounds__(kSsmThreads) ssmStepKernel(SsmStep p) {
  extern __shared__ float row[];  // dbc[b]: δ at [0, R), B at [R, R + N), C at [R + N, R + 2N)
  const long long P = p.R + 2 * p.N;
  const int lane = threadIdx.x % G;
  const long long eFree = blockIdx.x * static_cast<long long>(kSsmThreads / G) + threadIdx.x / G;
  // Groups past the last channel compute on a valid channel (the warp's shuffles need every lane) and write nothing.
  const bool active = eFree < p.E;
  const long long e = active ? eFree : p.E - 1;
  const float* Brow = row + p.R;
  const float* Crow = row + p.R + p.N;

  for (long long b = blockIdx.y; b < p.B; b += gridDim.y) {
    __syncthreads();  // the previous row is no longer read
    for (long long k = threadIdx.x; k < P; k += blockDim.x) row[k] = p.dbc[b * P + k];
    __syncthreads();

    float delta = 0.0f;
    for (long long r = lane; r < p.R; r += G) delta += p.dtWeight[e * p.R + r] * row[r];
    delta = groupSum<G>(delta);
    if (p.dtBias.present()) delta += p.dtBias[e];
    const float dt = p.softplus ? softplusf(delta) : delta;

    const long long i = b * p.E + e;
    const float xv = p.x[i];
    float out = 0.0f;
    for (long long n = lane; n < p.N; n += G) {
      const float A = -expf(p.ALog[e * p.N + n]);
      const float h = expf(dt * A) * p.state[i * p.N + n] + dt * Brow[n] * xv;
      if (active) p.stateOut[i * p.N + n] = h;
      out += h * Crow[n];
    }
    out = groupSum<G>(out);
    if (active && lane == 0) {
      if (p.D.present()) out += p.D[e] * xv;
      p.y.set(i, out * siluf(p.xz[b * p.C + p.E + e]));
    }
  }
}

template <int G>
void launchSsmStep(const SsmStep& p, size_t sharedBytes) {
  const long long perBlock = kSsmThreads / G;
  const long long yBlocks = p.B < 65535 ? p.B : 65535;
  dim3 grid(static_cast<unsigned>((p.E + perBlock - 1) / perBlock), static_cast<unsigned>(yBlocks));
  ssmStepKernel<G><<<grid, kSsmThreads, sharedBytes, stream()>>>(p);
}

/** state, x, xz, dbc, dtWeight, dtBias?, ALog, D?, softplus, B, E, N, R, C, y, stateOut */
void ssmStepOp(Args& a) {
  SsmStep p;
  p.state = readIn(a);
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
  const size_t sharedBytes = sizeof(float) * static_cast<size_t>(p.R + 2 * p.N);
  if (sharedBytes > 48 * 1024) {
    throw Failure("ssmStep: a dbc row of R + 2N = " + std::to_string(p.R + 2 * p.N) +
                  " values does not fit the 48 KiB of shared memory the kernel stages it in (at most 12288 values).");
  }
  if (p.N <= 8) launchSsmStep<8>(p, sharedBytes);
  else if (p.N <= 16) launchSsmStep<16>(p, sharedBytes);
  else launchSsmStep<32>(p, sharedBytes);
}

MCUDA_OP("residualRmsNorm", residualRmsNormOp);
MCUDA_OP("convStep", convStepOp);
MCUDA_OP("ssmStep", ssmStepOp);

}  // namespace
}  // namespace mcuda
