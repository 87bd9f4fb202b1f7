// Reductions over a contiguous run of axes, seen as (outer, reduced, inner): sum, max, min; argmax and softmax
// over the last axis. Sums accumulate in double (the cpu reference does too).
#include <algorithm>

#include "device.cuh"

namespace mcuda {
namespace {

enum ReduceKind { kSum = 0, kMax = 1, kMin = 2 };

/** max/min that keep a NaN once seen, as the cpu reference (a NaN value always replaces the accumulator). */
__device__ __forceinline__ double combine(int kind, double acc, double v) {
  if (kind == kSum) return acc + v;
  if (isnan(acc)) return acc;
  if (isnan(v)) return v;
  return kind == kMax ? (v > acc ? v : acc) : (v < acc ? v : acc);
}

__device__ __forceinline__ double identity(int kind) {
  return kind == kSum ? 0.0 : (kind == kMax ? -INFINITY : INFINITY);
}

__device__ double blockCombine(int kind, double v) {
  __shared__ double partial[32];
  __syncthreads();
  for (int o = 16; o > 0; o >>= 1) v = combine(kind, v, __shfl_xor_sync(0xffffffffu, v, o));
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  double total = identity(kind);
  for (int w = 0; w < (int)(blockDim.x >> 5); w++) total = combine(kind, total, partial[w]);
  return total;
}

/** inner == 1: one block per output row, threads stride over the reduced run. */
__global__ void reduceRowsKernel(int kind, In x, Out y, long long outer, long long red) {
  for (long long o = blockIdx.x; o < outer; o += gridDim.x) {
    double acc = identity(kind);
    for (long long r = threadIdx.x; r < red; r += blockDim.x) acc = combine(kind, acc, x[o * red + r]);
    acc = blockCombine(kind, acc);
    if (threadIdx.x == 0) y.set(o, static_cast<float>(acc));
  }
}

/** inner > 1: one thread per output element, reading down the reduced axis (coalesced across inner). */
__global__ void reduceColumnsKernel(int kind, In x, Out y, long long outer, long long red, long long inner) {
  long long total = outer * inner;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long o = i / inner, in = i % inner;
    double acc = identity(kind);
    for (long long r = 0; r < red; r++) acc = combine(kind, acc, x[(o * red + r) * inner + in]);
    y.set(i, static_cast<float>(acc));
  }
}

/** Few long rows: block (o, p) reduces part p of row o into partial[o·parts + p] (stage 1 of 2). */
__global__ void reduceRowPartsKernel(int kind, In x, double* partial, long long red, long long parts) {
  long long o = blockIdx.y, part = blockIdx.x;
  long long span = (red + parts - 1) / parts;
  long long r0 = part * span, r1 = min(red, r0 + span);
  double acc = identity(kind);
  for (long long r = r0 + threadIdx.x; r < r1; r += blockDim.x) acc = combine(kind, acc, x[o * red + r]);
  acc = blockCombine(kind, acc);
  if (threadIdx.x == 0) partial[o * parts + part] = acc;
}

/** Few long columns: thread (slice, o, in) reduces its slice of the reduced axis (stage 1 of 2). */
__global__ void reduceColumnPartsKernel(int kind, In x, double* partial, long long outer, long long red, long long inner,
                                        long long slices) {
  long long total = outer * inner;
  long long slice = blockIdx.y;
  long long span = (red + slices - 1) / slices;
  long long r0 = slice * span, r1 = min(red, r0 + span);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long o = i / inner, in = i % inner;
    double acc = identity(kind);
    for (long long r = r0; r < r1; r++) acc = combine(kind, acc, x[(o * red + r) * inner + in]);
    partial[slice * total + i] = acc;
  }
}

/** Stage 2: out[i] = combine over p of partial[p·stride + i·step], in order (deterministic). */
__global__ void combinePartsKernel(int kind, const double* partial, Out y, long long n, long long parts, long long stride,
                                   long long step) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    double acc = identity(kind);
    for (long long p = 0; p < parts; p++) acc = combine(kind, acc, partial[p * stride + i * step]);
    y.set(i, static_cast<float>(acc));
  }
}

