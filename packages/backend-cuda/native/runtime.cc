#include "runtime.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <tuple>

#include "cublaslt.h"
#include "gemm_bench.h"
#include "profile.h"

namespace mcuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;
constexpr size_t kPinnedCacheBytes = size_t(256) << 20;

/** How many algorithms the heuristic is asked for: the candidates that tuning times. */
constexpr int kGemmCandidates = 8;
/** Below this M·N·K·batch a GEMM takes microseconds: timing its candidates would cost more than a better one saves. */
constexpr long long kTuneMinWork = 1LL << 21;
constexpr int kTuneWarmup = 2, kTuneReps = 5;
/** Another candidate replaces the heuristic's first only when it is faster by more than timing noise. */
constexpr double kTuneMargin = 0.97;

/** A prepared GEMM: descriptors, the heuristic's candidate algorithms for one shape and the one used. */
struct GemmPlan {
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout first = nullptr, second = nullptr, out = nullptr;
  std::vector<lt::HeuristicResult> candidates;  // the heuristic's favourite first; each fits the workspace
  lt::MatmulAlgo algo{};                        // candidates[0] until tuning picks another
  bool skinnyFits = false;                      // the few-rows kernel is a candidate too (timed after cuBLASLt's)
  bool splitFits = false;                       // so are split TF32 products (timed last)
  bool skinny = false;                          // tuning chose the few-rows kernel over algo
  bool split = false;                           // tuning chose split TF32 products over algo
  bool settled = false;                         // tuned, or not worth tuning: never timed again
  bool tuned = false;                           // algo was chosen by timing the candidates
  int label = -1;                               // profile label: "gemm <dtypes> M×N×K[×batch]"
};

using GemmKey = std::tuple<int, int, bool, bool, long long, long long, long long, long long, long long, long long,
                           long long, long long, long long, int, int, int, int>;

struct State {
  bool ready = false;
  int sms = 0;
  std::string deviceName;
  cudaStream_t stream = nullptr;
  DeviceAllocator alloc;
  PinnedPool pinned{kPinnedCacheBytes};
  DeviceErrors* errors = nullptr;  // mapped: the host and device address are the same (UVA)
  CublasLt lt;
  void* workspace = nullptr;
  std::map<GemmKey, GemmPlan> plans;
  Options opts;
  int lastLabel = -1;
  std::string broken;
};

State& state() {
  static State* s = new State();  // never destroyed: Node may unload us after CUDA has shut down
  return *s;
}

std::vector<std::pair<std::string, OpFn>>& opTable() {
  static std::vector<std::pair<std::string, OpFn>> table;
  return table;
}

cudaDataType_t cudaTypeOf(int dtype) {
  switch (dtype) {
    case F32: return CUDA_R_32F;
    case F16: return CUDA_R_16F;
    case BF16: return CUDA_R_16BF;
    default: throw Failure(std::string("matmul: unsupported dtype ") + dtypeName(dtype));
  }
}

/** Largest power of two (up to 256) dividing the address: cuBLASLt must not assume more. */
int alignmentOf(const void* p) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p);
  int a = 256;
  while (a > 1 && v % a != 0) a >>= 1;
  return a;
}

void ltCheck(lt::Status status, const char* what) {
  if (status != 0) throw Failure(std::string("cuBLASLt ") + what + " failed: " + statusText(state().lt, status));
}

lt::MatrixLayout makeLayout(cudaDataType_t type, long long rows, long long cols, long long ld, long long batch,
                            long long stride) {
  State& s = state();
  lt::MatrixLayout layout = nullptr;
  ltCheck(s.lt.layoutCreate(&layout, type, rows, cols, ld), "matrix layout");
  if (batch > 1) {
    int count = static_cast<int>(batch);
    int64_t st = stride;
    ltCheck(s.lt.layoutSetAttribute(layout, lt::kLayoutBatchCount, &count, sizeof count), "batch count");
    ltCheck(s.lt.layoutSetAttribute(layout, lt::kLayoutBatchStride, &st, sizeof st), "batch stride");
  }
  return layout;
}

/** Elements from C's first to its last (the whole strided batch). */
long long outputSpan(const GemmSpec& g) { return g.batch > 1 ? g.strideC * (g.batch - 1) + g.M * g.N : g.M * g.N; }

