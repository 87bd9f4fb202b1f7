// Depthwise causal conv1d, token-major (B, L, E), weight (E, W), PyTorch cross-correlation order:
//
//   y[b,t,e] = act(bias[e] + Σ_k weight[e,k] · xin[b, t − (W−1) + k, e])
//
// with xin[s] = x[s] for s ≥ 0 and the initial state (B, E, W−1), oldest first, for −(W−1) ≤ s < 0 (zeros
// without one). Backward, with g = dy·act'(pre):
//
//   dx[s] = Σ_k g[s + (W−1) − k] · weight[e,k]   (s < 0: the initial state's gradient)
//   dweight[e,k] = Σ_{b,t} g[t] · xin[t − (W−1) + k],   dbias[e] = Σ_{b,t} g[t]
//
// Fast path (W ≤ kMaxWidth, x/y/dy/dx of one float dtype): one thread owns kVec adjacent channels over a tile of
// kTile steps. It loads the tile's inputs and the W−1 before it into registers at once (one memory latency per tile)
// and slides the W-tap window over them, so every element is loaded once (plus a W−1 halo per tile) with kVec-wide
// accesses, the weight row stays in registers, and no index is divided per element. Widths below kMaxWidth are
// run as kMaxWidth with zero weights in front (the padded taps read zeros, never memory). The backward kernel
// recomputes the pre-activation in registers, forms g for its tile and the W−1 steps after it (the halo that dx
// needs), accumulates dx in a window of W running sums, and adds dweight/dbias over its tile; the threads of a block
// add theirs in shared memory in a fixed order, one partial row per block, and a second kernel adds the rows in a
// fixed order: gradients are bit-identical run to run (no atomics).
//
// Other shapes (W > kMaxWidth, mixed dtypes) take the per-element kernels at the end of the file.
#include <initializer_list>

#include "device.cuh"
#include "../profile.h"

