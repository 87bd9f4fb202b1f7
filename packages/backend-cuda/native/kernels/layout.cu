// Data movement without arithmetic: strided gather (slice, transpose), strided scatter into zeros (padSlice),
// concat. Elements are moved as raw 2- or 4-byte words, so every dtype goes through the same kernels.
#include "device.cuh"

namespace mcuda {
namespace {

constexpr int kMaxRank = 8;

/** The shape walked in row-major order and, per axis, the stride of the other side's buffer. */
struct Walk {
  int rank;
  long long shape[kMaxRank];
  long long stride[kMaxRank];
  long long base;
};

__device__ __forceinline__ long long offsetOf(const Walk& w, long long i) {
  long long off = w.base, rest = i;
  for (int d = w.rank - 1; d >= 0; d--) {
    off += (rest % w.shape[d]) * w.stride[d];
    rest /= w.shape[d];
  }
  return off;
}

/** dst[i] = src[offset(i)] */
template <class Word>
__global__ void gatherKernel(const Word* src, Word* dst, long long n, Walk w) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    dst[i] = src[offsetOf(w, i)];
  }
}

/** dst[offset(i)] = src[i] */
template <class Word>
__global__ void scatterKernel(const Word* src, Word* dst, long long n, Walk w) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    dst[offsetOf(w, i)] = src[i];
  }
}

Walk readWalk(Args& a) {
  Walk w{};
  w.rank = a.i32();
  if (w.rank > kMaxRank) throw Failure("layout op: at most 8 axes are supported, got " + std::to_string(w.rank));
  for (int d = 0; d < w.rank; d++) {
    w.shape[d] = a.i64();
    w.stride[d] = a.i64();
  }
  w.base = a.i64();
  return w;
}

void launchWalk(const void* src, void* dst, int elementBytes, long long n, const Walk& w,
                void (*k2)(const uint16_t*, uint16_t*, long long, Walk),
                void (*k4)(const uint32_t*, uint32_t*, long long, Walk)) {
  unsigned blocks = blocksFor(n, 256);
  unsigned cap = multiprocessors() * 16;
  if (blocks > cap) blocks = cap;
  if (elementBytes == 2) k2<<<blocks, 256, 0, stream()>>>(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), n, w);
  else k4<<<blocks, 256, 0, stream()>>>(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), n, w);
}

/** src, dst, dtype, n (elements of dst), walk: rank, (size, srcStride) per axis, base */
void gatherOp(Args& a) {
  const void* src = a.ptr();
  void* dst = a.ptr();
  int dtype = a.dtype();
  long long n = a.i64();
  Walk w = readWalk(a);
  if (n == 0) return;
  launchWalk(src, dst, bytesOf(dtype), n, w, gatherKernel<uint16_t>, gatherKernel<uint32_t>);
}

/** src, dst, dtype, n (elements of src), dstElements, walk: rank, (size, dstStride) per axis, base.
 *  dst is zero-filled first. */
void padSliceOp(Args& a) {
  const void* src = a.ptr();
  void* dst = a.ptr();
  int dtype = a.dtype();
  long long n = a.i64();
  long long dstElements = a.i64();
  Walk w = readWalk(a);
  zeroFill(dst, dstElements * bytesOf(dtype));
  if (n == 0) return;
  launchWalk(src, dst, bytesOf(dtype), n, w, scatterKernel<uint16_t>, scatterKernel<uint32_t>);
}

/** dst, dtype, outer, dstRow (elements per outer row of dst), parts, then per part: src, width (elements per
 *  outer row), column (offset in the dst row) */
void concatOp(Args& a) {
  char* dst = a.as<char>();
  int bytes = bytesOf(a.dtype());
  long long outer = a.i64();
  long long dstRow = a.i64();
  int parts = a.i32();
  for (int p = 0; p < parts; p++) {
    const char* src = a.as<const char>();
    long long width = a.i64();
    long long column = a.i64();
    if (outer == 0 || width == 0) continue;
    check(cudaMemcpy2DAsync(dst + column * bytes, dstRow * bytes, src, width * bytes, width * bytes, outer,
                            cudaMemcpyDeviceToDevice, stream()),
          "concat copy");
  }
}

MCUDA_OP("gather", gatherOp);
MCUDA_OP("padSlice", padSliceOp);
MCUDA_OP("concat", concatOp);

}  // namespace
}  // namespace mcuda
