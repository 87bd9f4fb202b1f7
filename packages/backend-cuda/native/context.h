// The process-wide CUDA state that ops use: the one stream, scratch memory, GEMM, device error flags, options.
// Plain C++ (no Node-API), so kernel files compiled by nvcc can include it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common.h"

namespace mcuda {

/** The packed arguments of one launch, as sent from JS (a Float64Array read front to back). */
class Args {
 public:
  Args(const double* values, size_t count) : v_(values), n_(count) {}

  double f64() {
    if (i_ >= n_) throw Failure("internal: launch arguments ended early (" + std::to_string(n_) + " given)");
    return v_[i_++];
  }
  float f32() { return static_cast<float>(f64()); }
  long long i64() { return static_cast<long long>(f64()); }
  int i32() { return static_cast<int>(f64()); }
  bool flag() { return f64() != 0.0; }
  int dtype() { return i32(); }
  /** A device address (JS numbers hold 48-bit addresses exactly). */
  void* ptr() { return reinterpret_cast<void*>(static_cast<uintptr_t>(f64())); }
  template <class T>
  T* as() { return static_cast<T*>(ptr()); }
  size_t remaining() const { return n_ - i_; }

 private:
  const double* v_;
  size_t n_;
  size_t i_ = 0;
};

/** Device scratch memory from the caching allocator, given back when it goes out of scope. Safe to reuse at once:
 *  every kernel runs on the one stream, so later work that gets the block runs after earlier work that used it. */
class Scratch {
 public:
  explicit Scratch(size_t bytes);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return ptr_; }
  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_;
};

/** Row-major GEMM: C[b] (M×N) = alpha · op(A[b]) · op(B[b]) + beta · C[b], f32 accumulation.
 *  op(A) is M×K (A stored K×M when transA), op(B) is K×N (B stored N×K when transB). Strides are in elements;
 *  a stride of 0 broadcasts that operand over the batch. A and B share `inType`; C has `outType`. */
struct GemmSpec {
  int inType = F32;
  int outType = F32;
  bool transA = false;
  bool transB = false;
  long long M = 0, N = 0, K = 0;
  long long batch = 1;
  long long strideA = 0, strideB = 0, strideC = 0;
  /** Elements from one stored row of A (of B) to the next; 0 = packed (the stored row's length). */
  long long lda = 0, ldb = 0;
  /** f32 operands already rounded to TF32: multiply them on tensor cores (kernels/split_tf32.cu). */
  bool tf32Operands = false;
  float alpha = 1.0f, beta = 0.0f;
  const void* A = nullptr;
  const void* B = nullptr;
  void* C = nullptr;
};

cudaStream_t stream();
/** Device address of the error flags that kernels set (mapped host memory). */
DeviceErrors* deviceErrors();
int multiprocessors();
void gemm(const GemmSpec& spec);
/** The largest M the few-rows kernel takes (kernels/skinny.cu). */
constexpr long long kSkinnyMaxRows = 64;
/** Whether the few-rows kernel can compute g: x·Wᵀ (transB only, packed), one batch, beta 0, one float dtype, K a whole
 *  number of 16-byte vectors, x and W 16-byte aligned, M ≤ kSkinnyMaxRows. */
bool skinnyGemmFits(const GemmSpec& g);
/** C = alpha·A·Bᵀ for few rows (skinnyGemmFits(g) must hold); GEMM plans choose it by timing. */
void skinnyGemm(const GemmSpec& g);
/** Whether splitTf32Gemm can compute g: f32 in and out, packed operands, not already TF32. */
bool splitTf32Fits(const GemmSpec& g);
/** g with f32 accuracy on TF32 tensor cores, from three products of split operands (splitTf32Fits(g) must hold);
 *  GEMM plans choose it by timing. */
void splitTf32Gemm(const GemmSpec& g);
void zeroFill(void* ptr, size_t bytes);

/** Tunables set from JS (tests force small scan chunks to cover the multi-chunk path). 0 = automatic. */
struct Options {
  int scanForwardChunk = 0;
  int scanBackwardChunk = 0;
  /** f32 GEMMs on tensor cores with TF32 inputs (about 3 significant digits): faster, not bit-faithful to f32. */
  bool tf32 = false;
  /** f32 GEMMs as three TF32 tensor-core products of split operands (f32 accuracy, kernels/split_tf32.cu): -1 where
   *  timing says it is faster (with gemmTune; never when MAMBA_TS_CUDA_SPLIT_TF32=0), 1 always, 0 never. */
  int splitTf32 = -1;
  /** GEMM autotuning: the first time a shape runs (outside graph capture), time cuBLASLt's candidate algorithms and
   *  keep the fastest. 1 on, 0 off (the heuristic's first choice), -1 = MAMBA_TS_CUDA_GEMM_TUNE (on unless "0"). */
  int gemmTune = -1;
  /** The few-rows GEMM kernel (kernels/skinny.cu) where it fits: -1 when timing says it is faster (with gemmTune),
   *  1 always, 0 never. */
  int skinnyGemm = -1;
  /** Programmatic dependent launch for the kernels that support it (launchDependent): -1 = MAMBA_TS_CUDA_PDL (on
   *  unless "0"), 1 on, 0 off. */
  int dependentLaunch = -1;
};
Options& options();
/** Whether launchDependent asks for programmatic dependent launch (options().dependentLaunch, then the environment). */
bool dependentLaunchEnabled();
/** Whether the kernel enqueued last lets its successor start early (launchDependent sets it; a cuBLASLt GEMM, whose
 *  kernels do not, clears it: after one, a programmatic launch only adds an edge that never fires early, measured
 *  ~2% slower for the batch-64 decode step). */
bool& lastLaunchStartsNext();

using OpFn = void (*)(Args&);

/** Ops register themselves by name at load time; JS looks them up once and launches them by index. */
struct OpRegistrar {
  OpRegistrar(const char* name, OpFn fn);
};

}  // namespace mcuda

#define MCUDA_OP(name, fn) static ::mcuda::OpRegistrar mcuda_registrar_##fn(name, fn)
