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
// Fast path (W ≤ kTaps, x/y/dy/dx of one float dtype): one thread owns V adjacent channels (one 8- or 16-byte
// access, see ConvShape; 1 channel when E or an address does not allow the vector) over a span of consecutive
// steps, which it walks in chunks of kChunk steps: the loads of the next chunk are issued before the current one is
// computed, and the W−1 inputs before the step (and, backward, the partial dx sums after it) slide along in
// registers, so every element is loaded once plus a W−1 halo per span. The weight row stays in registers. Widths
// below kTaps run as kTaps with zero weights in front (the padded taps read zeros, never memory). Consecutive
// threads of a warp own consecutive channel groups of the same step (coalesced), and the host sizes the spans so
// that the whole grid is resident at once.
//
// The backward kernel recomputes the pre-activation in registers and forms g once per step; a span's last W−1 dx
// values also need g of the W−1 steps after the span, which it recomputes (the halo). dweight/dbias are summed per
// thread over its span, then over the block's threads in shared memory in a fixed order (one partial row per
// block), then over the rows by a second kernel in a fixed order: gradients are bit-identical run to run (no
// atomics).
//
// Other shapes (W > kTaps, mixed dtypes) take the per-element kernels at the end of the file.
#include <climits>
#include <initializer_list>

#include "device.cuh"
#include "../profile.h"