/** Where argmaxKernel leaves one (value, index) per part of a row, for argmaxPartsKernel; null pointers when a row is
 *  one part. */
struct ArgmaxParts {
  float* values;
  long long* indices;
};

/** First index of the largest value in columns [part·span, (part + 1)·span) of each row (ties keep the lower index):
 *  block (row, part), rows with a grid stride. One part: the row's answer goes to out; else to parts (row, part). */
__global__ void argmaxKernel(In x, int* out, ArgmaxParts parts, long long rows, long long cols, long long span) {
  __shared__ float bestValues[32];
  __shared__ long long bestIndices[32];
  waitForPrevious();
  startNext();
  const long long c1 = min(cols, (blockIdx.y + 1) * span);
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    float best = -INFINITY;
    long long bestIndex = -1;
    // Four independent loads in flight per thread; each thread still visits its columns in increasing order.
    for (long long c0 = blockIdx.y * span + threadIdx.x; c0 < c1; c0 += 4LL * blockDim.x) {
      float v[4];
#pragma unroll
      for (int u = 0; u < 4; u++) {
        long long c = c0 + u * (long long)blockDim.x;
        v[u] = c < c1 ? x[r * cols + c] : 0.0f;
      }
#pragma unroll
      for (int u = 0; u < 4; u++) {
        long long c = c0 + u * (long long)blockDim.x;
        if (c < c1 && (bestIndex < 0 || v[u] > best)) {
          best = v[u];
          bestIndex = c;
        }
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, best, o);
      long long oi = __shfl_xor_sync(0xffffffffu, bestIndex, o);
      bool takeOther = oi >= 0 && (bestIndex < 0 || ov > best || (ov == best && oi < bestIndex));
      if (takeOther) {
        best = ov;
        bestIndex = oi;
      }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) {
      bestValues[warp] = best;
      bestIndices[warp] = bestIndex;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 0; w < (int)(blockDim.x >> 5); w++) {
        long long oi = bestIndices[w];
        float ov = bestValues[w];
        if (oi >= 0 && (bestIndex < 0 || ov > best || (ov == best && oi < bestIndex))) {
          best = ov;
          bestIndex = oi;
        }
      }
      if (parts.values) {
        parts.values[r * gridDim.y + blockIdx.y] = best;
        parts.indices[r * gridDim.y + blockIdx.y] = bestIndex;
      } else {
        out[r] = static_cast<int>(bestIndex < 0 ? 0 : bestIndex);
      }
    }
  }
}

/** out[r] = the index of the best of row r's parts, taken in column order (ties keep the lower index). */
__global__ void argmaxPartsKernel(ArgmaxParts parts, int* out, long long rows, int count) {
  waitForPrevious();
  startNext();
  for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < rows; r += (long long)gridDim.x * blockDim.x) {
    float best = -INFINITY;
    long long bestIndex = -1;
    for (int p = 0; p < count; p++) {
      long long i = parts.indices[r * count + p];
      float v = parts.values[r * count + p];
      if (i >= 0 && (bestIndex < 0 || v > best)) {
        best = v;
        bestIndex = i;
      }
    }
    out[r] = static_cast<int>(bestIndex < 0 ? 0 : bestIndex);
  }
}

__global__ void softmaxKernel(In x, Out y, long long rows, long long cols) {
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    Lse acc{-INFINITY, 0.0f};
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) acc = lseAbsorb(acc, x[r * cols + c]);
    acc = blockLse(acc);
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
      y.set(r * cols + c, expf(x[r * cols + c] - acc.max) / acc.sum);
    }
  }
}

unsigned rowBlocks(long long rows) {
  long long cap = static_cast<long long>(multiprocessors()) * 32;
  return static_cast<unsigned>(rows < cap ? (rows < 1 ? 1 : rows) : cap);
}