namespace mcuda {
namespace {

/** Widest kernel run by the register-window kernels (Mamba uses 4). */
constexpr int kMaxWidth = 4;
/** Time steps per thread. */
constexpr int kTile = 16;
/** Adjacent channels per thread (one 2-element access). */
constexpr int kVec = 2;
/** blockDim.x: threads across channels; a block covers kChannelThreads·kVec channels. */
constexpr int kChannelThreads = 32;
/** Most tiles per block (blockDim.y): threads of one block over consecutive tiles of one sequence. */
constexpr int kMaxTilesPerBlock = 8;
constexpr int kBlockChannels = kChannelThreads * kVec;

struct ConvDims {
  long long B, L, E, W;
};

struct ConvInputs {
  In x, weight, bias, init;
  bool silu;
};

/** How a launch of the tiled kernels covers (B, L, E): blockIdx.x = (b, span of tiles), blockIdx.y = channel block. */
struct ConvGrid {
  int tilesPerBlock;        // blockDim.y
  unsigned spansPerBatch;   // ceil(L / (kTile · tilesPerBlock))
  bool vector;              // kVec-wide accesses: E % kVec == 0 and the token tensors aligned
};

/** The piece of the problem one thread owns: batch b, steps [t0, t0 + kTile) ∩ [0, L), channels [e0, e0 + valid). */
struct ConvTile {
  long long b, t0, e0;
  int valid;
};

__device__ __forceinline__ ConvTile tileOf(const ConvDims& d, const ConvGrid& g) {
  ConvTile tile;
  unsigned span = blockIdx.x % g.spansPerBatch;
  tile.b = blockIdx.x / g.spansPerBatch;
  tile.t0 = (static_cast<long long>(span) * g.tilesPerBlock + threadIdx.y) * kTile;
  tile.e0 = (static_cast<long long>(blockIdx.y) * kChannelThreads + threadIdx.x) * kVec;
  long long left = d.E - tile.e0;
  tile.valid = left <= 0 ? 0 : left < kVec ? static_cast<int>(left) : kVec;
  if (tile.t0 >= d.L) tile.valid = 0;
  return tile;
}

/** The weights of the tile's channels, padded in front to kMaxWidth taps (w[k][j]: tap k of channel e0 + j). */
__device__ __forceinline__ void loadWeights(const ConvInputs& in, const ConvDims& d, const ConvTile& tile,
                                            float (&w)[kMaxWidth][kVec], float (&bias)[kVec]) {
  int pad = kMaxWidth - static_cast<int>(d.W);
#pragma unroll
  for (int j = 0; j < kVec; j++) {
    long long e = tile.e0 + j;
    bool real = j < tile.valid;
    bias[j] = real && in.bias.present() ? in.bias[e] : 0.0f;
#pragma unroll
    for (int k = 0; k < kMaxWidth; k++) w[k][j] = real && k >= pad ? in.weight[e * d.W + (k - pad)] : 0.0f;
  }
}

/** xin at step s (any s < L) for the tile's channels: x, the initial state for −(W−1) ≤ s < 0, else 0. */
template <class T>
__device__ __forceinline__ void loadInput(const ConvInputs& in, const ConvDims& d, const ConvTile& tile, bool vector,
                                          long long s, float (&v)[kVec]) {
  if (s >= 0) {
    loadPack<T, kVec>(in.x.p, (tile.b * d.L + s) * d.E + tile.e0, tile.valid, vector, v);
    return;
  }
  bool fromState = in.init.present() && s >= -(d.W - 1);
#pragma unroll
  for (int j = 0; j < kVec; j++) {
    long long e = tile.e0 + j;
    v[j] = fromState && j < tile.valid ? in.init[(tile.b * d.E + e) * (d.W - 1) + (d.W - 1) + s] : 0.0f;
  }
}

__device__ __forceinline__ float preActivation(const float (&w)[kMaxWidth][kVec], const float (&bias)[kVec],
                                               const float (*window)[kVec], int j) {
  float acc = bias[j];
#pragma unroll
  for (int k = 0; k < kMaxWidth; k++) acc += w[k][j] * window[k][j];
  return acc;
}

// Minimum resident blocks per multiprocessor: caps registers (64 forward, 128 backward) for occupancy; a few bytes
// of spill cost less than half the warps.
template <class T>
__global__ void __launch_bounds__(kChannelThreads * kMaxTilesPerBlock, 4)
    convForwardTiledKernel(ConvInputs in, ConvDims d, ConvGrid g, Out y) {
  ConvTile tile = tileOf(d, g);
  if (tile.valid == 0) return;
  float w[kMaxWidth][kVec], bias[kVec];
  loadWeights(in, d, tile, w, bias);
  // xs[i]: xin at step t0 − (kMaxWidth − 1) + i. All loads are issued before any arithmetic.
  float xs[kTile + kMaxWidth - 1][kVec];
#pragma unroll
  for (int i = 0; i < kMaxWidth - 1; i++) loadInput<T>(in, d, tile, g.vector, tile.t0 - (kMaxWidth - 1) + i, xs[i]);
  int steps = d.L - tile.t0 < kTile ? static_cast<int>(d.L - tile.t0) : kTile;
  long long row = (tile.b * d.L + tile.t0) * d.E + tile.e0;
#pragma unroll
  for (int i = 0; i < kTile; i++) {
    if (i < steps) loadPack<T, kVec>(in.x.p, row + i * d.E, tile.valid, g.vector, xs[kMaxWidth - 1 + i]);
  }
#pragma unroll
  for (int i = 0; i < kTile; i++) {
    if (i >= steps) break;
    float out[kVec];
#pragma unroll
    for (int j = 0; j < kVec; j++) {
      float pre = preActivation(w, bias, &xs[i], j);
      out[j] = in.silu ? siluf(pre) : pre;
    }
    storePack<T, kVec>(y.p, row + i * d.E, tile.valid, g.vector, out);
  }
}

/** Shared memory of the backward kernel: per tile row, its dweight (taps 0..W−1) and dbias (tap W) per channel. */
struct ConvGradShared {
  float sums[kMaxTilesPerBlock][kMaxWidth + 1][kBlockChannels];
};

/**
 * dx (and dinit) for the tile's steps; the block's dweight/dbias into partial[blockIdx.x, tap, e] (taps 0..W−1 the
 * weight, tap W the bias), laid out (rows, W + 1, E).
 */
template <class T>
__global__ void __launch_bounds__(kChannelThreads * kMaxTilesPerBlock, 2)
    convBackwardTiledKernel(ConvInputs in, ConvDims d, ConvGrid g, In dy, Out dx, Out dinit, float* partial) {
  constexpr int kSteps = kTile + kMaxWidth - 1;  // g over the tile and the halo after it
  __shared__ ConvGradShared shared;
  ConvTile tile = tileOf(d, g);
  float dw[kMaxWidth][kVec] = {}, db[kVec] = {};

  if (tile.valid > 0) {
    float w[kMaxWidth][kVec], bias[kVec];
    loadWeights(in, d, tile, w, bias);
    // xs[i]: xin at step t0 − (kMaxWidth − 1) + i; gs[i]: dy at t0 + i (0 at and past L, so g is 0 there).
    float xs[kSteps + kMaxWidth - 1][kVec], gs[kSteps][kVec];
#pragma unroll
    for (int i = 0; i < kMaxWidth - 1; i++) loadInput<T>(in, d, tile, g.vector, tile.t0 - (kMaxWidth - 1) + i, xs[i]);
    long long rowsLeft = d.L - tile.t0;
    int steps = rowsLeft < kSteps ? static_cast<int>(rowsLeft) : kSteps;
    long long row = (tile.b * d.L + tile.t0) * d.E + tile.e0;
#pragma unroll
    for (int i = 0; i < kSteps; i++) {
      if (i < steps) {
        loadPack<T, kVec>(in.x.p, row + i * d.E, tile.valid, g.vector, xs[kMaxWidth - 1 + i]);
        loadPack<T, kVec>(dy.p, row + i * d.E, tile.valid, g.vector, gs[i]);
      } else {
#pragma unroll
        for (int j = 0; j < kVec; j++) xs[kMaxWidth - 1 + i][j] = gs[i][j] = 0.0f;
      }
    }

    // acc[k]: the dx sum of step t − (kMaxWidth − 1) + k while step t's g is added; acc[0] is then complete.
    float acc[kMaxWidth][kVec] = {};
    bool firstTile = tile.t0 == 0 && dinit.present();
#pragma unroll
    for (int i = 0; i < kSteps; i++) {
#pragma unroll
      for (int j = 0; j < kVec; j++) {
        float gv = in.silu ? gs[i][j] * siluGradf(preActivation(w, bias, &xs[i], j)) : gs[i][j];
        if (i < kTile) {
          db[j] += gv;
#pragma unroll
          for (int k = 0; k < kMaxWidth; k++) dw[k][j] += gv * xs[i + k][j];
        }
#pragma unroll
        for (int k = 0; k < kMaxWidth; k++) acc[k][j] += gv * w[k][j];
      }
      long long s = tile.t0 + i - (kMaxWidth - 1);
      if (i >= kMaxWidth - 1) {
        if (s < d.L) storePack<T, kVec>(dx.p, row + (i - (kMaxWidth - 1)) * d.E, tile.valid, g.vector, acc[0]);
      } else if (firstTile && s >= -(d.W - 1)) {
#pragma unroll
        for (int j = 0; j < kVec; j++) {
          if (j < tile.valid) dinit.set((tile.b * d.E + tile.e0 + j) * (d.W - 1) + (d.W - 1) + s, acc[0][j]);
        }
      }
#pragma unroll
      for (int k = 0; k < kMaxWidth - 1; k++) {
#pragma unroll
        for (int j = 0; j < kVec; j++) acc[k][j] = acc[k + 1][j];
      }
#pragma unroll
      for (int j = 0; j < kVec; j++) acc[kMaxWidth - 1][j] = 0.0f;
    }
  }

  // The block's sums, tile rows added in order; real taps only (the padded ones come first).
  int pad = kMaxWidth - static_cast<int>(d.W);
#pragma unroll
  for (int j = 0; j < kVec; j++) {
    int c = threadIdx.x * kVec + j;
#pragma unroll
    for (int k = 0; k < kMaxWidth; k++) {
      if (k >= pad) shared.sums[threadIdx.y][k - pad][c] = dw[k][j];
    }
    shared.sums[threadIdx.y][d.W][c] = db[j];
  }
  __syncthreads();
  int taps = static_cast<int>(d.W) + 1;
  long long eBase = static_cast<long long>(blockIdx.y) * kBlockChannels;
  for (int i = threadIdx.y * kChannelThreads + threadIdx.x; i < taps * kBlockChannels; i += kChannelThreads * blockDim.y) {
    int k = i / kBlockChannels, c = i % kBlockChannels;
    if (eBase + c >= d.E) continue;
    float sum = 0.0f;
    for (int r = 0; r < static_cast<int>(blockDim.y); r++) sum += shared.sums[r][k][c];
    partial[(static_cast<long long>(blockIdx.x) * taps + k) * d.E + eBase + c] = sum;
  }
}

/** Writes the column sums of partial (rows, W + 1, E): column k·E + e is dweight[e, k] (k < W) or dbias[e] (k = W). */
struct ConvWeightGradStore {
  Out dweight, dbias;
  long long E, W;
  __device__ __forceinline__ void operator()(long long i, double sum) const {
    long long k = i / E, e = i % E;
    if (k < W) dweight.set(e * W + k, static_cast<float>(sum));
    else if (dbias.present()) dbias.set(e, static_cast<float>(sum));
  }
};

// ---- any width, any dtypes: one thread per element ----

/** Input at time s of (b, e), reading the initial state for s < 0. */
__device__ __forceinline__ float inputAt(const ConvInputs& in, const ConvDims& d, long long b, long long s, long long e) {
  if (s >= 0) return in.x[(b * d.L + s) * d.E + e];
  if (!in.init.present()) return 0.0f;
  return in.init[(b * d.E + e) * (d.W - 1) + (d.W - 1) + s];
}

__device__ __forceinline__ float preActivationAt(const ConvInputs& in, const ConvDims& d, long long b, long long t,
                                                 long long e) {
  float acc = in.bias.present() ? in.bias[e] : 0.0f;
  for (long long k = 0; k < d.W; k++) acc += in.weight[e * d.W + k] * inputAt(in, d, b, t - (d.W - 1) + k, e);
  return acc;
}

__global__ void convForwardAnyKernel(ConvInputs in, ConvDims d, Out y) {
  long long n = d.B * d.L * d.E;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    long long e = i % d.E, bt = i / d.E, t = bt % d.L, b = bt / d.L;
    float pre = preActivationAt(in, d, b, t, e);
    y.set(i, in.silu ? siluf(pre) : pre);
  }
}

/** g = dy · act'(pre), f32. */
__global__ void convPreGradAnyKernel(ConvInputs in, ConvDims d, In dy, float* g) {
  long long n = d.B * d.L * d.E;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    long long e = i % d.E, bt = i / d.E, t = bt % d.L, b = bt / d.L;
    g[i] = in.silu ? dy[i] * siluGradf(preActivationAt(in, d, b, t, e)) : dy[i];
  }
}

