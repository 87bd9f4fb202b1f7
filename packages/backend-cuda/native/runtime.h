// Host-side runtime state behind the addon: device probing, initialisation, the op table, error bookkeeping.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "allocator.h"
#include "context.h"

namespace mcuda {

struct ProbeResult {
  int deviceCount = 0;
  std::string error;  // why no device is usable ("" when deviceCount > 0)
  std::string name;
  int major = 0, minor = 0;
  size_t totalMemory = 0;
  int driverVersion = 0;
  int runtimeVersion = 0;
};

/** Looks for a driver and a GPU without creating a context. Never throws. */
ProbeResult probe();

struct InitResult {
  std::string device;
  std::string cublasLtPath;
  size_t cublasLtVersion = 0;
};

/** Selects device 0, creates the stream, the error flags and the cuBLASLt handle. Idempotent; throws Failure. */
InitResult initialize(const std::vector<std::string>& cublasLtCandidates);

/** Throws unless initialised and no earlier CUDA error has left the context unusable. */
void ensureUsable();
/** After a sticky CUDA error every later call fails with this explanation. */
void markBroken(const std::string& why);

DeviceAllocator& allocator();
PinnedPool& pinned();

/** The first error a kernel reported since the last call, as a sentence ("" if none); clears it. */
std::string takeDeviceError();

/** The label (see labelId) of the op enqueued last, named in sticky-error messages. */
void setLastKernel(int label);
std::string lastKernel();
int lastKernelLabel();

const std::vector<std::pair<std::string, OpFn>>& ops();

/** Frees the CUDA objects owned here (process exit). */
void shutdown();

}  // namespace mcuda