/** kind, x, y, outer, red, inner */
void reduceOp(Args& a) {
  int kind = a.i32();
  In x = readIn(a);
  Out y = readOut(a);
  long long outer = a.i64(), red = a.i64(), inner = a.i64();
  if (outer * inner == 0) return;
  // One block per row (or one thread per column) leaves the GPU idle when there are few long ones (a full sum of a
  // weight gradient is one row): split the reduced axis, then combine the parts in a fixed order.
  const long long sms = multiprocessors();
  constexpr long long kPartLength = 16384;
  if (inner == 1 && outer < 2 * sms && red >= 2 * kPartLength) {
    long long parts = std::min((red + kPartLength - 1) / kPartLength, (4 * sms + outer - 1) / outer);
    parts = std::min(parts, 65535LL);
    Scratch partial(outer * parts * sizeof(double));
    reduceRowPartsKernel<<<dim3(parts, outer), 256, 0, stream()>>>(kind, x, partial.as<double>(), red, parts);
    combinePartsKernel<<<blocksFor(outer, 256), 256, 0, stream()>>>(kind, partial.as<double>(), y, outer, parts, 1, parts);
    return;
  }
  if (inner > 1 && outer * inner < 64 * sms && red >= 64) {
    long long total = outer * inner;
    long long slices = std::min(red / 32, std::max(1LL, (256 * sms) / total));
    slices = std::min(slices, 65535LL);
    if (slices > 1) {
      Scratch partial(slices * total * sizeof(double));
      unsigned blocks = blocksFor(total, 256);
      reduceColumnPartsKernel<<<dim3(blocks, slices), 256, 0, stream()>>>(kind, x, partial.as<double>(), outer, red, inner, slices);
      unsigned combineBlocks = std::min<unsigned>(blocksFor(total, 256), sms * 16);
      combinePartsKernel<<<combineBlocks, 256, 0, stream()>>>(kind, partial.as<double>(), y, total, slices, total, 1);
      return;
    }
  }
  if (inner == 1) {
    reduceRowsKernel<<<rowBlocks(outer), 256, 0, stream()>>>(kind, x, y, outer, red);
  } else {
    long long n = outer * inner;
    unsigned blocks = blocksFor(n, 256);
    unsigned cap = multiprocessors() * 16;
    reduceColumnsKernel<<<blocks < cap ? blocks : cap, 256, 0, stream()>>>(kind, x, y, outer, red, inner);
  }
}

/** x, out (i32), rows, cols */
void argmaxOp(Args& a) {
  In x = readIn(a);
  int* out = a.as<int>();
  long long rows = a.i64(), cols = a.i64();
  if (rows == 0) return;
  // Fewer rows than multiprocessors (greedy decoding: one row of vocabulary logits per sequence): each row is split
  // into parts of at least kArgmaxMinSpan columns, enough to give every multiprocessor two blocks, and a second
  // kernel picks the best part of each row.
  constexpr long long kArgmaxMinSpan = 2048;
  const long long sms = multiprocessors();
  long long count = rows < sms ? std::min({(2 * sms + rows - 1) / rows, (cols + kArgmaxMinSpan - 1) / kArgmaxMinSpan, 64LL}) : 1;
  if (count <= 1) {
    launchDependent(argmaxKernel, rowBlocks(rows), 256, 0, x, out, ArgmaxParts{nullptr, nullptr}, rows, cols, cols);
    return;
  }
  const long long span = (cols + count - 1) / count;
  count = (cols + span - 1) / span;
  Scratch values(rows * count * sizeof(float)), indices(rows * count * sizeof(long long));
  ArgmaxParts parts{values.as<float>(), indices.as<long long>()};
  launchDependent(argmaxKernel, dim3(static_cast<unsigned>(rows), static_cast<unsigned>(count)), 256, 0, x, out, parts,
                  rows, cols, span);
  launchDependent(argmaxPartsKernel, blocksFor(rows, 128), 128, 0, parts, out, rows, static_cast<int>(count));
}

/** x, y, rows, cols */
void softmaxOp(Args& a) {
  In x = readIn(a);
  Out y = readOut(a);
  long long rows = a.i64(), cols = a.i64();
  if (rows == 0 || cols == 0) return;
  softmaxKernel<<<rowBlocks(rows), 256, 0, stream()>>>(x, y, rows, cols);
}

MCUDA_OP("reduce", reduceOp);
MCUDA_OP("argmax", argmaxOp);
MCUDA_OP("softmax", softmaxOp);

}  // namespace
}  // namespace mcuda
