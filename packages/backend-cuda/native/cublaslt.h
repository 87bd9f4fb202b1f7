// cuBLASLt, loaded at run time with dlopen: the build machine has neither its headers nor its library, so the few
// types, constants and functions used here are declared by hand (values as in cublasLt.h / cublas_api.h).
#pragma once

#include <cuda_runtime_api.h>
#include <library_types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mcuda {

namespace lt {
using Status = int;  // cublasStatus_t; 0 = success
struct Context;
using Handle = Context*;
struct MatmulDescOpaque;
using MatmulDesc = MatmulDescOpaque*;
struct MatrixLayoutOpaque;
using MatrixLayout = MatrixLayoutOpaque*;
struct PreferenceOpaque;
using Preference = PreferenceOpaque*;
struct MatmulAlgo {
  uint64_t data[8];
};
struct HeuristicResult {
  MatmulAlgo algo;
  size_t workspaceSize;
  Status state;
  float wavesCount;
  int reserved[4];
};

constexpr int kComputeF32 = 68;            // CUBLAS_COMPUTE_32F
constexpr int kComputeF32FastTf32 = 77;    // CUBLAS_COMPUTE_32F_FAST_TF32
constexpr int kOpN = 0, kOpT = 1;
constexpr int kDescTransA = 3, kDescTransB = 4;                  // cublasLtMatmulDescAttributes_t
constexpr int kLayoutBatchCount = 5, kLayoutBatchStride = 6;     // cublasLtMatrixLayoutAttribute_t
constexpr int kPrefMaxWorkspace = 1;                             // cublasLtMatmulPreferenceAttributes_t
}  // namespace lt

/** The loaded library: its path and entry points. */
struct CublasLt {
  std::string path;
  size_t version = 0;
  lt::Handle handle = nullptr;

  lt::Status (*create)(lt::Handle*) = nullptr;
  lt::Status (*destroy)(lt::Handle) = nullptr;
  size_t (*getVersion)() = nullptr;
  const char* (*statusString)(lt::Status) = nullptr;
  lt::Status (*descCreate)(lt::MatmulDesc*, int computeType, cudaDataType_t scaleType) = nullptr;
  lt::Status (*descDestroy)(lt::MatmulDesc) = nullptr;
  lt::Status (*descSetAttribute)(lt::MatmulDesc, int attr, const void* buf, size_t size) = nullptr;
  lt::Status (*layoutCreate)(lt::MatrixLayout*, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld) = nullptr;
  lt::Status (*layoutDestroy)(lt::MatrixLayout) = nullptr;
  lt::Status (*layoutSetAttribute)(lt::MatrixLayout, int attr, const void* buf, size_t size) = nullptr;
  lt::Status (*prefCreate)(lt::Preference*) = nullptr;
  lt::Status (*prefDestroy)(lt::Preference) = nullptr;
  lt::Status (*prefSetAttribute)(lt::Preference, int attr, const void* buf, size_t size) = nullptr;
  lt::Status (*heuristic)(lt::Handle, lt::MatmulDesc, lt::MatrixLayout, lt::MatrixLayout, lt::MatrixLayout,
                          lt::MatrixLayout, lt::Preference, int requested, lt::HeuristicResult* results,
                          int* returned) = nullptr;
  lt::Status (*matmul)(lt::Handle, lt::MatmulDesc, const void* alpha, const void* A, lt::MatrixLayout Adesc,
                       const void* B, lt::MatrixLayout Bdesc, const void* beta, const void* C, lt::MatrixLayout Cdesc,
                       void* D, lt::MatrixLayout Ddesc, const lt::MatmulAlgo* algo, void* workspace,
                       size_t workspaceSize, cudaStream_t stream) = nullptr;
};

/** Tries each candidate (file paths or bare sonames) in order; throws a Failure listing what was tried. */
CublasLt loadCublasLt(const std::vector<std::string>& candidates);

std::string statusText(const CublasLt& lib, lt::Status status);

}  // namespace mcuda
