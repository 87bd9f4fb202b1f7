// Node-API bindings. Device addresses cross into JS as numbers (48-bit addresses are exact in a double).
// Everything runs on the one stream and returns at once; reads and syncs wait on a worker thread and settle a
// Promise, so the event loop never blocks on the GPU.
#include <napi.h>

#include <cstring>

#include "gemm_bench.h"
#include "graph.h"
#include "profile.h"
#include "runtime.h"

namespace {

using namespace mcuda;

constexpr size_t kUploadChunk = size_t(32) << 20;
bool debugSync = false;  // synchronise after every launch (debugging only: pinpoints the failing kernel)

void* addressArg(const Napi::CallbackInfo& info, size_t i) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(info[i].As<Napi::Number>().Int64Value()));
}

/** Errors that leave the CUDA context unusable (every later call fails with them). */
bool isSticky(cudaError_t err) {
  switch (err) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

void refuseWhileCapturing(const char* what) {
  if (capturing()) {
    throw Failure(std::string("cuda: cannot ") + what + " while a graph is being captured; do it before or after the capture");
  }
}

std::string cudaText(cudaError_t err) {
  return std::string("'") + cudaGetErrorString(err) + "' (" + cudaGetErrorName(err) + ")";
}

/** Runs `body`, turning C++ failures into JS exceptions. */
template <class Body>
Napi::Value guarded(const Napi::CallbackInfo& info, Body body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

Napi::Value Probe(const Napi::CallbackInfo& info) {
  ProbeResult p = probe();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("deviceCount", p.deviceCount);
  o.Set("error", p.error);
  o.Set("name", p.name);
  o.Set("computeCapability", std::to_string(p.major) + "." + std::to_string(p.minor));
  o.Set("totalMemory", static_cast<double>(p.totalMemory));
  o.Set("driverVersion", p.driverVersion);
  o.Set("runtimeVersion", p.runtimeVersion);
  return o;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    std::vector<std::string> candidates;
    Napi::Array list = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) candidates.push_back(list.Get(i).As<Napi::String>());
    InitResult r = initialize(candidates);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("device", r.device);
    o.Set("cublasLt", r.cublasLtPath);
    o.Set("cublasLtVersion", static_cast<double>(r.cublasLtVersion));
    return o;
  });
}

Napi::Value OpNames(const Napi::CallbackInfo& info) {
  const auto& table = ops();
  Napi::Array names = Napi::Array::New(info.Env(), table.size());
  for (size_t i = 0; i < table.size(); i++) names.Set(i, table[i].first);
  return names;
}

Napi::Value Malloc(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    ensureUsable();
    size_t bytes = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
    void* p = allocator().allocate(bytes);
    return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(p)));
  });
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    allocator().release(addressArg(info, 0));
    return info.Env().Undefined();
  });
}

/** upload(address, typedArray): copies through pinned staging buffers, asynchronously. */
Napi::Value Upload(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    ensureUsable();
    refuseWhileCapturing("upload data to the device");
    char* dst = static_cast<char*>(addressArg(info, 0));
    Napi::TypedArray values = info[1].As<Napi::TypedArray>();
    const char* src = static_cast<const char*>(values.ArrayBuffer().Data()) + values.ByteOffset();
    size_t bytes = values.ByteLength();
    for (size_t off = 0; off < bytes; off += kUploadChunk) {
      size_t n = bytes - off < kUploadChunk ? bytes - off : kUploadChunk;
      PinnedBlock* block = pinned().acquire(n);
      std::memcpy(block->ptr, src + off, n);
      cudaError_t err = cudaMemcpyAsync(dst + off, block->ptr, n, cudaMemcpyHostToDevice, stream());
      pinned().releaseAfter(block, stream());
      check(err, "upload (cudaMemcpyAsync)");
    }
    return info.Env().Undefined();
  });
}

/** Rejects with the device error a kernel reported, if any; returns whether it did. */
bool rejectDeviceError(Napi::Env env, Napi::Promise::Deferred& deferred) {
  std::string err = takeDeviceError();
  if (err.empty()) return false;
  deferred.Reject(Napi::Error::New(env, "cuda: " + err + ".").Value());
  return true;
}

std::string stickyMessage(cudaError_t err, const char* when, const std::string& last) {
  return "cuda: CUDA error " + cudaText(err) + " " + when + "; it was raised by kernel '" + last +
         "' or one enqueued before it. The CUDA context is now unusable; restart the process.";
}

class ReadWorker : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, PinnedBlock* block, size_t bytes, std::string last)
      : Napi::AsyncWorker(env, "mamba-ts:cuda-read"), deferred_(Napi::Promise::Deferred::New(env)), block_(block),
        bytes_(bytes), last_(std::move(last)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    cudaError_t err = cudaEventSynchronize(block_->done);
    if (err != cudaSuccess) {
      error_ = err;
      SetError(stickyMessage(err, "while reading a tensor", last_));
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (rejectDeviceError(env, deferred_)) {
      pinned().releaseNow(block_);
      return;
    }
    Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, bytes_);
    std::memcpy(out.Data(), block_->ptr, bytes_);
    pinned().releaseNow(block_);
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override {
    if (isSticky(error_)) markBroken(cudaText(error_) + " near kernel '" + last_ + "'");
    deferred_.Reject(e.Value());  // the pinned block is leaked on purpose: the device may still own it
  }

 private:
  Napi::Promise::Deferred deferred_;
  PinnedBlock* block_;
  size_t bytes_;
  std::string last_;
  cudaError_t error_ = cudaSuccess;
};