namespace mcuda {
namespace {

/** Widest kernel run by the register-window kernels (Mamba uses 4). */
constexpr int kTaps = 4;
/** blockDim.x: threads across channel groups. */
constexpr int kLanes = 32;
/** blockDim.y: spans (runs of steps) per block. */
constexpr int kRows = 4;
constexpr int kThreads = kLanes * kRows;

/**
 * Per direction and dtype: kWide channels per thread when E and the addresses allow it (else 1), kChunk steps per
 * chunk, and the launch bound (minimum resident blocks of kThreads, which caps the registers). Chosen from ptxas
 * (sm_90, no spills): a thread keeps 32–128 bytes of loads in flight while it computes, and 20–32 warps stay
 * resident per multiprocessor. The backward holds the weights, their sums and two windows per channel, so it takes
 * narrower vectors. Registers: forward 80 (f32) / 96 (halves) / 64 (narrow); backward 96 / 96 / 80.
 */
template <class T, bool kBackward>
struct ConvShape;

template <class T>
struct ConvShape<T, false> {
  static constexpr int kWide = 4;  // 16 bytes of f32, 8 of f16/bf16
  static constexpr int kChunkWide = sizeof(T) == 4 ? 4 : 8;
  static constexpr int kMinBlocksWide = sizeof(T) == 4 ? 6 : 5;
  static constexpr int kChunkNarrow = 8;
  static constexpr int kMinBlocksNarrow = 8;
};

template <class T>
struct ConvShape<T, true> {
  static constexpr int kWide = 2;  // 8 bytes of f32, 4 of f16/bf16
  static constexpr int kChunkWide = sizeof(T) == 4 ? 4 : 8;
  static constexpr int kMinBlocksWide = 5;
  static constexpr int kChunkNarrow = 4;
  static constexpr int kMinBlocksNarrow = 6;
};

struct ConvDims {
  long long B, L, E, W;
};

struct ConvInputs {
  In x, weight, bias, init;
  bool silu;
};

/** How a launch covers (B, L, E): blockIdx.x = rowBlock · channelBlocks + channel block; a row block holds kRows
 *  spans of spanSteps steps (spans numbered b · spansPerSeq + i), a channel block kLanes groups of V channels. */
struct ConvGrid {
  long long groups;         // channel groups: E / V
  unsigned channelBlocks;   // ceil(groups / kLanes)
  long long spansPerSeq;    // ceil(L / spanSteps)
  long long spans;          // B · spansPerSeq
  long long spanSteps;      // a multiple of the kernel's kChunk
};

/** What one thread owns: batch b, steps [t0, tEnd), channels [e0, e0 + V). */
struct ConvSpan {
  long long b, t0, tEnd, e0;
  bool active;
};

template <int V>
__device__ __forceinline__ ConvSpan spanOf(const ConvDims& d, const ConvGrid& g) {
  unsigned channelBlock = blockIdx.x % g.channelBlocks, rowBlock = blockIdx.x / g.channelBlocks;
  long long group = static_cast<long long>(channelBlock) * kLanes + threadIdx.x;
  long long span = static_cast<long long>(rowBlock) * kRows + threadIdx.y;
  ConvSpan s;
  s.active = group < g.groups && span < g.spans;
  s.b = span / g.spansPerSeq;
  s.t0 = (span % g.spansPerSeq) * g.spanSteps;
  s.tEnd = min(d.L, s.t0 + g.spanSteps);
  s.e0 = group * V;
  return s;
}

/** σ(x) from the hardware exp2 and reciprocal: a few units in the last place, which the activations tolerate.
 *  Saturates cleanly: x → −∞ gives 0 (1/∞), x → +∞ gives 1. */
__device__ __forceinline__ float fastSigmoid(float x) { return __fdividef(1.0f, 1.0f + __expf(-x)); }

/** The weights of the thread's channels, padded in front to kTaps taps (w[k][j]: tap k of channel e0 + j). */
template <int V>
__device__ __forceinline__ void loadWeights(const ConvInputs& in, const ConvDims& d, long long e0,
                                            float (&w)[kTaps][V], float (&bias)[V]) {
  int pad = kTaps - static_cast<int>(d.W);
#pragma unroll
  for (int j = 0; j < V; j++) {
    long long e = e0 + j;
    bias[j] = in.bias.present() ? in.bias[e] : 0.0f;
#pragma unroll
    for (int k = 0; k < kTaps; k++) w[k][j] = k >= pad ? in.weight[e * d.W + (k - pad)] : 0.0f;
  }
}

/**
 * V elements of T as loaded: whole 32-bit words (one 4-, 8- or 16-byte access), or one 16-bit half for V = 1. Kept
 * as words so that a pair of halves takes one register until it is converted.
 */
template <class T, int V>
struct Pack {
  static constexpr int kBytes = static_cast<int>(sizeof(T)) * V;
  static constexpr int kWords = kBytes >= 4 ? kBytes / 4 : 1;
  using Word = std::conditional_t<(kBytes >= 4), unsigned, unsigned short>;
  Word w[kWords];
};

template <class T, int V>
__device__ __forceinline__ Pack<T, V> loadPack(const T* p) {
  Pack<T, V> r;
  if constexpr (Pack<T, V>::kBytes == 16) {
    uint4 u = *reinterpret_cast<const uint4*>(p);
    r.w[0] = u.x, r.w[1] = u.y, r.w[2] = u.z, r.w[3] = u.w;
  } else if constexpr (Pack<T, V>::kBytes == 8) {
    uint2 u = *reinterpret_cast<const uint2*>(p);
    r.w[0] = u.x, r.w[1] = u.y;
  } else {
    r.w[0] = *reinterpret_cast<const typename Pack<T, V>::Word*>(p);
  }
  return r;
}

template <class T, int V>
__device__ __forceinline__ void storePack(T* p, const Pack<T, V>& r) {
  if constexpr (Pack<T, V>::kBytes == 16) {
    *reinterpret_cast<uint4*>(p) = make_uint4(r.w[0], r.w[1], r.w[2], r.w[3]);
  } else if constexpr (Pack<T, V>::kBytes == 8) {
    *reinterpret_cast<uint2*>(p) = make_uint2(r.w[0], r.w[1]);
  } else {
    *reinterpret_cast<typename Pack<T, V>::Word*>(p) = r.w[0];
  }
}

/** Element j of a pack as float (bf16: the high 16 bits of a float; f16: the hardware conversion). */
template <class T, int V>
__device__ __forceinline__ void toFloats(const Pack<T, V>& r, float (&v)[V]) {
  if constexpr (std::is_same_v<T, float>) {
#pragma unroll
    for (int j = 0; j < V; j++) v[j] = __uint_as_float(r.w[j]);
  } else if constexpr (V == 1) {
    if constexpr (std::is_same_v<T, __half>) v[0] = __half2float(__ushort_as_half(r.w[0]));
    else v[0] = __uint_as_float(static_cast<unsigned>(r.w[0]) << 16);
  } else {
#pragma unroll
    for (int q = 0; q < V / 2; q++) {
      if constexpr (std::is_same_v<T, __half>) {
        float2 f = __half22float2(*reinterpret_cast<const __half2*>(&r.w[q]));
        v[2 * q] = f.x, v[2 * q + 1] = f.y;
      } else {
        v[2 * q] = __uint_as_float(r.w[q] << 16);
        v[2 * q + 1] = __uint_as_float(r.w[q] & 0xffff0000u);
      }
    }
  }
}

/** The pack of v rounded to T (to nearest even, as storef). */
template <class T, int V>
__device__ __forceinline__ Pack<T, V> fromFloats(const float (&v)[V]) {
  Pack<T, V> r;
  if constexpr (std::is_same_v<T, float>) {
#pragma unroll
    for (int j = 0; j < V; j++) r.w[j] = __float_as_uint(v[j]);
  } else if constexpr (V == 1) {
    if constexpr (std::is_same_v<T, __half>) r.w[0] = __half_as_ushort(__float2half_rn(v[0]));
    else r.w[0] = __bfloat16_as_ushort(__float2bfloat16_rn(v[0]));
  } else {
#pragma unroll
    for (int q = 0; q < V / 2; q++) {
      if constexpr (std::is_same_v<T, __half>) {
        __half2 h = __floats2half2_rn(v[2 * q], v[2 * q + 1]);
        r.w[q] = *reinterpret_cast<const unsigned*>(&h);
      } else {
        __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * q], v[2 * q + 1]);
        r.w[q] = *reinterpret_cast<const unsigned*>(&h);
      }
    }
  }
  return r;
}