/** For every input time s in [−(W−1), L): Σ_k g[t = s + (W−1) − k] · weight[e,k] → dx (s ≥ 0) or dinit (s < 0). */
__global__ void convInputGradAnyKernel(ConvInputs in, ConvDims d, const float* g, Out dx, Out dinit) {
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

/** partial[slice, k, e] = Σ over the slice's (b, t) of g · xin(t − (W−1) + k) (k < W) or g (k = W, the bias). */
__global__ void convWeightGradAnyKernel(ConvInputs in, ConvDims d, const float* g, float* partial,
                                        long long rowsPerSlice) {
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
  partial[(slice * (d.W + 1) + k) * d.E + e] = acc;
}

unsigned gridFor(long long n) {
  unsigned blocks = blocksFor(n, 256), cap = multiprocessors() * 16;
  return blocks < cap ? blocks : cap;
}

// ---- host side ----

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

/** Whether the tiled kernels take these tensors: width ≤ kMaxWidth, the token tensors of one float dtype, and a
 *  grid within CUDA's limits (gridDim.y ≤ 65535 channel blocks). */
bool tiled(const ConvDims& d, int dtype, std::initializer_list<int> others) {
  if (d.W > kMaxWidth || !(dtype == F32 || dtype == F16 || dtype == BF16)) return false;
  if (d.E > 65535LL * kBlockChannels || d.B * ((d.L + kTile - 1) / kTile) > 0x7fffffffLL) return false;
  for (int o : others)
    if (o != dtype) return false;
  return true;
}

template <class T>
ConvGrid gridOf(const ConvDims& d, std::initializer_list<const void*> tokens, dim3& blocks, dim3& threads) {
  ConvGrid g;
  long long tiles = (d.L + kTile - 1) / kTile;
  g.tilesPerBlock = static_cast<int>(tiles < kMaxTilesPerBlock ? tiles : kMaxTilesPerBlock);
  g.spansPerBatch = static_cast<unsigned>((tiles + g.tilesPerBlock - 1) / g.tilesPerBlock);
  g.vector = d.E % kVec == 0;
  for (const void* p : tokens) g.vector = g.vector && packAligned<T, kVec>(p);
  blocks = dim3(static_cast<unsigned>(d.B) * g.spansPerBatch, static_cast<unsigned>((d.E + kBlockChannels - 1) / kBlockChannels));
  threads = dim3(kChannelThreads, g.tilesPerBlock);
  return g;
}

/** prefix, y */
void causalConv1dOp(Args& a) {
  ConvInputs in;
  ConvDims d;
  readConv(a, in, d);
  Out y = readOut(a);
  long long n = d.B * d.L * d.E;
  if (n == 0) return;
  if (!tiled(d, in.x.dtype, {y.dtype})) {
    convForwardAnyKernel<<<gridFor(n), 256, 0, stream()>>>(in, d, y);
    return;
  }
  withFloatType(in.x.dtype, [&](auto tag) {
    using T = decltype(tag);
    dim3 blocks, threads;
    ConvGrid g = gridOf<T>(d, {in.x.p, y.p}, blocks, threads);
    convForwardTiledKernel<T><<<blocks, threads, 0, stream()>>>(in, d, g, y);
  });
}

/** dweight and dbias from the (rows, W + 1, E) partial sums, rows added in a fixed order. */
void sumWeightGradRows(const float* partial, long long rows, const ConvDims& d, Out dweight, Out dbias) {
  long long n = (d.W + 1) * d.E;
  ConvWeightGradStore store{dweight, dbias, d.E, d.W};
  sumRowsKernel<<<blocksFor(n, 32), dim3(32, kSumRowGroups), 0, stream()>>>(partial, static_cast<int>(rows), n, store);
}

void causalConv1dGradAny(const ConvInputs& in, const ConvDims& d, In dy, Out dx, Out dweight, Out dbias, Out dinit) {
  long long n = d.B * d.L * d.E;
  Scratch g(n * sizeof(float));
  if (n > 0) convPreGradAnyKernel<<<gridFor(n), 256, 0, stream()>>>(in, d, dy, g.as<float>());
  long long inputs = d.B * (d.L + d.W - 1) * d.E;
  if (inputs > 0 && d.L > 0) convInputGradAnyKernel<<<gridFor(inputs), 256, 0, stream()>>>(in, d, g.as<float>(), dx, dinit);

  long long rows = d.B * d.L;
  long long slices = rows < 64 ? 1 : (rows + 63) / 64;
  if (slices > 256) slices = 256;
  long long rowsPerSlice = rows == 0 ? 1 : (rows + slices - 1) / slices;
  Scratch partial(sizeof(float) * slices * d.E * (d.W + 1));
  MCUDA_PROFILE_RANGE("conv.backward weight");
  dim3 grid(blocksFor(d.E, 128), static_cast<unsigned>(d.W + 1), static_cast<unsigned>(slices));
  convWeightGradAnyKernel<<<grid, 128, 0, stream()>>>(in, d, g.as<float>(), partial.as<float>(), rowsPerSlice);
  sumWeightGradRows(partial.as<float>(), slices, d, dweight, dbias);
}

/** prefix, dy, dx, dweight, dbias?, dinit? */
void causalConv1dGradOp(Args& a) {
  ConvInputs in;
  ConvDims d;
  readConv(a, in, d);
  In dy = readIn(a);
  Out dx = readOut(a), dweight = readOut(a), dbias = readOut(a), dinit = readOut(a);
  MCUDA_PROFILE_RANGE("conv.backward (input and weight)");
  if (d.E == 0) return;
  if (d.B * d.L == 0) {
    // No steps: every weight gradient is an empty sum, as is the initial state's.
    zeroFill(dweight.p, d.E * d.W * bytesOf(dweight.dtype));
    if (dbias.present()) zeroFill(dbias.p, d.E * bytesOf(dbias.dtype));
    if (dinit.present()) zeroFill(dinit.p, d.B * d.E * (d.W - 1) * bytesOf(dinit.dtype));
    return;
  }
  if (!tiled(d, in.x.dtype, {dy.dtype, dx.dtype})) {
    causalConv1dGradAny(in, d, dy, dx, dweight, dbias, dinit);
    return;
  }
  withFloatType(in.x.dtype, [&](auto tag) {
    using T = decltype(tag);
    dim3 blocks, threads;
    ConvGrid g = gridOf<T>(d, {in.x.p, dy.p, dx.p}, blocks, threads);
    long long rows = blocks.x;
    Scratch partial(sizeof(float) * rows * (d.W + 1) * d.E);
    convBackwardTiledKernel<T><<<blocks, threads, 0, stream()>>>(in, d, g, dy, dx, dinit, partial.as<float>());
    MCUDA_PROFILE_RANGE("conv.backward weight sum");
    sumWeightGradRows(partial.as<float>(), rows, d, dweight, dbias);
  });
}

MCUDA_OP("causalConv1d", causalConv1dOp);
MCUDA_OP("causalConv1dGrad", causalConv1dGradOp);

}  // namespace
}  // namespace mcuda
