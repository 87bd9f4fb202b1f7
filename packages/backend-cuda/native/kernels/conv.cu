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
// Fast path (W ≤ kTaps, x/y/dy/dx of one float dtype): one thread owns V adjacent channels (one 4-, 8- or 16-byte
// access, see ConvShape; 1 channel when E or an address does not allow the vector) over a span of consecutive
// steps. The inputs of the next kDepth steps wait in a ring of registers: a step takes its slot and refills it with
// the load kDepth steps ahead, so kDepth − 1 steps of loads are always in flight. The W−1 inputs before the step
// (and, backward, the partial dx sums after it) slide along in registers, so every element is loaded once plus a
// W−1 halo per span. The weight row stays in registers. A thread issues its first kDepth loads (and the window's)
// before it converts any value, the weights' included. Widths below kTaps run as kTaps with zero weights in front
// (the padded taps read zeros, never memory). Consecutive threads of a warp own consecutive channel groups of the
// same step (coalesced), and the host sizes the spans so that the whole grid is resident at once.
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
 * Per direction and dtype: kWide channels per thread when E and the addresses allow it (else 1), kDepth steps of
 * inputs in the ring (kDepth − 1 in flight), and the launch bound (minimum resident blocks of kThreads, which caps
 * the registers). Chosen from ptxas (sm_90; at most 4 bytes spilled: the f32 wide forward, the halves' wide
 * backward). Every channel costs 8 registers of state forward (weights, bias, window) and 16 backward (also the
 * partial dx and the weight sums), so halves keep the channels of f32 (8- and 4-byte accesses, still whole sectors
 * across a warp) and go twice as deep instead: a thread keeps 96–120 bytes of loads in flight. Registers: forward
 * 96, 20 warps per multiprocessor; backward 122 (f32) / 128 (halves), 16 warps; narrow 53–64 forward, 76–80 backward.
 */
template <class T, bool kBackward>
struct ConvShape;

template <class T>
struct ConvShape<T, false> {
  static constexpr int kWide = 4;  // 16 bytes of f32, 8 of f16/bf16
  static constexpr int kDepthWide = sizeof(T) == 4 ? 7 : 16;
  static constexpr int kMinBlocksWide = 5;
  static constexpr int kDepthNarrow = sizeof(T) == 4 ? 16 : 12;
  static constexpr int kMinBlocksNarrow = 8;
};

template <class T>
struct ConvShape<T, true> {
  static constexpr int kWide = 2;  // 8 bytes of f32, 4 of f16/bf16
  static constexpr int kDepthWide = sizeof(T) == 4 ? 8 : 16;
  static constexpr int kMinBlocksWide = 4;
  static constexpr int kDepthNarrow = 8;
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
  long long spanSteps;      // a multiple of the kernel's kDepth
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
 *  Saturates cleanly: x → −∞ gives 0 (1/∞), x → +∞ gives 1. The flush-to-zero forms are four instructions; __expf
 *  and __fdividef add range fixes for subnormal results (below 1e-38 here) that cost a tenth of the backward step. */
__device__ __forceinline__ float fastSigmoid(float x) {
  float e, r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(x * -1.4426950408889634f));
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(1.0f + e));
  return r;
}

/** Element i of a small per-channel tensor (weight, bias) whose elements are W (int for i32), as float. */
template <class W>
__device__ __forceinline__ float elementAt(const void* p, long long i) {
  if constexpr (std::is_same_v<W, int>) return static_cast<float>(static_cast<const int*>(p)[i]);
  else return toFloat(static_cast<const W*>(p)[i]);
}

/** Calls f(W{}) with W the element type of dtype: one switch around a whole loop rather than one per element. */
template <class F>
__device__ __forceinline__ void withElementType(int dtype, F&& f) {
  switch (dtype) {
    case F32: f(float{}); break;
    case F16: f(__half{}); break;
    case BF16: f(__nv_bfloat16{}); break;
    default: f(int{}); break;
  }
}

