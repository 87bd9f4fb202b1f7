// copyMany: several device-to-device copies in one launch (one block row per copy), e.g. a decoder's new state
// written back over the buffers its captured graph reads.
#include "device.cuh"

namespace mcuda {
namespace {

constexpr int kCopiesPerLaunch = 32;

struct CopyTable {
  char* dst[kCopiesPerLaunch];
  const char* src[kCopiesPerLaunch];
  long long bytes[kCopiesPerLaunch];
};

__global__ void copyManyKernel(CopyTable t) {
  waitForPrevious();
  startNext();
  char* dst = t.dst[blockIdx.y];
  const char* src = t.src[blockIdx.y];
  long long n = t.bytes[blockIdx.y];
  long long stride = (long long)gridDim.x * blockDim.x;
  long long first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src) | n) & 15) == 0) {
    for (long long i = first; i < n / 16; i += stride) reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(src)[i];
  } else if (((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src) | n) & 3) == 0) {
    for (long long i = first; i < n / 4; i += stride) reinterpret_cast<int*>(dst)[i] = reinterpret_cast<const int*>(src)[i];
  } else {
    for (long long i = first; i < n; i += stride) dst[i] = src[i];
  }
}

/** count, then (dst, src, bytes) × count */
void copyManyOp(Args& args) {
  long long count = args.i64();
  while (count > 0) {
    CopyTable t{};
    int n = count < kCopiesPerLaunch ? static_cast<int>(count) : kCopiesPerLaunch;
    long long largest = 0;
    for (int i = 0; i < n; i++) {
      t.dst[i] = args.as<char>();
      t.src[i] = args.as<char>();
      t.bytes[i] = args.i64();
      if (t.bytes[i] > largest) largest = t.bytes[i];
    }
    count -= n;
    if (largest == 0) continue;
    unsigned blocks = blocksFor((largest + 15) / 16, 256);
    if (blocks > 1024) blocks = 1024;
    launchDependent(copyManyKernel, dim3(blocks, n), 256, 0, t);
  }
}

MCUDA_OP("copyMany", copyManyOp);

}  // namespace
}  // namespace mcuda