/** An environment switch: on unless the variable is "0". */
bool environmentSwitch(const char* variable) {
  const char* v = std::getenv(variable);
  return !(v && std::strcmp(v, "0") == 0);
}

/** An on/off option: 1 or 0 as set, -1 for the environment's switch (read once by the caller). */
bool optionOr(int option, bool fromEnvironment) { return option >= 0 ? option != 0 : fromEnvironment; }

/** Split TF32 products are a candidate for f32 GEMMs unless switched off (option 0, or MAMBA_TS_CUDA_SPLIT_TF32=0). */
bool splitTf32Enabled() {
  static const bool fromEnvironment = environmentSwitch("MAMBA_TS_CUDA_SPLIT_TF32");
  return optionOr(state().opts.splitTf32, fromEnvironment);
}

bool tuningEnabled() {
  static const bool fromEnvironment = environmentSwitch("MAMBA_TS_CUDA_GEMM_TUNE");
  return optionOr(state().opts.gemmTune, fromEnvironment);
}

/** True while the stream is being captured into a CUDA graph (or when that cannot be told): no syncing then. */
bool streamCapturing() {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(state().stream, &status) != cudaSuccess) return true;
  return status != cudaStreamCaptureStatusNone;
}

/** Timing events, destroyed with the scope (also when a failure is thrown). */
class EventChain {
 public:
  explicit EventChain(size_t count) {
    events_.reserve(count);
    for (size_t i = 0; i < count; i++) {
      cudaEvent_t e;
      check(cudaEventCreate(&e), "cudaEventCreate (GEMM timing)");
      events_.push_back(e);
    }
  }
  ~EventChain() {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }
  EventChain(const EventChain&) = delete;
  EventChain& operator=(const EventChain&) = delete;
  cudaEvent_t operator[](size_t i) const { return events_[i]; }
  size_t size() const { return events_.size(); }

 private:
  std::vector<cudaEvent_t> events_;
};

