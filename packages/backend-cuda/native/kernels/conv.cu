// Depthwise causal conv1d, token-major (B, L, E), weight (E, W), PyTorch cross-correlation order:
//
//   y[b,t,e] = act(bias[e] + Σ_k weight[e,k] · xin[b, t − (W−1) + k, e])
//
// with xin[s] = x[s] for s ≥ 0 and the initial state (B, E, W−1), oldest first, for −(W−1) ≤ s < 0 (zeros
// without one). Backward: g = dy·act'(pre) is formed once; dx (and the initial state's gradient) gathers g along
// the W taps; dweight/dbias sum over (b, t) in per-slice partials, then across slices (deterministic).
#include "device.cuh"
#include "../profile.h"

namespace mcuda {
namespace {

struct ConvDims {
  long long B, L, E, W;
};

struct ConvInputs {
  In x, weight, bias, init;
  bool silu;
};

/** Input at time s of (b, e), reading the initial state for s < 0. */
__device__ __forceinline__ float inputAt(const ConvInputs& in, const ConvDims& d, long long b, long long s, long long e) {
  if (s >= 0) return in.x[(b * d.L + s) * d.E + e];
  if (!in.init.present()) return 0.0f;
  return in.init[(b * d.E + e) * (d.W - 1) + (d.W - 1) + s];
}

__device__ __forceinline__ float preActivation(const ConvInputs& in, const ConvDims& d, long long b, long long t,
                                               long long e) {
  float acc = in.bias.present() ? in.bias[e] : 0.0f;
  for (long long k = 0; k < d.W; k++) acc += in.weight[e * d.W + k] * inputAt(in, d, b, t - (d.W - 1) + k, e);
  return acc;
}

__global__ void convForwardKernel(ConvInputs in, ConvDims d, Out y) {
  long long n = d.B * d.L * d.E;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    long long e = i % d.E, bt = i / d.E, t = bt % d.L, b = bt / d.L;
    float pre = preActivation(in, d, b, t, e);
    y.set(i, in.silu ? siluf(pre) : pre);
  }
}

/** g = dy · act'(pre), f32. */
__global__ void convPreGradKernel(ConvInputs in, ConvDims d, In dy, float* g) {
  long long n = d.B * d.L * d.E;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    long long e = i % d.E, bt = i / d.E, t = bt % d.L, b = bt / d.L;
    g[i] = in.silu ? dy[i] * siluGradf(preActivation(in, d, b, t, e)) : dy[i];
  }
}

/** For every input time s in [−(W−1), L): Σ_k g[t = s + (W−1) − k] · weight[e,k] → dx (s ≥ 0) or dinit (s < 0). */
__global__ void convInputGradKernel(ConvInputs in, ConvDims d, const float* g, Out dx, Out dinit) {
  long long span = d.L + d.W - 1;
  long long n = d.B * span * d.E;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    long long e = i % d.E, bs = i / d.E, s = bs % span - (d.W - 1), b = bs / span;
    if (s < 0 && !dinit.present()) continue;
    float acc = 0.0f;
    for (long long k = 0; k < d.W; k++) {
      long long t = s + (d.W - 1) - k;
      if (t >= 0 && t < d.L) acc += g[(b * d.L + t) * d.E + e] * in.weight[e * d.W + k];
    }
    if (s >= 0) dx.set((b * d.L + s) * d.E + e, acc);
    else dinit.set((b * d.E + e) * (d.W - 1) + (d.W - 1) + s, acc);
  }
}

/** partial[slice, e, k] = Σ over the slice's (b, t) of g · xin(t − (W−1) + k) (k < W) or g (k = W, the bias). */
__global__ void convWeightGradKernel(ConvInputs in, ConvDims d, const float* g, float* partial, long long rowsPerSlice) {
  long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  long long k = blockIdx.y;
  long long slice = blockIdx.z;
  if (e >= d.E) return;
  long long rows = d.B * d.L;
  long long r0 = slice * rowsPerSlice, r1 = min(rows, r0 + rowsPerSlice);
  float acc = 0.0f;
  for (long long r = r0; r < r1; r++) {
    long long b = r / d.L, t = r % d.L;
    float gv = g[r * d.E + e];
    acc += k < d.W ? gv * inputAt(in, d, b, t - (d.W - 1) + k, e) : gv;
  }
  partial[(slice * d.E + e) * (d.W + 1) + k] = acc;
}