/** buf[i] = the V channels at step i from p (steps E elements apart) for i < valid, zeros beyond. */
template <class T, int V, int kChunk>
__device__ __forceinline__ void loadChunk(Pack<T, V> (&buf)[kChunk], const T* p, int E, int valid) {
#pragma unroll
  for (int i = 0; i < kChunk; i++) {
    if (i < valid) {
      buf[i] = loadPack<T, V>(p);
    } else {
#pragma unroll
      for (int q = 0; q < Pack<T, V>::kWords; q++) buf[i].w[q] = 0;
    }
    p += E;
  }
}

/** The kTaps − 1 inputs before t0 (xin[t0 − kTaps + 1 + i] in win[i]): x, the initial state, or zeros. */
template <class T, int V>
__device__ __forceinline__ void loadWindow(const ConvInputs& in, const ConvDims& d, const ConvSpan& span,
                                           float (&win)[kTaps - 1][V]) {
#pragma unroll
  for (int i = 0; i < kTaps - 1; i++) {
    long long s = span.t0 - (kTaps - 1) + i;
    if (s >= 0) {
      toFloats<T, V>(loadPack<T, V>(static_cast<const T*>(in.x.p) + (span.b * d.L + s) * d.E + span.e0), win[i]);
      continue;
    }
    bool fromState = in.init.present() && s >= -(d.W - 1);
#pragma unroll
    for (int j = 0; j < V; j++)
      win[i][j] = fromState ? in.init[(span.b * d.E + span.e0 + j) * (d.W - 1) + (d.W - 1) + s] : 0.0f;
  }
}

/** bias + Σ_k w[k]·xin[t − kTaps + 1 + k] for channel j: the window holds the older inputs, xt the current one. */
template <int V>
__device__ __forceinline__ float preActivation(const float (&w)[kTaps][V], const float (&bias)[V],
                                               const float (&win)[kTaps - 1][V], const float (&xt)[V], int j) {
  float acc = bias[j];
#pragma unroll
  for (int k = 0; k < kTaps - 1; k++) acc += w[k][j] * win[k][j];
  return acc + w[kTaps - 1][j] * xt[j];
}

template <int V>
__device__ __forceinline__ void slide(float (&win)[kTaps - 1][V], const float (&xt)[V]) {
#pragma unroll
  for (int k = 0; k < kTaps - 2; k++) {
#pragma unroll
    for (int j = 0; j < V; j++) win[k][j] = win[k + 1][j];
  }
#pragma unroll
  for (int j = 0; j < V; j++) win[kTaps - 2][j] = xt[j];
}

