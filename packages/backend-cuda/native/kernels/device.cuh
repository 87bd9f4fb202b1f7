// Device helpers shared by the kernels: typed loads/stores through a runtime dtype, activations, block reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <cmath>

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
__device__ __forceinline__ float siluGradf(float x) {
  float s = sigmoidf(x);
  return s * (1.0f + x * (1.0f - s));
}
/** softplus with PyTorch's threshold 20, as the cpu reference. */
__device__ __forceinline__ float softplusf(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
__device__ __forceinline__ float softplusGradf(float x) { return x > 20.0f ? 1.0f : sigmoidf(x); }

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

}  // namespace mcuda