/** The weights of the thread's channels, padded in front to kTaps taps (w[k][j]: tap k of channel e0 + j). */
template <int V>
__device__ __forceinline__ void loadWeights(const ConvInputs& in, const ConvDims& d, long long e0,
                                            float (&w)[kTaps][V], float (&bias)[V]) {
  int pad = kTaps - static_cast<int>(d.W);
  withElementType(in.weight.dtype, [&](auto tag) {
    using W = decltype(tag);
#pragma unroll
    for (int j = 0; j < V; j++) {
#pragma unroll
      for (int k = 0; k < kTaps; k++) w[k][j] = k >= pad ? elementAt<W>(in.weight.p, (e0 + j) * d.W + (k - pad)) : 0.0f;
    }
  });
#pragma unroll
  for (int j = 0; j < V; j++) bias[j] = 0.0f;
  if (!in.bias.present()) return;
  withElementType(in.bias.dtype, [&](auto tag) {
#pragma unroll
    for (int j = 0; j < V; j++) bias[j] = elementAt<decltype(tag)>(in.bias.p, e0 + j);
  });
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

/** The V channels at p, or zeros without `load` (steps past the inputs). */
template <class T, int V>
__device__ __forceinline__ Pack<T, V> loadPackIf(const T* p, bool load) {
  if (load) return loadPack<T, V>(p);
  Pack<T, V> zero;
#pragma unroll
  for (int q = 0; q < Pack<T, V>::kWords; q++) zero.w[q] = 0;
  return zero;
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

/**
 * The window before t0 in two steps, so that the caller can issue its other loads in between: start() loads it from
 * x when it lies there (t0 ≥ kTaps − 1; the packs wait in registers), finish() converts it, or reads it element by
 * element (loadWindow) at the start of a sequence.
 */
template <class T, int V>
struct WindowLoad {
  Pack<T, V> packs[kTaps - 1];
  bool inX;

  __device__ __forceinline__ void start(const ConvInputs& in, const ConvDims& d, const ConvSpan& span) {
    inX = span.t0 >= kTaps - 1;
    if (!inX) return;
    const T* x = static_cast<const T*>(in.x.p) + (span.b * d.L + span.t0 - (kTaps - 1)) * d.E + span.e0;
#pragma unroll
    for (int i = 0; i < kTaps - 1; i++) packs[i] = loadPack<T, V>(x + i * d.E);
  }

  __device__ __forceinline__ void finish(const ConvInputs& in, const ConvDims& d, const ConvSpan& span,
                                         float (&win)[kTaps - 1][V]) const {
    if (!inX) {
      loadWindow<T, V>(in, d, span, win);
      return;
    }
#pragma unroll
    for (int i = 0; i < kTaps - 1; i++) toFloats<T, V>(packs[i], win[i]);
  }
};

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

/**
 * The forward of one thread over its span: its weights, the window of the kTaps − 1 inputs before the current step,
 * and a ring of the inputs of the next kDepth steps. Step pos takes its input from slot pos % kDepth and refills the
 * slot with the input of step pos + kDepth, so kDepth − 1 steps of loads stay in flight while it computes.
 */
template <class T, int V, int kDepth>
struct ForwardSpan {
  float w[kTaps][V], bias[V], win[kTaps - 1][V];
  Pack<T, V> ring[kDepth];
  const T* ahead;  // input of step pos + kDepth
  T* y;            // output of step pos
  int E, len;      // len: steps of the span
  bool silu;

  /** Steps pos0 … pos0 + kDepth − 1 (pos0 a multiple of kDepth); those from len on are not stored. */
  __device__ __forceinline__ void round(int pos0) {
#pragma unroll
    for (int i = 0; i < kDepth; i++) {
      int pos = pos0 + i;
      Pack<T, V> now = ring[i];
      if (pos + kDepth < len) ring[i] = loadPack<T, V>(ahead);
      float xt[V], out[V];
      toFloats<T, V>(now, xt);
#pragma unroll
      for (int j = 0; j < V; j++) {
        // Always computed, then selected: a branch per step would split the round's straight-line code.
        float pre = preActivation<V>(w, bias, win, xt, j);
        float act = pre * fastSigmoid(pre);
        out[j] = silu ? act : pre;
      }
      if (pos < len) storePack<T, V>(y, fromFloats<T, V>(out));
      ahead += E;
      y += E;
      slide<V>(win, xt);
    }
  }
};

template <class T, int V, int kDepth, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks) convForwardKernel(ConvInputs in, ConvDims d, ConvGrid g, Out y) {
  ConvSpan span = spanOf<V>(d, g);
  if (!span.active) return;
  ForwardSpan<T, V, kDepth> f;
  f.E = static_cast<int>(d.E);
  f.len = static_cast<int>(span.tEnd - span.t0);
  f.silu = in.silu;
  long long first = (span.b * d.L + span.t0) * d.E + span.e0;
  const T* x = static_cast<const T*>(in.x.p) + first;
  // Every load of the span's start is issued before the first conversion waits for one.
  WindowLoad<T, V> window;
  window.start(in, d, span);
#pragma unroll
  for (int i = 0; i < kDepth; i++) f.ring[i] = loadPackIf<T, V>(x + static_cast<long long>(i) * d.E, i < f.len);
  f.ahead = x + kDepth * d.E;
  f.y = static_cast<T*>(y.p) + first;
  window.finish(in, d, span, f.win);
  loadWeights<V>(in, d, span.e0, f.w, f.bias);
  for (int pos = 0; pos < f.len; pos += kDepth) f.round(pos);
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
 * The backward of one thread over its span and the kTaps − 1 steps after it (the halo): step t adds g[t]·w[k] to
 * dx[t − kTaps + 1 + k]; acc[k] holds the partial dx of position t − kTaps + 1 + k (k < kTaps − 1) before step t,
 * so after it dx[t − kTaps + 1] is complete. The inputs (x and dy) of the next kDepth steps wait in rings, as in the
 * forward: step pos refills its slots with the inputs of step pos + kDepth, zeros from `loads` on (past L, or past
 * the halo). Without kWeightGrad (frozen weights) dw and db are not accumulated.
 */
template <class T, int V, int kDepth, bool kWeightGrad>
struct BackwardSpan {
  float w[kTaps][V], bias[V], win[kTaps - 1][V], acc[kTaps - 1][V];
  float dw[kTaps][V], db[V];
  Pack<T, V> xs[kDepth], dys[kDepth];
  const T* xAhead;   // x of step pos + kDepth
  const T* dyAhead;  // dy of step pos + kDepth
  T* dx;             // dx at position pos − (kTaps − 1), where step pos completes a value
  int E, len, loads;  // len: steps of the span; loads: steps with inputs from the span's start (halo included)
  bool silu;

  /**
   * kSteps (≤ kDepth) steps from pos0, a multiple of kDepth. Only the span's own steps (pos < len) add to
   * dweight/dbias; the halo's belong to the next span. dx is stored at positions in [0, len); with kFirst (pos0 = 0)
   * the ones before go to `early`. Without kChecked the caller knows that every step is the span's own and refills
   * its slots (pos0 + kDepth ≤ len, pos0 + 2·kDepth ≤ loads): no bounds are tested (most rounds are such).
   */
  template <int kSteps, bool kFirst, bool kChecked = true, class Early>
  __device__ __forceinline__ void round(int pos0, const Early& early) {
#pragma unroll
    for (int i = 0; i < kSteps; i++) {
      int pos = pos0 + i;
      Pack<T, V> xNow = xs[i], dyNow = dys[i];
      bool refill = !kChecked || pos + kDepth < loads;
      xs[i] = loadPackIf<T, V>(xAhead, refill);
      dys[i] = loadPackIf<T, V>(dyAhead, refill);
      float xt[V], gt[V], done[V];
      toFloats<T, V>(xNow, xt);
      toFloats<T, V>(dyNow, gt);
      bool own = !kChecked || pos < len;
#pragma unroll
      for (int j = 0; j < V; j++) {
        // silu'(pre), always computed, then selected (as in the forward).
        float pre = preActivation<V>(w, bias, win, xt, j);
        float sig = fastSigmoid(pre);
        float dact = sig * (1.0f + pre * (1.0f - sig));
        float g = silu ? gt[j] * dact : gt[j];
        if constexpr (kWeightGrad) {
          float gOwn = own ? g : 0.0f;
          db[j] += gOwn;
#pragma unroll
          for (int k = 0; k < kTaps - 1; k++) dw[k][j] += gOwn * win[k][j];
          dw[kTaps - 1][j] += gOwn * xt[j];
        }
        done[j] = acc[0][j] + g * w[0][j];
#pragma unroll
        for (int k = 0; k < kTaps - 2; k++) acc[k][j] = acc[k + 1][j] + g * w[k + 1][j];
        acc[kTaps - 2][j] = g * w[kTaps - 1][j];
      }
      int at = pos - (kTaps - 1);  // where done belongs
      if (kFirst && i < kTaps - 1) {
        early(at, done);
      } else if (!kChecked || at < len) {
        storePack<T, V>(dx, fromFloats<T, V>(done));
      }
      xAhead += E;
      dyAhead += E;
      dx += E;
      slide<V>(win, xt);
    }
  }
};

/**
 * dx (and dinit) for the thread's span; with kWeightGrad the block's dweight/dbias into partial[rowBlock, tap, e]
 * (taps 0..W−1 the weight, tap W the bias), laid out (rowBlocks, W + 1, E).
 */
template <class T, int V, int kDepth, int kMinBlocks, bool kWeightGrad>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    convBackwardKernel(ConvInputs in, ConvDims d, ConvGrid g, In dy, Out dx, Out dinit, float* partial) {
  static_assert(kDepth >= kTaps - 1, "the first round holds every step whose dx lies before the span");
  __shared__ float sums[kRows][kTaps + 1][kLanes * V];
  ConvSpan span = spanOf<V>(d, g);
  BackwardSpan<T, V, kDepth, kWeightGrad> s;
#pragma unroll
  for (int j = 0; j < V; j++) {
    s.db[j] = 0.0f;
#pragma unroll
    for (int k = 0; k < kTaps; k++) s.dw[k][j] = 0.0f;
  }

  if (span.active) {
    s.E = static_cast<int>(d.E);
    s.len = static_cast<int>(span.tEnd - span.t0);
    s.loads = static_cast<int>(min(d.L, span.tEnd + kTaps - 1) - span.t0);
    s.silu = in.silu;
    long long first = (span.b * d.L + span.t0) * d.E + span.e0;
    const T* x = static_cast<const T*>(in.x.p) + first;
    const T* dyp = static_cast<const T*>(dy.p) + first;
    // Every load of the span's start is issued before the first conversion waits for one.
    WindowLoad<T, V> window;
    window.start(in, d, span);
#pragma unroll
    for (int i = 0; i < kDepth; i++) {
      long long offset = static_cast<long long>(i) * d.E;
      s.xs[i] = loadPackIf<T, V>(x + offset, i < s.loads);
      s.dys[i] = loadPackIf<T, V>(dyp + offset, i < s.loads);
    }
    s.xAhead = x + kDepth * d.E;
    s.dyAhead = dyp + kDepth * d.E;
    s.dx = static_cast<T*>(dx.p) + first - (kTaps - 1) * d.E;  // position −(kTaps − 1): never stored through
    window.finish(in, d, span, s.win);
    loadWeights<V>(in, d, span.e0, s.w, s.bias);
#pragma unroll
    for (int j = 0; j < V; j++) {
#pragma unroll
      for (int k = 0; k < kTaps - 1; k++) s.acc[k][j] = 0.0f;
    }
    // The first round, whose first steps complete dx before the span, on its own; then the other rounds of the
    // span, and what remains of the halo (positions up to len + kTaps − 2) in a short one.
    if (span.t0 == 0 && dinit.present()) {
      InitialStateGrad<V> early{dinit, (span.b * d.E + span.e0) * (d.W - 1) + (d.W - 1), d.W};
      s.template round<kDepth, true>(0, early);
    } else {
      s.template round<kDepth, true>(0, NoEarlyGrad{});
    }
    int pos = kDepth;
    for (; pos + kDepth <= s.len && pos + 2 * kDepth <= s.loads; pos += kDepth) {
      s.template round<kDepth, false, false>(pos, NoEarlyGrad{});
    }
    for (; pos < s.len; pos += kDepth) s.template round<kDepth, false>(pos, NoEarlyGrad{});
    if (pos < s.len + kTaps - 1) s.template round<kTaps - 1, false>(pos, NoEarlyGrad{});
  }

  if constexpr (!kWeightGrad) return;
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
 * once (`resident` blocks): beyond that, longer spans only save halos and partial rows. Spans are whole rounds of the
 * ring (`depth` steps): the kernels compute every step of a round.
 */
ConvGrid planSpans(const ConvDims& d, int V, int depth, long long resident, unsigned& blocks) {
  ConvGrid g;
  g.groups = (d.E + V - 1) / V;
  g.channelBlocks = static_cast<unsigned>((g.groups + kLanes - 1) / kLanes);
  long long rowBlocksWanted = resident / g.channelBlocks;
  long long spansPerSeqWanted = (rowBlocksWanted < 1 ? 1 : rowBlocksWanted) * kRows / d.B;
  if (spansPerSeqWanted < 1) spansPerSeqWanted = 1;
  long long roundsPerSeq = (d.L + depth - 1) / depth;
  // ceil(roundsPerSeq / ceil(roundsPerSeq / k)) ≤ k: at most spansPerSeqWanted spans per sequence.
  g.spanSteps = (roundsPerSeq + spansPerSeqWanted - 1) / spansPerSeqWanted * depth;
  g.spansPerSeq = (d.L + g.spanSteps - 1) / g.spanSteps;
  g.spans = d.B * g.spansPerSeq;
  blocks = static_cast<unsigned>((g.spans + kRows - 1) / kRows * g.channelBlocks);
  return g;
}

/** Calls launch(V, kDepth, kMinBlocks), as integral constants, with the widest V that E and the token addresses
 *  allow. */
template <class T, bool kBackward, class F>
void withVector(const ConvDims& d, std::initializer_list<const void*> tokens, F&& launch) {
  constexpr int wide = ConvShape<T, kBackward>::kWide;
  bool vector = d.E % wide == 0;
  for (const void* p : tokens) vector = vector && packAligned<T, wide>(p);
  using Shape = ConvShape<T, kBackward>;
  if (vector) {
    launch(std::integral_constant<int, wide>{}, std::integral_constant<int, Shape::kDepthWide>{},
           std::integral_constant<int, Shape::kMinBlocksWide>{});
  } else {
    launch(std::integral_constant<int, 1>{}, std::integral_constant<int, Shape::kDepthNarrow>{},
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
    withVector<T, false>(d, {in.x.p, y.p}, [&](auto v, auto depth, auto minBlocks) {
      constexpr int V = decltype(v)::value, kDepth = decltype(depth)::value;
      constexpr auto kernel = convForwardKernel<T, V, kDepth, decltype(minBlocks)::value>;
      unsigned blocks;
      ConvGrid g = planSpans(d, V, kDepth, residentBlocks<kernel>() * multiprocessors(), blocks);
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
  if (!dweight.present()) return;
  Scratch partial(sizeof(float) * slices * d.E * (d.W + 1));
  MCUDA_PROFILE_RANGE("conv.backward weight");
  dim3 grid(blocksFor(d.E, 128), static_cast<unsigned>(d.W + 1), static_cast<unsigned>(slices));
  convWeightGradAnyKernel<<<grid, 128, 0, stream()>>>(in, d, g.as<float>(), partial.as<float>(), rowsPerSlice);
  sumWeightGradRows(partial.as<float>(), slices, d, dweight, dbias);
}

/** prefix, dy, dx, dweight?, dbias?, dinit?. dweight absent (with dbias): frozen weights, their sums are skipped. */
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
    if (dweight.present()) zeroFill(dweight.p, d.E * d.W * bytesOf(dweight.dtype));
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
    withVector<T, true>(d, {in.x.p, dy.p, dx.p}, [&](auto v, auto depth, auto minBlocks) {
      constexpr int V = decltype(v)::value, kDepth = decltype(depth)::value;
      if (!dweight.present()) {
        constexpr auto kernel = convBackwardKernel<T, V, kDepth, decltype(minBlocks)::value, false>;
        unsigned blocks;
        ConvGrid g = planSpans(d, V, kDepth, residentBlocks<kernel>() * multiprocessors(), blocks);
        kernel<<<blocks, dim3(kLanes, kRows), 0, stream()>>>(in, d, g, dy, dx, dinit, nullptr);
        return;
      }
      constexpr auto kernel = convBackwardKernel<T, V, kDepth, decltype(minBlocks)::value, true>;
      unsigned blocks;
      ConvGrid g = planSpans(d, V, kDepth, residentBlocks<kernel>() * multiprocessors(), blocks);
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