/** The forward of one thread: its weights and the input window. */
template <class T, int V, int kChunk>
struct ForwardSpan {
  float w[kTaps][V], bias[V], win[kTaps - 1][V];
  int E;
  bool silu;

  /** The chunk in buf; y points at its first step; steps from `valid` on are not stored. */
  __device__ __forceinline__ void run(const Pack<T, V> (&buf)[kChunk], T* y, int valid) {
#pragma unroll
    for (int i = 0; i < kChunk; i++) {
      float xt[V], out[V];
      toFloats<T, V>(buf[i], xt);
#pragma unroll
      for (int j = 0; j < V; j++) {
        // Always computed, then selected: a branch per step would split the chunk's straight-line code.
        float pre = preActivation<V>(w, bias, win, xt, j);
        float act = pre * fastSigmoid(pre);
        out[j] = silu ? act : pre;
      }
      if (i < valid) storePack<T, V>(y, fromFloats<T, V>(out));
      y += E;
      slide<V>(win, xt);
    }
  }
};

template <class T, int V, int kChunk, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks) convForwardKernel(ConvInputs in, ConvDims d, ConvGrid g, Out y) {
  ConvSpan span = spanOf<V>(d, g);
  if (!span.active) return;
  ForwardSpan<T, V, kChunk> f;
  loadWeights<V>(in, d, span.e0, f.w, f.bias);
  loadWindow<T, V>(in, d, span, f.win);
  f.E = static_cast<int>(d.E);
  f.silu = in.silu;
  long long first = (span.b * d.L + span.t0) * d.E + span.e0;
  const T* x = static_cast<const T*>(in.x.p) + first;
  T* out = static_cast<T*>(y.p) + first;
  long long chunkStride = kChunk * d.E;
  // left: steps of the span from the chunk being computed on. Two buffers in turn: the next chunk's loads are in
  // flight while the current one is computed.
  int left = static_cast<int>(span.tEnd - span.t0);
  Pack<T, V> a[kChunk], b[kChunk];
  loadChunk<T, V, kChunk>(a, x, f.E, left);
  for (;;) {
    x += chunkStride;
    loadChunk<T, V, kChunk>(b, x, f.E, left - kChunk);
    f.run(a, out, left);
    out += chunkStride;
    if ((left -= kChunk) <= 0) break;
    x += chunkStride;
    loadChunk<T, V, kChunk>(a, x, f.E, left - kChunk);
    f.run(b, out, left);
    out += chunkStride;
    if ((left -= kChunk) <= 0) break;
  }
}

/** dx at the positions before the first span of a sequence: the initial state's gradient (−(W−1)..−1). */
template <int V>
struct InitialStateGrad {
  Out dinit;
  long long base;  // dinit index of (b, e0, slot W − 1), i.e. position 0
  long long W;
  __device__ __forceinline__ void operator()(int at, const float (&v)[V]) const {
    if (at < -(W - 1)) return;
#pragma unroll
    for (int j = 0; j < V; j++) dinit.set(base + j * (W - 1) + at, v[j]);
  }
};

/** Drops dx before the span: the span before it computes those. */
struct NoEarlyGrad {
  template <int V>
  __device__ __forceinline__ void operator()(int, const float (&)[V]) const {}
};

/**
 * The backward of one thread. Step t adds g[t]·w[k] to dx[t − kTaps + 1 + k]; acc[k] holds the partial dx of step
 * t − kTaps + 1 + k (k < kTaps − 1) before step t, so after it dx[t − kTaps + 1] is complete.
 */
template <class T, int V, int kChunk>
struct BackwardSpan {
  float w[kTaps][V], bias[V], win[kTaps - 1][V], acc[kTaps - 1][V];
  float dw[kTaps][V], db[V];
  int E, len;  // len: steps of the span
  bool silu;

