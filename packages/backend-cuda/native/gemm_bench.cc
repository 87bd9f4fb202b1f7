// gemmCandidates(spec, options?): per-algorithm GEMM timings for bench/gemm.ts (see gemm_bench.h).
#include "gemm_bench.h"

#include <cmath>

#include "runtime.h"

namespace mcuda {
namespace {

int dtypeField(const Napi::Object& spec, const char* name, int fallback) {
  Napi::Value v = spec.Get(name);
  if (v.IsUndefined()) return fallback;
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "f32") return F32;
  if (s == "f16") return F16;
  if (s == "bf16") return BF16;
  throw Failure(std::string("gemmCandidates: spec.") + name + " must be 'f32', 'f16' or 'bf16'.");
}

double numberField(const Napi::Object& spec, const char* name, double fallback) {
  Napi::Value v = spec.Get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Failure(std::string("gemmCandidates: spec.") + name + " must be a number.");
  return v.As<Napi::Number>().DoubleValue();
}

long long countField(const Napi::Object& spec, const char* name, double fallback, long long min) {
  double v = numberField(spec, name, fallback);
  if (!(v >= static_cast<double>(min)) || std::floor(v) != v) {
    throw Failure(std::string("gemmCandidates: spec.") + name + " must be an integer ≥ " + std::to_string(min) +
                  " (got " + std::to_string(v) + ").");
  }
  return static_cast<long long>(v);
}

bool flagField(const Napi::Object& spec, const char* name) {
  Napi::Value v = spec.Get(name);
  return !v.IsUndefined() && v.ToBoolean().Value();
}

void* addressField(const Napi::Object& spec, const char* name) {
  double v = numberField(spec, name, 0);
  if (!(v > 0)) throw Failure(std::string("gemmCandidates: spec.") + name + " must be a device address from malloc().");
  return reinterpret_cast<void*>(static_cast<uintptr_t>(v));
}

GemmSpec specOf(const Napi::Object& o) {
  GemmSpec g;
  g.inType = dtypeField(o, "inType", -1);
  if (g.inType < 0) throw Failure("gemmCandidates: spec.inType is required ('f32', 'f16' or 'bf16').");
  g.outType = dtypeField(o, "outType", g.inType);
  g.transA = flagField(o, "transA");
  g.transB = flagField(o, "transB");
  g.M = countField(o, "M", 0, 1);
  g.N = countField(o, "N", 0, 1);
  g.K = countField(o, "K", 0, 1);
  g.batch = countField(o, "batch", 1, 1);
  g.strideA = countField(o, "strideA", 0, 0);
  g.strideB = countField(o, "strideB", 0, 0);
  g.strideC = countField(o, "strideC", static_cast<double>(g.M * g.N), 0);
  g.alpha = static_cast<float>(numberField(o, "alpha", 1));
  g.beta = static_cast<float>(numberField(o, "beta", 0));
  g.A = addressField(o, "A");
  g.B = addressField(o, "B");
  g.C = addressField(o, "C");
  return g;
}

/**
 * gemmCandidates({ inType, outType?, transA?, transB?, M, N, K, batch?, strideA?, strideB?, strideC?, alpha?, beta?,
 * A, B, C }, { warmup?, reps? }?) → { label, tuned, chosen, candidates: [{ kind, ms, workspaceBytes, waves }] }.
 * Synchronous: blocks until the timed calls have run.
 */
Napi::Value GemmCandidates(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    ensureUsable();
    if (!info[0].IsObject()) throw Failure("gemmCandidates: the first argument must be a GEMM spec object.");
    GemmSpec g = specOf(info[0].As<Napi::Object>());
    Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    int warmup = static_cast<int>(countField(opts, "warmup", 3, 0));
    int reps = static_cast<int>(countField(opts, "reps", 20, 1));
    GemmCandidateReport report = gemmCandidateReport(g, warmup, reps);
    Napi::Object out = Napi::Object::New(env);
    out.Set("label", report.label);
    out.Set("tuned", report.tuned);
    out.Set("chosen", report.chosen);
    Napi::Array list = Napi::Array::New(env, report.candidates.size());
    for (size_t i = 0; i < report.candidates.size(); i++) {
      const GemmCandidateTiming& c = report.candidates[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("kind", c.kind == GemmCandidateKind::CublasLt ? "cublasLt" : c.kind == GemmCandidateKind::FewRows ? "fewRows" : "splitTf32");
      o.Set("ms", c.ms);
      o.Set("workspaceBytes", static_cast<double>(c.workspaceBytes));
      o.Set("waves", c.waves);
      list.Set(static_cast<uint32_t>(i), o);
    }
    out.Set("candidates", list);
    return out;
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace

void registerGemmBenchExports(Napi::Env env, Napi::Object exports) {
  exports.Set("gemmCandidates", Napi::Function::New(env, GemmCandidates));
}

}  // namespace mcuda