double median(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::infinity();
  std::sort(v.begin(), v.end());
  size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

/** The kinds of candidate a plan times: cuBLASLt's algorithms, then the few-rows kernel and split TF32 products where
 *  they fit. */
std::vector<GemmCandidateKind> candidateKinds(const GemmPlan& plan, const GemmSpec& g) {
  std::vector<GemmCandidateKind> kinds(plan.candidates.size(), GemmCandidateKind::CublasLt);
  if (plan.skinnyFits && skinnyGemmFits(g)) kinds.push_back(GemmCandidateKind::FewRows);
  if (plan.splitFits && splitTf32Enabled()) kinds.push_back(GemmCandidateKind::SplitTf32);
  return kinds;
}

/**
 * GPU time (ms) of one call with each of the plan's candidates (candidateKinds' order): the median of `reps` rounds,
 * each round running every candidate once in turn (so clock changes hit them alike); +inf where cuBLASLt refuses the
 * algorithm. Runs on the real operands; with beta ≠ 0 C is an input, so the timed calls then accumulate into a zeroed
 * scratch copy instead. Waits for the stream.
 */
std::vector<double> timeCandidates(const GemmPlan& plan, const GemmSpec& g, int warmup, int reps) {
  State& s = state();
  const std::vector<GemmCandidateKind> kinds = candidateKinds(plan, g);
  const size_t n = kinds.size();
  std::unique_ptr<Scratch> scratch;
  void* c = g.C;
  if (g.beta != 0.0f) {
    size_t bytes = static_cast<size_t>(outputSpan(g)) * bytesOf(g.outType);
    scratch = std::make_unique<Scratch>(bytes);
    zeroFill(scratch->get(), bytes);
    c = scratch->get();
  }
  auto run = [&](size_t i) -> lt::Status {
    if (kinds[i] != GemmCandidateKind::CublasLt) {
      GemmSpec spec = g;
      spec.C = c;
      if (kinds[i] == GemmCandidateKind::FewRows) skinnyGemm(spec);
      else splitTf32Gemm(spec);
      return 0;
    }
    return s.lt.matmul(s.lt.handle, plan.desc, &g.alpha, g.B, plan.first, g.A, plan.second, &g.beta, c, plan.out, c,
                       plan.out, &plan.candidates[i].algo, s.workspace, kWorkspaceBytes, s.stream);
  };
  std::vector<bool> usable(n, true);
  for (size_t i = 0; i < n; i++) {
    for (int w = 0; w < warmup && usable[i]; w++) usable[i] = run(i) == 0;
  }
  // One event between consecutive calls: call k runs between events k and k + 1.
  std::vector<size_t> callOf;
  for (int r = 0; r < reps; r++) {
    for (size_t i = 0; i < n; i++) {
      if (usable[i]) callOf.push_back(i);
    }
  }
  std::vector<double> ms(n, std::numeric_limits<double>::infinity());
  if (callOf.empty()) return ms;
  EventChain events(callOf.size() + 1);
  check(cudaEventRecord(events[0], s.stream), "cudaEventRecord (GEMM timing)");
  for (size_t k = 0; k < callOf.size(); k++) {
    if (run(callOf[k]) != 0) usable[callOf[k]] = false;
    check(cudaEventRecord(events[k + 1], s.stream), "cudaEventRecord (GEMM timing)");
  }
  check(cudaEventSynchronize(events[callOf.size()]), "cudaEventSynchronize (GEMM timing)");
  std::vector<std::vector<double>> times(n);
  for (size_t k = 0; k < callOf.size(); k++) {
    float t = 0;
    check(cudaEventElapsedTime(&t, events[k], events[k + 1]), "cudaEventElapsedTime (GEMM timing)");
    times[callOf[k]].push_back(t);
  }
  for (size_t i = 0; i < n; i++) {
    if (usable[i]) ms[i] = median(times[i]);
  }
  return ms;
}

/** Keeps the fastest candidate; the heuristic's first unless another is clearly faster. */
void tune(GemmPlan& plan, const GemmSpec& g) {
  std::vector<double> ms = timeCandidates(plan, g, kTuneWarmup, kTuneReps);
  size_t best = 0;
  for (size_t i = 1; i < ms.size(); i++) {
    if (ms[i] < ms[best]) best = i;
  }
  if (best != 0 && std::isfinite(ms[best]) && !(ms[best] < kTuneMargin * ms[0])) best = 0;
  const GemmCandidateKind kind = candidateKinds(plan, g)[best];
  plan.skinny = kind == GemmCandidateKind::FewRows;
  plan.split = kind == GemmCandidateKind::SplitTf32;
  if (kind == GemmCandidateKind::CublasLt) plan.algo = plan.candidates[best].algo;
  plan.settled = plan.tuned = true;
}

/**
 * cuBLASLt is column-major; a row-major (r, c) matrix is a column-major (c, r) one. So the row-major product
 * C = op(A)·op(B) is computed as the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, with B as the first operand.
 */
GemmPlan makePlan(const GemmSpec& g, int compute, int alignA, int alignB, int alignC) {
  State& s = state();
  cudaDataType_t in = cudaTypeOf(g.inType), out = cudaTypeOf(g.outType);
  GemmPlan plan;
  ltCheck(s.lt.descCreate(&plan.desc, compute, CUDA_R_32F), "matmul descriptor");
  int opFirst = g.transB ? lt::kOpT : lt::kOpN;
  int opSecond = g.transA ? lt::kOpT : lt::kOpN;
  ltCheck(s.lt.descSetAttribute(plan.desc, lt::kDescTransA, &opFirst, sizeof opFirst), "transA");
  ltCheck(s.lt.descSetAttribute(plan.desc, lt::kDescTransB, &opSecond, sizeof opSecond), "transB");
  // First operand = B: stored (K, N) row-major, i.e. column-major (N, K); or (N, K) → column-major (K, N) if transB.
  const long long ldb = g.ldb ? g.ldb : g.transB ? g.K : g.N;
  plan.first = g.transB ? makeLayout(in, g.K, g.N, ldb, g.batch, g.strideB) : makeLayout(in, g.N, g.K, ldb, g.batch, g.strideB);
  // Second operand = A: stored (M, K) → column-major (K, M); or (K, M) → column-major (M, K) if transA.
  const long long lda = g.lda ? g.lda : g.transA ? g.M : g.K;
  plan.second = g.transA ? makeLayout(in, g.M, g.K, lda, g.batch, g.strideA) : makeLayout(in, g.K, g.M, lda, g.batch, g.strideA);
  plan.out = makeLayout(out, g.N, g.M, g.N, g.batch, g.strideC);

  lt::Preference pref = nullptr;
  ltCheck(s.lt.prefCreate(&pref), "preference");
  uint64_t workspace = kWorkspaceBytes;
  ltCheck(s.lt.prefSetAttribute(pref, lt::kPrefMaxWorkspace, &workspace, sizeof workspace), "workspace size");
  // Minimum alignments of the first (B), second (A), C and D buffers.
  uint32_t alignments[4] = {uint32_t(alignB), uint32_t(alignA), uint32_t(alignC), uint32_t(alignC)};
  for (int i = 0; i < 4; i++) ltCheck(s.lt.prefSetAttribute(pref, 5 + i, &alignments[i], sizeof(uint32_t)), "alignment");
  std::vector<lt::HeuristicResult> results(kGemmCandidates);
  int returned = 0;
  lt::Status status = s.lt.heuristic(s.lt.handle, plan.desc, plan.first, plan.second, plan.out, plan.out, pref,
                                     kGemmCandidates, results.data(), &returned);
  s.lt.prefDestroy(pref);
  for (int i = 0; status == 0 && i < returned && i < kGemmCandidates; i++) {
    if (results[i].state == 0 && results[i].workspaceSize <= kWorkspaceBytes) plan.candidates.push_back(results[i]);
  }
  if (plan.candidates.empty()) {
    throw Failure("matmul: cuBLASLt has no algorithm for " + std::string(dtypeName(g.inType)) + "→" +
                  dtypeName(g.outType) + " M=" + std::to_string(g.M) + " N=" + std::to_string(g.N) + " K=" +
                  std::to_string(g.K) + " batch=" + std::to_string(g.batch) + " (" + statusText(s.lt, status) + ")");
  }
  plan.algo = plan.candidates[0].algo;
  // Shapes the few-rows kernel fits are always timed: they are small, and choosing well matters for decoding.
  plan.skinnyFits = skinnyGemmFits(g);
  // Splitting the operands costs a pass over them: only worth timing where the product is not tiny.
  const bool small = g.M * g.N * g.K * g.batch < kTuneMinWork;
  plan.splitFits = compute == lt::kComputeF32 && splitTf32Fits(g) && !small;
  plan.settled = !plan.skinnyFits && !plan.splitFits && (plan.candidates.size() == 1 || small);
  plan.label = labelId("  gemm " + std::string(dtypeName(g.inType)) + (compute == lt::kComputeF32 ? "" : "/tf32") + "→" +
                       dtypeName(g.outType) + " " + std::to_string(g.M) + "×" + std::to_string(g.N) + "×" +
                       std::to_string(g.K) + (g.batch > 1 ? "×" + std::to_string(g.batch) : "") +
                       (g.transA ? " tA" : "") + (g.transB ? " tB" : ""));
  return plan;
}

/**
 * The cached plan for g's shape, dtypes, alignments and compute type. The first call outside a CUDA graph capture
 * times the heuristic's candidates on g's operands and keeps the fastest (unless tuning is off or the GEMM is tiny).
 */
GemmPlan& planFor(const GemmSpec& g) {
  State& s = state();
  int alignA = alignmentOf(g.A), alignB = alignmentOf(g.B), alignC = alignmentOf(g.C);
  // TF32 (opt-in, or for operands split into TF32 parts) only changes f32 inputs; halves always multiply exactly with
  // f32 accumulation.
  int compute = g.inType == F32 && (s.opts.tf32 || g.tf32Operands) ? lt::kComputeF32FastTf32 : lt::kComputeF32;
  GemmKey key{g.inType, g.outType, g.transA, g.transB, g.M, g.N, g.K, g.batch, g.strideA, g.strideB, g.strideC,
              g.lda, g.ldb, alignA, alignB, alignC, compute};
  auto found = s.plans.find(key);
  if (found == s.plans.end()) found = s.plans.emplace(key, makePlan(g, compute, alignA, alignB, alignC)).first;
  GemmPlan& plan = found->second;
  if (!plan.settled && tuningEnabled() && !streamCapturing()) tune(plan, g);
  return plan;
}

}  // namespace