__global__ void convWeightGradSumKernel(const float* partial, long long slices, ConvDims d, Out dweight, Out dbias) {
  long long n = d.E * (d.W + 1);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    double acc = 0.0;
    for (long long s = 0; s < slices; s++) acc += partial[s * n + i];
    long long e = i / (d.W + 1), k = i % (d.W + 1);
    if (k < d.W) dweight.set(e * d.W + k, static_cast<float>(acc));
    else if (dbias.present()) dbias.set(e, static_cast<float>(acc));
  }
}

unsigned gridFor(long long n) {
  unsigned blocks = blocksFor(n, 256), cap = multiprocessors() * 16;
  return blocks < cap ? blocks : cap;
}

/** Shared prefix: x, weight, bias?, init?, silu, B, L, E, W (absent inputs have address 0). */
void readConv(Args& a, ConvInputs& in, ConvDims& d) {
  in.x = readIn(a);
  in.weight = readIn(a);
  in.bias = readIn(a);
  in.init = readIn(a);
  in.silu = a.flag();
  d.B = a.i64();
  d.L = a.i64();
  d.E = a.i64();
  d.W = a.i64();
}

/** prefix, y */
void causalConv1dOp(Args& a) {
  ConvInputs in;
  ConvDims d;
  readConv(a, in, d);
  Out y = readOut(a);
  long long n = d.B * d.L * d.E;
  if (n == 0) return;
  convForwardKernel<<<gridFor(n), 256, 0, stream()>>>(in, d, y);
}

/** prefix, dy, dx, dweight, dbias?, dinit? */
void causalConv1dGradOp(Args& a) {
  ConvInputs in;
  ConvDims d;
  readConv(a, in, d);
  In dy = readIn(a);
  Out dx = readOut(a), dweight = readOut(a), dbias = readOut(a), dinit = readOut(a);
  long long n = d.B * d.L * d.E;
  Scratch g(n * sizeof(float));
  MCUDA_PROFILE_RANGE("conv.backward (input and weight)");
  if (n > 0) convPreGradKernel<<<gridFor(n), 256, 0, stream()>>>(in, d, dy, g.as<float>());
  long long inputs = d.B * (d.L + d.W - 1) * d.E;
  if (d.L == 0 && dinit.present()) zeroFill(dinit.p, d.B * d.E * (d.W - 1) * bytesOf(dinit.dtype));
  if (inputs > 0 && d.L > 0) convInputGradKernel<<<gridFor(inputs), 256, 0, stream()>>>(in, d, g.as<float>(), dx, dinit);

  long long rows = d.B * d.L;
  long long slices = rows < 64 ? 1 : (rows + 63) / 64;
  if (slices > 256) slices = 256;
  long long rowsPerSlice = rows == 0 ? 1 : (rows + slices - 1) / slices;
  if (d.E == 0) return;
  Scratch partial(sizeof(float) * slices * d.E * (d.W + 1));
  MCUDA_PROFILE_RANGE("conv.backward weight");
  dim3 grid(blocksFor(d.E, 128), static_cast<unsigned>(d.W + 1), static_cast<unsigned>(slices));
  convWeightGradKernel<<<grid, 128, 0, stream()>>>(in, d, g.as<float>(), partial.as<float>(), rowsPerSlice);
  convWeightGradSumKernel<<<gridFor(d.E * (d.W + 1)), 256, 0, stream()>>>(partial.as<float>(), slices, d, dweight, dbias);
}

MCUDA_OP("causalConv1d", causalConv1dOp);
MCUDA_OP("causalConv1dGrad", causalConv1dGradOp);

}  // namespace
}  // namespace mcuda
