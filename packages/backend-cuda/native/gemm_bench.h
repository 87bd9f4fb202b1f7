// GEMM benchmarking: the time of every algorithm cuBLASLt's heuristic offers for a shape, and which one the plan
// (runtime.cc, with autotuning) uses. For bench/gemm.ts; the engine never calls it.
#pragma once

#include <napi.h>

#include <cstddef>
#include <string>
#include <vector>

#include "context.h"

namespace mcuda {

enum class GemmCandidateKind { CublasLt, FewRows, SplitTf32 };

struct GemmCandidateTiming {
  GemmCandidateKind kind;
  double ms;              // median GPU time of one call; +inf where cuBLASLt refused the algorithm
  size_t workspaceBytes;  // what the algorithm needs of the shared workspace
  float waves;            // the heuristic's estimate of how well the grid fills the GPU
};

struct GemmCandidateReport {
  std::string label;  // the plan's profile label ("gemm bf16→f32 8192×8192×768 tB")
  bool tuned = false;  // the plan's algorithm was chosen by timing (else it is the heuristic's first)
  int chosen = -1;     // index in `candidates` of the plan's algorithm
  std::vector<GemmCandidateTiming> candidates;  // the heuristic's order, then the few-rows kernel and split TF32
                                                // products where they fit
};

/** Plans g as gemm() would (tuning included), then times each candidate `reps` times after `warmup` calls (runtime.cc).
 *  Waits for the stream. With beta ≠ 0 the timed calls write a scratch copy of C, else C itself. */
GemmCandidateReport gemmCandidateReport(const GemmSpec& g, int warmup, int reps);

/** Adds gemmCandidates(spec, options?) to the addon's exports. */
void registerGemmBenchExports(Napi::Env env, Napi::Object exports);

}  // namespace mcuda