// ---- context.h ----

cudaStream_t stream() { return state().stream; }
DeviceErrors* deviceErrors() { return state().errors; }
int multiprocessors() { return state().sms; }
Options& options() { return state().opts; }

bool& lastLaunchStartsNext() {
  static bool startsNext = false;
  return startsNext;
}

bool dependentLaunchEnabled() {  // asked at every launchDependent: the environment is read once
  static const bool fromEnvironment = environmentSwitch("MAMBA_TS_CUDA_PDL");
  return optionOr(state().opts.dependentLaunch, fromEnvironment);
}

void zeroFill(void* ptr, size_t bytes) {
  if (bytes == 0) return;
  check(cudaMemsetAsync(ptr, 0, bytes, state().stream), "cudaMemsetAsync");
}

Scratch::Scratch(size_t bytes) : ptr_(state().alloc.allocate(bytes)) {}
Scratch::~Scratch() { state().alloc.release(ptr_); }

OpRegistrar::OpRegistrar(const char* name, OpFn fn) { opTable().emplace_back(name, fn); }

void gemm(const GemmSpec& g) {
  if (g.M == 0 || g.N == 0 || g.batch == 0) return;
  if (g.K == 0) {
    // An empty sum: C = beta·C; only beta 0 (overwrite) and 1 (accumulate) are used.
    if (g.beta == 0.0f) {
      zeroFill(g.C, outputSpan(g) * bytesOf(g.outType));
    }
    return;
  }
  State& s = state();
  GemmPlan& plan = planFor(g);
  int range = profiling() ? profileBegin(plan.label) : -1;
  const int skinnyOption = s.opts.skinnyGemm, splitOption = s.opts.splitTf32;
  if ((skinnyOption == 1 || (skinnyOption < 0 && plan.skinny)) && skinnyGemmFits(g)) {
    skinnyGemm(g);
    if (range >= 0) profileEnd(range);
    return;
  }
  if (!s.opts.tf32 && splitTf32Fits(g) && (splitOption == 1 || (plan.split && splitTf32Enabled()))) {
    splitTf32Gemm(g);
    if (range >= 0) profileEnd(range);
    return;
  }
  lt::Status status = s.lt.matmul(s.lt.handle, plan.desc, &g.alpha, g.B, plan.first, g.A, plan.second, &g.beta, g.C,
                                   plan.out, g.C, plan.out, &plan.algo, s.workspace, kWorkspaceBytes, s.stream);
  lastLaunchStartsNext() = false;
  if (range >= 0) profileEnd(range);
  ltCheck(status, "matmul");
}

