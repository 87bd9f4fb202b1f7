// Embedding lookup out[i, :] = table[ids[i], :] and its backward, a scatter-add of dout rows into dtable.
// An id outside [0, vocab) is reported (at the next sync or read) instead of reading out of bounds.
#include "device.cuh"

namespace mcuda {
namespace {

__global__ void embeddingKernel(In table, const int* ids, Out out, long long positions, long long vocab, long long dim,
                                DeviceErrors* errors) {
  waitForPrevious();
  startNext();
  long long n = positions * dim;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    long long p = i / dim, d = i % dim;
    int id = ids[p];
    if (id < 0 || id >= vocab) {
      if (d == 0) reportError(errors, kEmbeddingIdOutOfRange, p, id, vocab);
      out.set(i, 0.0f);
    } else {
      out.set(i, table[id * dim + d]);
    }
  }
}

__global__ void embeddingGradKernel(In dout, const int* ids, float* dtable, long long positions, long long vocab,
                                    long long dim, DeviceErrors* errors) {
  long long n = positions * dim;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    long long p = i / dim, d = i % dim;
    int id = ids[p];
    if (id < 0 || id >= vocab) {
      if (d == 0) reportError(errors, kEmbeddingGradIdOutOfRange, p, id, vocab);
    } else {
      atomicAdd(&dtable[id * dim + d], dout[i]);
    }
  }
}

__global__ void toDtypeKernel(const float* src, Out dst, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    dst.set(i, src[i]);
  }
}

unsigned gridFor(long long n) {
  unsigned blocks = blocksFor(n, 256), cap = multiprocessors() * 16;
  return blocks < cap ? blocks : cap;
}

/** table, ids, out, positions, vocab, dim */
void embeddingOp(Args& a) {
  In table = readIn(a);
  const int* ids = a.as<const int>();
  Out out = readOut(a);
  long long positions = a.i64(), vocab = a.i64(), dim = a.i64();
  if (positions * dim == 0) return;
  launchDependent(embeddingKernel, gridFor(positions * dim), 256, 0, table, ids, out, positions, vocab, dim,
                  deviceErrors());
}

/** dout, ids, dtable, positions, vocab, dim */
void embeddingGradOp(Args& a) {
  In dout = readIn(a);
  const int* ids = a.as<const int>();
  Out dtable = readOut(a);
  long long positions = a.i64(), vocab = a.i64(), dim = a.i64();
  long long n = vocab * dim;
  if (n == 0) return;
  bool direct = dtable.dtype == F32;
  Scratch accumulator(direct ? 0 : n * sizeof(float));
  float* acc = direct ? static_cast<float*>(dtable.p) : accumulator.as<float>();
  zeroFill(acc, n * sizeof(float));
  if (positions * dim > 0) {
    embeddingGradKernel<<<gridFor(positions * dim), 256, 0, stream()>>>(dout, ids, acc, positions, vocab, dim,
                                                                         deviceErrors());
  }
  if (!direct) toDtypeKernel<<<gridFor(n), 256, 0, stream()>>>(acc, dtable, n);
}

MCUDA_OP("embedding", embeddingOp);
MCUDA_OP("embeddingGrad", embeddingGradOp);

}  // namespace
}  // namespace mcuda
