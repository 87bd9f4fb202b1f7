// Data movement without arithmetic: strided gather (slice, transpose), strided scatter into zeros (padSlice),
// concat. Elements are moved as raw words, so every dtype goes through the same kernels.
//
// Each op first simplifies its walk (unit axes dropped, axes merged where one continues the other). The shapes the
// engine produces most (a column block of a row-major matrix: split along the last axis, its padSlice gradient,
// concat; the last-two-axes transpose) then take fast kernels that move 16/8/4/2-byte words with 32-bit index math
// (row blocks) or go through shared-memory tiles (transposes); anything else walks element by element.
#include <initializer_list>

#include "device.cuh"

namespace mcuda {
namespace {

constexpr int kMaxRank = 8;
constexpr int kThreads = 256;
/** Fast kernels index words with 32 bits; buffers beyond this many words take the element-wise walk. */
constexpr long long kMaxWords = (1LL << 31) - 1;

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

/** The same walk with size-1 axes dropped and each axis merged into the next one when its stride continues it
 *  (stride[d] == shape[d+1] · stride[d+1]); the contiguous side is row-major either way, so offsets are unchanged. */
Walk simplified(const Walk& w) {
  Walk s{};
  s.base = w.base;
  long long shape[kMaxRank], stride[kMaxRank];
  int kept = 0;  // built innermost first
  for (int d = w.rank - 1; d >= 0; d--) {
    if (w.shape[d] == 1) continue;
    if (kept > 0 && w.stride[d] == shape[kept - 1] * stride[kept - 1]) {
      shape[kept - 1] *= w.shape[d];
      continue;
    }
    shape[kept] = w.shape[d];
    stride[kept] = w.stride[d];
    kept++;
  }
  s.rank = kept;
  for (int d = 0; d < kept; d++) {
    s.shape[d] = shape[kept - 1 - d];
    s.stride[d] = stride[kept - 1 - d];
  }
  return s;
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

// ---- row blocks: `rows` rows of `width` contiguous elements, `stride` apart on the strided side ----

/** A block of rows in a row-major buffer, in elements: row r spans [base + r·stride, base + r·stride + width). */
struct RowBlock {
  long long rows, width, stride, base;
};

/** The walk as a row block, when its innermost axis is contiguous and at most one axis lies outside it. */
bool asRowBlock(const Walk& s, long long n, RowBlock& block) {
  if (s.rank == 0) block = RowBlock{1, n, n, s.base};
  else if (s.rank == 1 && s.stride[0] == 1) block = RowBlock{1, s.shape[0], s.shape[0], s.base};
  else if (s.rank == 2 && s.stride[1] == 1) block = RowBlock{s.shape[0], s.shape[1], s.stride[0], s.base};
  else return false;
  return block.stride >= 0;
}

/** The widest word (16, 8, 4 bytes, else the element) that divides every byte count and address given. */
int wordBytes(int elementBytes, std::initializer_list<long long> elementCounts, std::initializer_list<const void*> ptrs) {
  for (int word = 16; word > elementBytes; word /= 2) {
    bool fits = true;
    for (long long c : elementCounts) fits = fits && (c * elementBytes) % word == 0;
    for (const void* p : ptrs) fits = fits && reinterpret_cast<uintptr_t>(p) % word == 0;
    if (fits) return word;
  }
  return elementBytes;
}

/** Calls f(Word{}) with the unsigned type of `bytes` bytes (uint4 for 16). */
template <class F>
void withWord(int bytes, F&& f) {
  switch (bytes) {
    case 16: f(uint4{}); break;
    case 8: f(uint2{}); break;
    case 4: f(uint32_t{}); break;
    default: f(uint16_t{}); break;
  }
}

/** In words. dst (rows × width, contiguous) = the rows of src at base + r·stride. */
template <class Word>
__global__ void gatherRowsKernel(const Word* __restrict__ src, Word* __restrict__ dst, unsigned rows, unsigned width,
                                 unsigned stride, unsigned base) {
  unsigned total = rows * width;
  for (unsigned t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
    unsigned r = t / width, c = t - r * width;
    dst[t] = src[base + r * stride + c];
  }
}

/** In words. The rows of dst at base + r·stride = src (rows × width, contiguous); the rest of dst is untouched. */
template <class Word>
__global__ void scatterRowsKernel(const Word* __restrict__ src, Word* __restrict__ dst, unsigned rows, unsigned width,
                                  unsigned stride, unsigned base) {
  unsigned total = rows * width;
  for (unsigned t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
    unsigned r = t / width, c = t - r * width;
    dst[base + r * stride + c] = src[t];
  }
}

/** In words. dst (dstRows × stride) = zeros with src (rows × width) written at row r0, column c0: every word of dst
 *  is written once (no separate zero fill). */
template <class Word>
__global__ void padRowsKernel(const Word* __restrict__ src, Word* __restrict__ dst, unsigned dstRows, unsigned stride,
                              unsigned rows, unsigned width, unsigned r0, unsigned c0) {
  unsigned total = dstRows * stride;
  for (unsigned t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
    unsigned r = t / stride, c = t - r * stride;
    unsigned br = r - r0, bc = c - c0;  // wrap around to huge values above or left of the block
    dst[t] = br < rows && bc < width ? src[br * width + bc] : Word{};
  }
}

/** Copies a row block between a contiguous buffer and the strided side (gather: strided → contiguous); false when
 *  the block does not fit the 32-bit word indices. */
bool copyRows(const void* src, void* dst, int elementBytes, const RowBlock& b, bool gather) {
  long long extent = b.base + (b.rows - 1) * b.stride + b.width;
  int word = wordBytes(elementBytes, {b.width, b.stride, b.base}, {src, dst});
  long long perWord = word / elementBytes;
  if (extent / perWord > kMaxWords || b.rows * b.width / perWord > kMaxWords) return false;
  withWord(word, [&](auto tag) {
    using Word = decltype(tag);
    unsigned rows = static_cast<unsigned>(b.rows), width = static_cast<unsigned>(b.width / perWord);
    unsigned stride = static_cast<unsigned>(b.stride / perWord), base = static_cast<unsigned>(b.base / perWord);
    unsigned blocks = coveringBlocks(static_cast<long long>(rows) * width, kThreads);
    const Word* s = static_cast<const Word*>(src);
    Word* d = static_cast<Word*>(dst);
    if (gather) gatherRowsKernel<Word><<<blocks, kThreads, 0, stream()>>>(s, d, rows, width, stride, base);
    else scatterRowsKernel<Word><<<blocks, kThreads, 0, stream()>>>(s, d, rows, width, stride, base);
  });
  return true;
}

// ---- transposes of the last two axes: out[b][p][q] = src[base + b·batchStride + q·ld + p] ----

struct TransposeShape {
  long long batches, P, Q, ld, batchStride, base;
};

/** The gather walk as out (batches, P, Q) reading src rows of P elements `ld` apart, when it is one. */
bool asTranspose(const Walk& s, TransposeShape& t) {
  int r = s.rank;
  if (r < 2 || r > 3 || s.stride[r - 1] <= 0 || s.stride[r - 2] != 1) return false;
  long long P = s.shape[r - 2], Q = s.shape[r - 1], ld = s.stride[r - 1];
  t = TransposeShape{r == 3 ? s.shape[0] : 1, P, Q, ld, r == 3 ? s.stride[0] : 0, s.base};
  return t.batchStride >= 0 && Q <= 65535LL * 32;
}

constexpr int kTransposeRows = 8;  // threadIdx.y extent; threadIdx.x spans a warp

/** 4-byte elements, 32 × 32 tiles: a warp reads 32 consecutive elements of an input row, writes 32 of an output row. */
__global__ void transpose32Kernel(const uint32_t* __restrict__ src, uint32_t* __restrict__ dst, TransposeShape t) {
  __shared__ uint32_t tile[32][33];  // +1 column: the column reads of the write phase hit 32 different banks
  long long p0 = blockIdx.x * 32LL, q0 = blockIdx.y * 32LL;
  for (long long b = blockIdx.z; b < t.batches; b += gridDim.z) {
    const uint32_t* in = src + t.base + b * t.batchStride;
    uint32_t* out = dst + b * t.P * t.Q;
    long long p = p0 + threadIdx.x;
#pragma unroll
    for (int k = 0; k < 32 / kTransposeRows; k++) {
      int qq = threadIdx.y + k * kTransposeRows;
      long long q = q0 + qq;
      if (q < t.Q && p < t.P) tile[qq][threadIdx.x] = in[q * t.ld + p];
    }
    __syncthreads();
    long long q = q0 + threadIdx.x;
#pragma unroll
    for (int k = 0; k < 32 / kTransposeRows; k++) {
      int pp = threadIdx.y + k * kTransposeRows;
      long long pr = p0 + pp;
      if (pr < t.P && q < t.Q) out[pr * t.Q + q] = tile[threadIdx.x][pp];
    }
    __syncthreads();
  }
}

/** 2-byte elements, 64 × 64 tiles: each thread moves two neighbours, as one 4-byte word where both exist and the
 *  address is aligned (`pairedLoads`/`pairedStores`: even row lengths and offsets), so a warp still moves 128 bytes. */
__global__ void transpose16Kernel(const uint16_t* __restrict__ src, uint16_t* __restrict__ dst, TransposeShape t,
                                  bool pairedLoads, bool pairedStores) {
  __shared__ uint16_t tile[64][65];  // odd row length: the column reads of the write phase spread over the banks
  long long p0 = blockIdx.x * 64LL, q0 = blockIdx.y * 64LL;
  int pair = 2 * threadIdx.x;
  for (long long b = blockIdx.z; b < t.batches; b += gridDim.z) {
    const uint16_t* in = src + t.base + b * t.batchStride;
    uint16_t* out = dst + b * t.P * t.Q;
    long long p = p0 + pair;
#pragma unroll
    for (int k = 0; k < 64 / kTransposeRows; k++) {
      int qq = threadIdx.y + k * kTransposeRows;
      long long q = q0 + qq;
      if (q >= t.Q) continue;
      const uint16_t* row = in + q * t.ld;
      if (pairedLoads && p + 1 < t.P) {
        uint32_t w = *reinterpret_cast<const uint32_t*>(row + p);
        tile[qq][pair] = static_cast<uint16_t>(w);
        tile[qq][pair + 1] = static_cast<uint16_t>(w >> 16);
      } else {
        if (p < t.P) tile[qq][pair] = row[p];
        if (p + 1 < t.P) tile[qq][pair + 1] = row[p + 1];
      }
    }
    __syncthreads();
    long long q = q0 + pair;
#pragma unroll
    for (int k = 0; k < 64 / kTransposeRows; k++) {
      int pp = threadIdx.y + k * kTransposeRows;
      long long pr = p0 + pp;
      if (pr >= t.P) continue;
      uint16_t* row = out + pr * t.Q;
      if (pairedStores && q + 1 < t.Q) {
        *reinterpret_cast<uint32_t*>(row + q) = tile[pair][pp] | (static_cast<uint32_t>(tile[pair + 1][pp]) << 16);
      } else {
        if (q < t.Q) row[q] = tile[pair][pp];
        if (q + 1 < t.Q) row[q + 1] = tile[pair + 1][pp];
      }
    }
    __syncthreads();
  }
}

void launchTranspose(const void* src, void* dst, int elementBytes, const TransposeShape& t) {
  int tileEdge = elementBytes == 2 ? 64 : 32;
  dim3 grid(static_cast<unsigned>((t.P + tileEdge - 1) / tileEdge), static_cast<unsigned>((t.Q + tileEdge - 1) / tileEdge),
            static_cast<unsigned>(t.batches < 65535 ? t.batches : 65535));
  dim3 block(32, kTransposeRows);
  if (elementBytes == 2) {
    auto even = [](long long v) { return v % 2 == 0; };
    bool pairedLoads = even(t.ld) && even(t.base) && even(t.batchStride) && reinterpret_cast<uintptr_t>(src) % 4 == 0;
    bool pairedStores = even(t.Q) && reinterpret_cast<uintptr_t>(dst) % 4 == 0;
    transpose16Kernel<<<grid, block, 0, stream()>>>(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), t,
                                                    pairedLoads, pairedStores);
  } else {
    transpose32Kernel<<<grid, block, 0, stream()>>>(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), t);
  }
}

// ---- ops: argument order is the contract with src/kernels/basic.ts ----

/** src, dst, dtype, n (elements of dst), walk: rank, (size, srcStride) per axis, base */
void gatherOp(Args& a) {
  const void* src = a.ptr();
  void* dst = a.ptr();
  int dtype = a.dtype();
  long long n = a.i64();
  Walk w = readWalk(a);
  if (n == 0) return;
  int bytes = bytesOf(dtype);
  Walk s = simplified(w);
  RowBlock block;
  TransposeShape t;
  if (asRowBlock(s, n, block) && block.rows == 1) {
    check(cudaMemcpyAsync(dst, static_cast<const char*>(src) + block.base * bytes, n * bytes, cudaMemcpyDeviceToDevice,
                          stream()),
          "slice copy");
    return;
  }
  if (asRowBlock(s, n, block) && copyRows(src, dst, bytes, block, true)) return;
  if (asTranspose(s, t)) {
    launchTranspose(src, dst, bytes, t);
    return;
  }
  launchWalk(src, dst, bytes, n, w, gatherKernel<uint16_t>, gatherKernel<uint32_t>);
}

/** dst (dstElements) = zeros with the row block of src written in, each word once; false when it is not one. */
bool padRows(const void* src, void* dst, int elementBytes, long long n, long long dstElements, const Walk& s) {
  RowBlock b;
  if (!asRowBlock(s, n, b)) return false;
  if (b.rows == 1) b.stride = dstElements;  // one contiguous run: dst as a single row
  if (b.stride <= 0 || dstElements % b.stride != 0) return false;
  long long r0 = b.base / b.stride, c0 = b.base % b.stride, dstRows = dstElements / b.stride;
  if (c0 + b.width > b.stride || r0 + b.rows > dstRows) return false;
  int word = wordBytes(elementBytes, {b.width, b.stride, c0}, {src, dst});
  long long perWord = word / elementBytes;
  if (dstElements / perWord > kMaxWords) return false;
  withWord(word, [&](auto tag) {
    using Word = decltype(tag);
    unsigned stride = static_cast<unsigned>(b.stride / perWord);
    unsigned blocks = coveringBlocks(dstElements / perWord, kThreads);
    padRowsKernel<Word><<<blocks, kThreads, 0, stream()>>>(
        static_cast<const Word*>(src), static_cast<Word*>(dst), static_cast<unsigned>(dstRows), stride,
        static_cast<unsigned>(b.rows), static_cast<unsigned>(b.width / perWord), static_cast<unsigned>(r0),
        static_cast<unsigned>(c0 / perWord));
  });
  return true;
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
  int bytes = bytesOf(dtype);
  if (n > 0 && padRows(src, dst, bytes, n, dstElements, simplified(w))) return;
  zeroFill(dst, dstElements * bytes);
  if (n == 0) return;
  launchWalk(src, dst, bytes, n, w, scatterKernel<uint16_t>, scatterKernel<uint32_t>);
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
    if (copyRows(src, dst, bytes, RowBlock{outer, width, dstRow, column}, false)) continue;
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
