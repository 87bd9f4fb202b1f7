// Device helpers shared by the kernels: typed loads/stores through a runtime dtype, activations, block reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <cmath>
#include <type_traits>

#include "../common.h"
#include "../context.h"

namespace mcuda {

/** Element i of a buffer of `dtype`, as float. The dtype switch is uniform across a launch, so it costs little. */
__device__ __forceinline__ float loadf(const void* p, int dtype, long long i) {
  switch (dtype) {
    case F32: return static_cast<const float*>(p)[i];
    case F16: return __half2float(static_cast<const __half*>(p)[i]);
    case BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: return static_cast<float>(static_cast<const int*>(p)[i]);
  }
}

/** Stores v rounded to nearest even for halves; i32 truncates towards zero (as Math.trunc), NaN becomes 0. */
__device__ __forceinline__ void storef(void* p, int dtype, long long i, float v) {
  switch (dtype) {
    case F32: static_cast<float*>(p)[i] = v; break;
    case F16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    case BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<int*>(p)[i] = isnan(v) ? 0 : static_cast<int>(truncf(v)); break;
  }
}

/** A read-only tensor argument: address + dtype; absent optional inputs have a null address. */
struct In {
  const void* p;
  int dtype;
  __device__ __forceinline__ float operator[](long long i) const { return loadf(p, dtype, i); }
  __host__ __device__ __forceinline__ bool present() const { return p != nullptr; }
};

struct Out {
  void* p;
  int dtype;
  __device__ __forceinline__ void set(long long i, float v) const { storef(p, dtype, i, v); }
  __host__ __device__ __forceinline__ bool present() const { return p != nullptr; }
};

inline In readIn(Args& a) {
  void* p = a.ptr();
  int dt = a.dtype();
  return In{p, dt};
}

inline Out readOut(Args& a) {
  void* p = a.ptr();
  int dt = a.dtype();
  return Out{p, dt};
}

__device__ __forceinline__ float sigmoidf(float x) {
  return x >= 0.0f ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}
__device__ __forceinline__ float siluf(float x) { return x * sigmoidf(x); }
/** d silu(x)/dx from x and s = sigmoid(x). */
__device__ __forceinline__ float siluGradOf(float x, float s) { return s * (1.0f + x * (1.0f - s)); }
__device__ __forceinline__ float siluGradf(float x) { return siluGradOf(x, sigmoidf(x)); }
/** PyTorch's softplus threshold (as the cpu reference): above it softplus(x) = x. */
constexpr float kSoftplusThreshold = 20.0f;
__device__ __forceinline__ float softplusf(float x) { return x > kSoftplusThreshold ? x : log1pf(expf(x)); }
__device__ __forceinline__ float softplusGradf(float x) { return x > kSoftplusThreshold ? 1.0f : sigmoidf(x); }

// ---- programmatic dependent launch (sm_90) ----
// A kernel launched with launchDependent may have its blocks running while the kernel before it on the stream still
// runs: only what does not depend on earlier kernels (index math, L2 prefetches) may come before waitForPrevious.

/** Waits until the kernel before this one has finished and its writes are visible (at once without a dependency).
 *  Every thread of a kernel launched with launchDependent calls it before reading what earlier kernels wrote and
 *  before writing anything. */
__device__ __forceinline__ void waitForPrevious() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/** Lets the next kernel's blocks start (they run up to their own waitForPrevious). */
__device__ __forceinline__ void startNext() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/** Brings the 128-byte line at p into L2. Safe before waitForPrevious: L2 is coherent, a later read sees any write. */
__device__ __forceinline__ void prefetchL2(const void* p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }

/** kernel<<<grid, block, shared, stream()>>>(args...), as a programmatic dependent of the kernel before it where
 *  dependentLaunchEnabled() and that kernel starts its successor early; the kernel must call waitForPrevious (above). */
template <class... Params, class... Actual>
void launchDependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, Actual... args) {
  cudaLaunchAttribute dependent{};
  dependent.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  dependent.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream();
  if (dependentLaunchEnabled() && lastLaunchStartsNext()) {
    config.attrs = &dependent;
    config.numAttrs = 1;
  }
  check(cudaLaunchKernelEx(&config, kernel, args...), "kernel launch");
  lastLaunchStartsNext() = true;
}

/** Records the first kernel-detected error; the host reports it at the next sync or read. */
__device__ __forceinline__ void reportError(DeviceErrors* errors, int code, long long index, long long value,
                                            long long bound) {
  if (atomicCAS(&errors->code, 0, -1) == 0) {
    errors->index = index;
    errors->value = value;
    errors->bound = bound;
    __threadfence_system();
    atomicExch(&errors->code, code);
  }
}

template <class T>
__device__ __forceinline__ T warpSum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/** Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. */
template <class T>
__device__ inline T blockSum(T v) {
  __shared__ T partial[32];
  __syncthreads();  // partial may still be read by a previous call
  v = warpSum(v);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  int warps = blockDim.x >> 5;
  T total = 0;
  for (int w = 0; w < warps; w++) total += partial[w];
  return total;
}

/** Running log-sum-exp: lse = max + log(sum) with sum relative to max. */
struct Lse {
  float max;
  float sum;
};