/** read(address, bytes): Promise<ArrayBuffer> of a copy taken after all work enqueued so far. */
Napi::Value Read(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    ensureUsable();
    refuseWhileCapturing("read a tensor");
    const void* src = addressArg(info, 0);
    size_t bytes = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
    if (bytes == 0) {
      auto deferred = Napi::Promise::Deferred::New(info.Env());
      deferred.Resolve(Napi::ArrayBuffer::New(info.Env(), 0));
      return deferred.Promise();
    }
    PinnedBlock* block = pinned().acquire(bytes);
    cudaError_t err = cudaMemcpyAsync(block->ptr, src, bytes, cudaMemcpyDeviceToHost, stream());
    if (err == cudaSuccess) err = cudaEventRecord(block->done, stream());
    if (err != cudaSuccess) {
      pinned().releaseNow(block);
      check(err, "read (cudaMemcpyAsync)");
    }
    block->pending = true;
    auto* worker = new ReadWorker(info.Env(), block, bytes, lastKernel());
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

class SyncWorker : public Napi::AsyncWorker {
 public:
  SyncWorker(Napi::Env env, cudaEvent_t event, std::string last)
      : Napi::AsyncWorker(env, "mamba-ts:cuda-sync"), deferred_(Napi::Promise::Deferred::New(env)), event_(event),
        last_(std::move(last)) {}
  ~SyncWorker() override { cudaEventDestroy(event_); }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    cudaError_t err = cudaEventSynchronize(event_);
    if (err != cudaSuccess) {
      error_ = err;
      SetError(stickyMessage(err, "while synchronising", last_));
    }
  }

  void OnOK() override {
    if (rejectDeviceError(Env(), deferred_)) return;
    deferred_.Resolve(Env().Undefined());
  }

  void OnError(const Napi::Error& e) override {
    if (isSticky(error_)) markBroken(cudaText(error_) + " near kernel '" + last_ + "'");
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  cudaEvent_t event_;
  std::string last_;
  cudaError_t error_ = cudaSuccess;
};

/** sync(): Promise that settles when all work enqueued so far has finished. */
Napi::Value Sync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    ensureUsable();
    refuseWhileCapturing("wait for the device");
    cudaEvent_t event;
    check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
    cudaError_t err = cudaEventRecord(event, stream());
    if (err != cudaSuccess) {
      cudaEventDestroy(event);
      check(err, "cudaEventRecord");
    }
    auto* worker = new SyncWorker(info.Env(), event, lastKernel());
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  DeviceAllocator& a = allocator();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("liveBytes", static_cast<double>(a.liveBytes()));
  o.Set("peakBytes", static_cast<double>(a.peakBytes()));
  o.Set("reservedBytes", static_cast<double>(a.reservedBytes()));
  o.Set("cachedBytes", static_cast<double>(a.cachedBytes()));
  o.Set("liveBuffers", static_cast<double>(a.liveBlocks()));
  return o;
}

Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
  allocator().resetPeak();
  return info.Env().Undefined();
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  allocator().emptyCache();
  return info.Env().Undefined();
}

/**
 * launch(opIndex, args: Float64Array, count, label): enqueues one op reading args[0, count); `label` (an id from
 * label()) names it in errors and in the profile. The hot path: no allocation, no string conversion.
 */