  /**
   * kSteps steps from the x and dy buffers, the first at position `pos` of the span; dx points at position
   * pos − (kTaps − 1), where the first completed value goes. With kWeights, adds to dweight/dbias (steps ≥ L have
   * dy = 0, so g = 0); the halo after the span does not. dx is stored at positions in [0, len); with kFirst
   * (pos = 0) the ones before go to `early`.
   */
  template <int kSteps, bool kWeights, bool kFirst, class Early>
  __device__ __forceinline__ void run(const Pack<T, V> (&xs)[kChunk], const Pack<T, V> (&dys)[kChunk], T* dx, int pos,
                                      const Early& early) {
#pragma unroll
    for (int i = 0; i < kSteps; i++) {
      float xt[V], gt[V], done[V];
      toFloats<T, V>(xs[i], xt);
      toFloats<T, V>(dys[i], gt);
#pragma unroll
      for (int j = 0; j < V; j++) {
        // silu'(pre), always computed, then selected (as in the forward).
        float pre = preActivation<V>(w, bias, win, xt, j);
        float sig = fastSigmoid(pre);
        float dact = sig * (1.0f + pre * (1.0f - sig));
        float g = silu ? gt[j] * dact : gt[j];
        if (kWeights) {
          db[j] += g;
#pragma unroll
          for (int k = 0; k < kTaps - 1; k++) dw[k][j] += g * win[k][j];
          dw[kTaps - 1][j] += g * xt[j];
        }
        done[j] = acc[0][j] + g * w[0][j];
#pragma unroll
        for (int k = 0; k < kTaps - 2; k++) acc[k][j] = acc[k + 1][j] + g * w[k + 1][j];
        acc[kTaps - 2][j] = g * w[kTaps - 1][j];
      }
      int at = pos + i - (kTaps - 1);  // where done belongs
      if (kFirst && i < kTaps - 1) {
        early(at, done);
      } else if (at < len) {
        storePack<T, V>(dx, fromFloats<T, V>(done));
      }
      dx += E;
      slide<V>(win, xt);
    }
  }
};

/**
 * dx (and dinit) for the thread's span; the block's dweight/dbias into partial[rowBlock, tap, e] (taps 0..W−1 the
 * weight, tap W the bias), laid out (rowBlocks, W + 1, E).
 */