// ---- gemm_bench.h ----

GemmCandidateReport gemmCandidateReport(const GemmSpec& g, int warmup, int reps) {
  GemmPlan& plan = planFor(g);
  std::vector<double> ms = timeCandidates(plan, g, warmup, reps);
  GemmCandidateReport report;
  report.label = labelName(plan.label);
  report.label.erase(0, report.label.find_first_not_of(' '));
  report.tuned = plan.tuned;
  const std::vector<GemmCandidateKind> kinds = candidateKinds(plan, g);
  for (size_t i = 0; i < kinds.size(); i++) {
    bool chosen = false;
    if (kinds[i] == GemmCandidateKind::CublasLt) {
      const lt::HeuristicResult& c = plan.candidates[i];
      report.candidates.push_back({kinds[i], ms[i], c.workspaceSize, c.wavesCount});
      chosen = !plan.skinny && !plan.split && std::memcmp(&c.algo, &plan.algo, sizeof plan.algo) == 0;
    } else {
      report.candidates.push_back({kinds[i], ms[i], 0, 0.0f});
      chosen = kinds[i] == GemmCandidateKind::FewRows ? plan.skinny : plan.split;
    }
    if (chosen && report.chosen < 0) report.chosen = static_cast<int>(i);
  }
  return report;
}

// ---- runtime.h ----

