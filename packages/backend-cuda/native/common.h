// Shared by host code (.cc, compiled by the C++ compiler) and kernels (.cu, compiled by nvcc).
// Nothing here may include Node-API headers.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace mcuda {

/** Element types, numbered as the JS side numbers them (see src/native.ts). */
enum DType : int { F32 = 0, F16 = 1, BF16 = 2, I32 = 3 };

inline int bytesOf(int dtype) { return dtype == F16 || dtype == BF16 ? 2 : 4; }

inline const char* dtypeName(int dtype) {
  switch (dtype) {
    case F32: return "f32";
    case F16: return "f16";
    case BF16: return "bf16";
    case I32: return "i32";
    default: return "?";
  }
}

/** A failure the caller made or CUDA reported; surfaces in JS as an Error with this message. */
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw Failure(std::string(what) + " failed: " + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")");
  }
}

/** Errors found by kernels (ids out of range, ...), written into mapped host memory and checked at sync/read. */
struct DeviceErrors {
  int code;  // 0 = none, else one of DeviceErrorCode
  int pad;
  long long index;
  long long value;
  long long bound;
};

enum DeviceErrorCode : int {
  kEmbeddingIdOutOfRange = 1,
  kEmbeddingGradIdOutOfRange = 2,
  kCrossEntropyTargetOutOfRange = 3,
  kLinearCrossEntropyTargetOutOfRange = 4,
};

/** Launch geometry helpers. */
inline unsigned blocksFor(long long n, int threads) {
  long long b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 0x7fffffffLL) b = 0x7fffffffLL;
  return static_cast<unsigned>(b);
}

}  // namespace mcuda