template <class T, int V, int kChunk, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    convBackwardKernel(ConvInputs in, ConvDims d, ConvGrid g, In dy, Out dx, Out dinit, float* partial) {
  static_assert(kChunk >= kTaps - 1, "the first chunk holds every step whose dx lies before the span");
  __shared__ float sums[kRows][kTaps + 1][kLanes * V];
  ConvSpan span = spanOf<V>(d, g);
  BackwardSpan<T, V, kChunk> s;
#pragma unroll
  for (int j = 0; j < V; j++) {
    s.db[j] = 0.0f;
#pragma unroll
    for (int k = 0; k < kTaps; k++) s.dw[k][j] = 0.0f;
  }

  if (span.active) {
    loadWeights<V>(in, d, span.e0, s.w, s.bias);
    loadWindow<T, V>(in, d, span, s.win);
#pragma unroll
    for (int j = 0; j < V; j++) {
#pragma unroll
      for (int k = 0; k < kTaps - 1; k++) s.acc[k][j] = 0.0f;
    }
    s.E = static_cast<int>(d.E);
    s.len = static_cast<int>(span.tEnd - span.t0);
    s.silu = in.silu;
    long long first = (span.b * d.L + span.t0) * d.E + span.e0;
    const T* x = static_cast<const T*>(in.x.p) + first;
    const T* dyp = static_cast<const T*>(dy.p) + first;
    T* dxp = static_cast<T*>(dx.p) + first - (kTaps - 1) * d.E;  // position −(kTaps − 1): never stored through
    long long chunkStride = kChunk * d.E;
    // Chunks over the span, then the halo: g of the kTaps − 1 steps after the span completes its last dx values.
    // Loads stop at L (zeros: g = 0 there) and after the halo. Two buffers in turn, as in the forward; the first
    // chunk, whose first steps complete dx before the span, is run on its own.
    int loads = static_cast<int>(min(d.L, span.tEnd + kTaps - 1) - span.t0);
    Pack<T, V> xa[kChunk], dya[kChunk], xb[kChunk], dyb[kChunk];
    loadChunk<T, V, kChunk>(xa, x, s.E, loads);
    loadChunk<T, V, kChunk>(dya, dyp, s.E, loads);
    x += chunkStride;
    dyp += chunkStride;
    loadChunk<T, V, kChunk>(xb, x, s.E, loads - kChunk);
    loadChunk<T, V, kChunk>(dyb, dyp, s.E, loads - kChunk);
    if (span.t0 == 0 && dinit.present()) {
      InitialStateGrad<V> early{dinit, (span.b * d.E + span.e0) * (d.W - 1) + (d.W - 1), d.W};
      s.template run<kChunk, true, true>(xa, dya, dxp, 0, early);
    } else {
      s.template run<kChunk, true, true>(xa, dya, dxp, 0, NoEarlyGrad{});
    }
    // One chunk from `now` (the halo once past the span) while `later` is loaded with the chunk after it.
    int pos = kChunk;
    auto advance = [&](const Pack<T, V> (&xNow)[kChunk], const Pack<T, V> (&dyNow)[kChunk],
                       Pack<T, V> (&xLater)[kChunk], Pack<T, V> (&dyLater)[kChunk]) {
      dxp += chunkStride;
      x += chunkStride;
      dyp += chunkStride;
      loadChunk<T, V, kChunk>(xLater, x, s.E, loads - pos - kChunk);
      loadChunk<T, V, kChunk>(dyLater, dyp, s.E, loads - pos - kChunk);
      if (pos >= s.len) {
        s.template run<kTaps - 1, false, false>(xNow, dyNow, dxp, pos, NoEarlyGrad{});
        return false;
      }
      s.template run<kChunk, true, false>(xNow, dyNow, dxp, pos, NoEarlyGrad{});
      pos += kChunk;
      return true;
    };
    while (advance(xb, dyb, xa, dya) && advance(xa, dya, xb, dyb)) {
    }
  }

  // The block's sums, rows (spans) added in order; real taps only (the padded ones come first).
  int pad = kTaps - static_cast<int>(d.W);
#pragma unroll
  for (int j = 0; j < V; j++) {
    int c = threadIdx.x * V + j;
#pragma unroll
    for (int k = 0; k < kTaps; k++) {
      if (k >= pad) sums[threadIdx.y][k - pad][c] = s.dw[k][j];
    }
    sums[threadIdx.y][d.W][c] = s.db[j];
  }
  __syncthreads();
  int taps = static_cast<int>(d.W) + 1;
  unsigned channelBlock = blockIdx.x % g.channelBlocks, rowBlock = blockIdx.x / g.channelBlocks;
  long long eBase = static_cast<long long>(channelBlock) * kLanes * V;
  for (int i = threadIdx.y * kLanes + threadIdx.x; i < taps * kLanes * V; i += kThreads) {
    int k = i / (kLanes * V), c = i % (kLanes * V);
    if (eBase + c >= d.E) continue;
    float sum = 0.0f;
#pragma unroll
    for (int r = 0; r < kRows; r++) sum += sums[r][k][c];
    partial[(static_cast<long long>(rowBlock) * taps + k) * d.E + eBase + c] = sum;
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

/** Whether the span kernels take these tensors: width ≤ kTaps, the token tensors of one float dtype, and E and L
 *  within the 32-bit step arithmetic. */
bool spanKernels(const ConvDims& d, int dtype, std::initializer_list<int> others) {
  if (d.W > kTaps || !(dtype == F32 || dtype == F16 || dtype == BF16)) return false;
  if (d.E > INT_MAX / 16 || d.L > INT_MAX / 2) return false;
  for (int o : others)
    if (o != dtype) return false;
  return true;
}

/** Blocks of `kernel` resident on one multiprocessor (asked once per kernel). */
template <auto kKernel>
long long residentBlocks() {
  static int blocks = 0;
  if (blocks == 0) {
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kKernel, kThreads, 0), "conv occupancy");
    if (blocks < 1) blocks = 1;
  }
  return blocks;
}

/**
 * Spans as short as possible (more threads, less serial work per thread) while the grid still fits on the device at
 * once (`resident` blocks): beyond that, longer spans only save halos and partial rows.
 */