Napi::Value Launch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int label = info[3].As<Napi::Number>().Int32Value();
  try {
    ensureUsable();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(e.what()) + " (while launching '" + labelName(label) + "')");
  }
  const auto& table = ops();
  uint32_t index = info[0].As<Napi::Number>().Uint32Value();
  if (index >= table.size()) throw Napi::Error::New(env, "internal: unknown cuda op index " + std::to_string(index));
  Napi::Float64Array packed = info[1].As<Napi::Float64Array>();
  size_t count = info[2].As<Napi::Number>().Uint32Value();
  if (count > packed.ElementLength()) throw Napi::Error::New(env, "internal: launch count exceeds the argument buffer");
  int previousLabel = lastKernelLabel();
  setLastKernel(label);
  int range = profiling() ? profileBegin(label) : -1;
  try {
    Args args(packed.Data(), count);
    table[index].second(args);
  } catch (const std::exception& e) {
    if (range >= 0) profileEnd(range);
    cudaError_t err = cudaGetLastError();
    if (isSticky(err)) {
      std::string previous = previousLabel < 0 ? "(none yet)" : labelName(previousLabel);
      markBroken(cudaText(err) + " near kernel '" + previous + "'");
      throw Napi::Error::New(env, stickyMessage(err, ("detected when launching '" + labelName(label) + "'").c_str(), previous));
    }
    throw Napi::Error::New(env, "cuda kernel '" + labelName(label) + "': " + e.what());
  }
  if (range >= 0) profileEnd(range);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    const std::string& name = labelName(label);
    if (isSticky(err)) {
      markBroken(cudaText(err) + " near kernel '" + name + "'");
      throw Napi::Error::New(env, stickyMessage(err, ("detected after launching '" + name + "'").c_str(), name));
    }
    throw Napi::Error::New(env, "cuda kernel '" + name + "' failed to launch: " + cudaText(err));
  }
  if (debugSync && !capturing()) {
    err = cudaStreamSynchronize(stream());
    if (err != cudaSuccess) {
      const std::string& name = labelName(label);
      markBroken(cudaText(err) + " in kernel '" + name + "'");
      throw Napi::Error::New(env, "cuda kernel '" + name + "' failed: " + cudaText(err) +
                                      " (MAMBA_TS_CUDA_SYNC=1 synchronises after every kernel, so this kernel is the one).");
    }
    std::string device = takeDeviceError();
    if (!device.empty()) throw Napi::Error::New(env, "cuda: " + device + ".");
  }
  return env.Undefined();
}

/** label(name): the id of a launch label (interned once per name). */
Napi::Value Label(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), labelId(info[0].As<Napi::String>()));
}

/** profileReport(): waits for the device, returns [{ label, calls, gpuMs }] since the last report, slowest first. */
Napi::Value ProfileReport(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    ensureUsable();
    std::vector<ProfileRow> rows = profileCollect();
    Napi::Array out = Napi::Array::New(info.Env(), rows.size());
    for (size_t i = 0; i < rows.size(); i++) {
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("label", rows[i].label);
      o.Set("calls", static_cast<double>(rows[i].calls));
      o.Set("gpuMs", rows[i].gpuMs);
      out.Set(i, o);
    }
    return out;
  });
}

/** setOption(name, value): 'scanForwardChunk', 'scanBackwardChunk' (0 = automatic), 'debugSync', 'tf32', 'gemmTune',
 *  'profile' (0/1), 'skinnyGemm' and 'splitTf32' (-1 by timing, 1 always, 0 never), 'dependentLaunch' (-1 = MAMBA_TS_CUDA_PDL, 1, 0). */
Napi::Value SetOption(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>();
  int value = info[1].As<Napi::Number>().Int32Value();
  if (name == "scanForwardChunk") options().scanForwardChunk = value;
  else if (name == "scanBackwardChunk") options().scanBackwardChunk = value;
  else if (name == "debugSync") debugSync = value != 0;
  else if (name == "tf32") options().tf32 = value != 0;
  else if (name == "gemmTune") options().gemmTune = value != 0;
  else if (name == "skinnyGemm") options().skinnyGemm = value < 0 ? -1 : value != 0;
  else if (name == "splitTf32") options().splitTf32 = value < 0 ? -1 : value != 0;
  else if (name == "dependentLaunch") options().dependentLaunch = value < 0 ? -1 : value != 0;
  else if (name == "profile") setProfiling(value != 0);
  else throw Napi::Error::New(info.Env(), "setOption: unknown option '" + name + "'");
  return info.Env().Undefined();
}

Napi::Value CaptureBegin(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    captureBegin();
    return info.Env().Undefined();
  });
}

Napi::Value CaptureEnd(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), captureEnd()); });
}

Napi::Value CaptureAbort(const Napi::CallbackInfo& info) {
  captureAbort();
  return info.Env().Undefined();
}

Napi::Value GraphLaunch(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    graphLaunch(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  });
}

Napi::Value GraphDestroy(const Napi::CallbackInfo& info) {
  graphDestroy(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("opNames", Napi::Function::New(env, OpNames));
  exports.Set("malloc", Napi::Function::New(env, Malloc));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("read", Napi::Function::New(env, Read));
  exports.Set("sync", Napi::Function::New(env, Sync));
  exports.Set("memory", Napi::Function::New(env, Memory));
  exports.Set("resetPeak", Napi::Function::New(env, ResetPeak));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache));
  exports.Set("launch", Napi::Function::New(env, Launch));
  exports.Set("setOption", Napi::Function::New(env, SetOption));
  exports.Set("label", Napi::Function::New(env, Label));
  exports.Set("profileReport", Napi::Function::New(env, ProfileReport));
  exports.Set("captureBegin", Napi::Function::New(env, CaptureBegin));
  exports.Set("captureEnd", Napi::Function::New(env, CaptureEnd));
  exports.Set("captureAbort", Napi::Function::New(env, CaptureAbort));
  exports.Set("graphLaunch", Napi::Function::New(env, GraphLaunch));
  exports.Set("graphDestroy", Napi::Function::New(env, GraphDestroy));
  registerGemmBenchExports(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(mamba_cuda, InitModule)