__device__ __forceinline__ Lse lseCombine(Lse a, Lse b) {
  float m = fmaxf(a.max, b.max);
  if (m == -INFINITY) return Lse{-INFINITY, 0.0f};
  return Lse{m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

__device__ __forceinline__ Lse lseAbsorb(Lse a, float x) { return lseCombine(a, Lse{x, 1.0f}); }

__device__ inline Lse blockLse(Lse v) {
  __shared__ float maxes[32];
  __shared__ float sums[32];
  __syncthreads();
  for (int o = 16; o > 0; o >>= 1) {
    Lse other{__shfl_xor_sync(0xffffffffu, v.max, o), __shfl_xor_sync(0xffffffffu, v.sum, o)};
    v = lseCombine(v, other);
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    maxes[warp] = v.max;
    sums[warp] = v.sum;
  }
  __syncthreads();
  Lse total{-INFINITY, 0.0f};
  for (int w = 0; w < (int)(blockDim.x >> 5); w++) total = lseCombine(total, Lse{maxes[w], sums[w]});
  return total;
}

// ---- compile-time element types (kernels templated on the dtype of their large tensors) ----

__device__ __forceinline__ float toFloat(float v) { return v; }
__device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ float toFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

/** The dtype code of element type T. */
template <class T>
__host__ __device__ constexpr int dtypeOf() {
  return std::is_same_v<T, float> ? F32 : std::is_same_v<T, __half> ? F16 : BF16;
}

/** Rounds to nearest even, as storef. */
template <class T>
__device__ __forceinline__ T fromFloat(float v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, __half>) return __float2half_rn(v);
  else return __float2bfloat16_rn(v);
}

/** N consecutive elements, aligned so that one vector instruction moves them. */
template <class T, int N>
struct alignas(sizeof(T) * N) ElemPack {
  T e[N];
};

/** True when p is aligned for ElemPack<T, N> accesses. */
template <class T, int N>
inline bool packAligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % (sizeof(T) * N) == 0;
}

/** v[j] = src[i + j] for j < valid, 0 beyond. With `vector` (i a multiple of N, src aligned for the pack) and a full
 *  pack, one vector load; otherwise element by element. src holds T elements. */
template <class T, int N>
__device__ __forceinline__ void loadPack(const void* src, long long i, int valid, bool vector, float (&v)[N]) {
  const T* p = static_cast<const T*>(src) + i;
  if (vector && valid >= N) {
    ElemPack<T, N> pack = *reinterpret_cast<const ElemPack<T, N>*>(p);
#pragma unroll
    for (int j = 0; j < N; j++) v[j] = toFloat(pack.e[j]);
    return;
  }
#pragma unroll
  for (int j = 0; j < N; j++) v[j] = j < valid ? toFloat(p[j]) : 0.0f;
}

/** dst[i + j] = v[j] for j < valid; the vector form as loadPack. */
template <class T, int N>
__device__ __forceinline__ void storePack(void* dst, long long i, int valid, bool vector, const float (&v)[N]) {
  T* p = static_cast<T*>(dst) + i;
  if (vector && valid >= N) {
    ElemPack<T, N> pack;
#pragma unroll
    for (int j = 0; j < N; j++) pack.e[j] = fromFloat<T>(v[j]);
    *reinterpret_cast<ElemPack<T, N>*>(p) = pack;
    return;
  }
#pragma unroll
  for (int j = 0; j < N; j++)
    if (j < valid) p[j] = fromFloat<T>(v[j]);
}

/** Row groups of sumRowsKernel: blockDim is (32, kSumRowGroups). */
constexpr int kSumRowGroups = 32;

/**
 * store(i, Σ_p rows[p·n + i]) for every column i < n of a (parts, n) float matrix of per-block partial sums. Thread
 * (x, y) of a block adds rows y, y + kSumRowGroups, … of column blockIdx.x·32 + x in order, then the row groups' sums
 * are added in group order: the same result every run (no atomics), with parts/kSumRowGroups loads per thread, 8 of
 * them in flight at a time (few blocks run: a partial-sum matrix is a few hundred rows of a few thousand columns).
 * Launch: grid ceil(n / 32), block (32, kSumRowGroups).
 */
template <class Store>
__global__ void __launch_bounds__(32 * kSumRowGroups) sumRowsKernel(const float* rows, int parts, long long n, Store store) {
  __shared__ double groups[kSumRowGroups][32];
  long long i = blockIdx.x * 32LL + threadIdx.x;
  double acc = 0.0;
  if (i < n) {
#pragma unroll 8
    for (int p = threadIdx.y; p < parts; p += kSumRowGroups) acc += rows[p * n + i];
  }
  groups[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && i < n) {
    double total = 0.0;
    for (int g = 0; g < kSumRowGroups; g++) total += groups[g][threadIdx.x];
    store(i, total);
  }
}

/** Calls f(T{}) with T the element type of a float dtype (f32, f16, bf16); returns false for other dtypes. */
template <class F>
inline bool withFloatType(int dtype, F&& f) {
  switch (dtype) {
    case F32: f(float{}); return true;
    case F16: f(__half{}); return true;
    case BF16: f(__nv_bfloat16{}); return true;
    default: return false;
  }
}

}  // namespace mcuda

namespace mcuda {

/** Blocks of `threads` for a grid-stride loop over `items`, one item per thread, capped at `waves` rounds of a full
 *  GPU (2048 resident threads per multiprocessor) so that huge tensors loop instead of launching millions of blocks. */
inline unsigned coveringBlocks(long long items, int threads, int waves = 16) {
  long long cap = static_cast<long long>(multiprocessors()) * (2048 / threads) * waves;
  long long blocks = blocksFor(items, threads);
  return static_cast<unsigned>(blocks < cap ? blocks : cap);
}

}  // namespace mcuda