ConvGrid planSpans(const ConvDims& d, int V, int chunk, long long resident, unsigned& blocks) {
  ConvGrid g;
  g.groups = (d.E + V - 1) / V;
  g.channelBlocks = static_cast<unsigned>((g.groups + kLanes - 1) / kLanes);
  long long rowBlocksWanted = resident / g.channelBlocks;
  long long spansPerSeqWanted = (rowBlocksWanted < 1 ? 1 : rowBlocksWanted) * kRows / d.B;
  if (spansPerSeqWanted < 1) spansPerSeqWanted = 1;
  long long chunksPerSeq = (d.L + chunk - 1) / chunk;
  // ceil(chunksPerSeq / ceil(chunksPerSeq / k)) ≤ k: at most spansPerSeqWanted spans per sequence.
  g.spanSteps = (chunksPerSeq + spansPerSeqWanted - 1) / spansPerSeqWanted * chunk;
  g.spansPerSeq = (d.L + g.spanSteps - 1) / g.spanSteps;
  g.spans = d.B * g.spansPerSeq;
  blocks = static_cast<unsigned>((g.spans + kRows - 1) / kRows * g.channelBlocks);
  return g;
}

/** Calls launch(V, kChunk, kMinBlocks), as integral constants, with the widest V that E and the token addresses
 *  allow. */
template <class T, bool kBackward, class F>
void withVector(const ConvDims& d, std::initializer_list<const void*> tokens, F&& launch) {
  constexpr int wide = ConvShape<T, kBackward>::kWide;
  bool vector = d.E % wide == 0;
  for (const void* p : tokens) vector = vector && packAligned<T, wide>(p);
  using Shape = ConvShape<T, kBackward>;
  if (vector) {
    launch(std::integral_constant<int, wide>{}, std::integral_constant<int, Shape::kChunkWide>{},
           std::integral_constant<int, Shape::kMinBlocksWide>{});
  } else {
    launch(std::integral_constant<int, 1>{}, std::integral_constant<int, Shape::kChunkNarrow>{},
           std::integral_constant<int, Shape::kMinBlocksNarrow>{});
  }
}

/** prefix, y */
void causalConv1dOp(Args& a) {
  ConvInputs in;
  ConvDims d;
  readConv(a, in, d);
  Out y = readOut(a);
  long long n = d.B * d.L * d.E;
  if (n == 0) return;
  if (!spanKernels(d, in.x.dtype, {y.dtype})) {
    convForwardAnyKernel<<<gridFor(n), 256, 0, stream()>>>(in, d, y);
    return;
  }
  withFloatType(in.x.dtype, [&](auto tag) {
    using T = decltype(tag);
    withVector<T, false>(d, {in.x.p, y.p}, [&](auto v, auto chunk, auto minBlocks) {
      constexpr int V = decltype(v)::value, kChunk = decltype(chunk)::value;
      constexpr auto kernel = convForwardKernel<T, V, kChunk, decltype(minBlocks)::value>;
      unsigned blocks;
      ConvGrid g = planSpans(d, V, kChunk, residentBlocks<kernel>() * multiprocessors(), blocks);
      kernel<<<blocks, dim3(kLanes, kRows), 0, stream()>>>(in, d, g, y);
    });
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
  if (!spanKernels(d, in.x.dtype, {dy.dtype, dx.dtype})) {
    causalConv1dGradAny(in, d, dy, dx, dweight, dbias, dinit);
    return;
  }
  withFloatType(in.x.dtype, [&](auto tag) {
    using T = decltype(tag);
    withVector<T, true>(d, {in.x.p, dy.p, dx.p}, [&](auto v, auto chunk, auto minBlocks) {
      constexpr int V = decltype(v)::value, kChunk = decltype(chunk)::value;
      constexpr auto kernel = convBackwardKernel<T, V, kChunk, decltype(minBlocks)::value>;
      unsigned blocks;
      ConvGrid g = planSpans(d, V, kChunk, residentBlocks<kernel>() * multiprocessors(), blocks);
      long long rows = blocks / g.channelBlocks;
      Scratch partial(sizeof(float) * rows * (d.W + 1) * d.E);
      kernel<<<blocks, dim3(kLanes, kRows), 0, stream()>>>(in, d, g, dy, dx, dinit, partial.as<float>());
      MCUDA_PROFILE_RANGE("conv.backward weight sum");
      sumWeightGradRows(partial.as<float>(), rows, d, dweight, dbias);
    });
  });
}

MCUDA_OP("causalConv1d", causalConv1dOp);
MCUDA_OP("causalConv1dGrad", causalConv1dGradOp);

}  // namespace
}  // namespace mcuda