ProbeResult probe() {
  ProbeResult r;
  cudaDriverGetVersion(&r.driverVersion);
  cudaRuntimeGetVersion(&r.runtimeVersion);
  cudaError_t err = cudaGetDeviceCount(&r.deviceCount);
  if (err != cudaSuccess) {
    cudaGetLastError();
    r.deviceCount = 0;
    if (err == cudaErrorInsufficientDriver && r.driverVersion == 0) {
      r.error = "no CUDA driver (libcuda.so.1 was not found or could not be loaded)";
    } else if (err == cudaErrorInsufficientDriver) {
      r.error = "the CUDA driver (version " + std::to_string(r.driverVersion) +
                ") is older than this addon's CUDA runtime (" + std::to_string(r.runtimeVersion) + ")";
    } else if (err == cudaErrorNoDevice) {
      r.error = "no GPU: the CUDA driver reports no device";
    } else {
      r.error = std::string("CUDA is not usable: ") + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")";
    }
    return r;
  }
  if (r.deviceCount == 0) {
    r.error = "no GPU: the CUDA driver reports no device";
    return r;
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    r.name = prop.name;
    r.major = prop.major;
    r.minor = prop.minor;
    r.totalMemory = prop.totalGlobalMem;
  }
  return r;
}

InitResult initialize(const std::vector<std::string>& cublasLtCandidates) {
  State& s = state();
  if (!s.ready) {
    ProbeResult p = probe();
    if (p.deviceCount == 0) throw Failure(p.error);
    check(cudaSetDevice(0), "cudaSetDevice");
    cudaDeviceProp prop;
    check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    s.sms = prop.multiProcessorCount;
    s.deviceName = prop.name;
    if (!s.lt.handle) s.lt = loadCublasLt(cublasLtCandidates);
    check(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    void* errors = nullptr;
    check(cudaHostAlloc(&errors, sizeof(DeviceErrors), cudaHostAllocMapped), "cudaHostAlloc (error flags)");
    std::memset(errors, 0, sizeof(DeviceErrors));
    void* deviceAddress = nullptr;
    check(cudaHostGetDevicePointer(&deviceAddress, errors, 0), "cudaHostGetDevicePointer");
    s.errors = static_cast<DeviceErrors*>(deviceAddress);
    check(cudaMalloc(&s.workspace, kWorkspaceBytes), "cudaMalloc (cuBLASLt workspace)");
    s.ready = true;
  }
  return InitResult{s.deviceName, s.lt.path, s.lt.version};
}

void ensureUsable() {
  State& s = state();
  if (!s.ready) throw Failure("cuda: the backend is not initialised; call registerCudaBackend() first.");
  if (!s.broken.empty()) throw Failure("cuda: the CUDA context is unusable after an earlier error (" + s.broken +
                                       "); restart the process.");
}

void markBroken(const std::string& why) {
  if (state().broken.empty()) state().broken = why;
}

DeviceAllocator& allocator() { return state().alloc; }
PinnedPool& pinned() { return state().pinned; }

std::string takeDeviceError() {
  State& s = state();
  if (!s.errors) return "";
  volatile DeviceErrors* e = s.errors;
  int code = e->code;
  if (code <= 0) return "";
  long long index = e->index, value = e->value, bound = e->bound;
  e->code = 0;
  std::string at = std::to_string(index), v = std::to_string(value), b = std::to_string(bound);
  switch (code) {
    case kEmbeddingIdOutOfRange:
      return "embedding: ids[" + at + "] = " + v + " is outside the vocabulary [0, " + b + ") (its output row is zeros)";
    case kEmbeddingGradIdOutOfRange:
      return "embeddingGrad: ids[" + at + "] = " + v + " is outside the vocabulary [0, " + b + ")";
    case kCrossEntropyTargetOutOfRange:
      return "crossEntropy: targets[" + at + "] = " + v + " is outside the vocabulary [0, " + b +
             ") and is not ignoreIndex (its loss is NaN)";
    case kLinearCrossEntropyTargetOutOfRange:
      return "linearCrossEntropy: targets[" + at + "] = " + v + " is outside the vocabulary [0, " + b +
             ") and is not ignoreIndex (its loss is NaN)";
    default:
      return "a kernel reported error code " + std::to_string(code);
  }
}

void setLastKernel(int label) { state().lastLabel = label; }
int lastKernelLabel() { return state().lastLabel; }
std::string lastKernel() { return state().lastLabel < 0 ? "(none yet)" : labelName(state().lastLabel); }

const std::vector<std::pair<std::string, OpFn>>& ops() { return opTable(); }

void shutdown() {
  State& s = state();
  if (!s.ready) return;
  cudaStreamSynchronize(s.stream);
}

}  // namespace mcuda
