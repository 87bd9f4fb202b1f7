// RMSNorm and LayerNorm over the last axis of a (rows, cols) matrix, forward and backward; statistics in float.
//
//   RMSNorm:   rstd = 1/sqrt(mean(x²) + eps),         y = x·rstd·w
//   LayerNorm: rstd = 1/sqrt(mean((x − μ)²) + eps),   y = (x − μ)·rstd·w + b
//   backward, x̂ the normalised row, ĝ = dy·w:
//   RMSNorm:   dx = rstd·(ĝ − x̂·mean(ĝ·x̂))            LayerNorm: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))
//   dw = Σ_rows dy·x̂, db = Σ_rows dy: each block sums its rows into its own partial row, a second kernel adds the
//   partial rows up (deterministic, no atomics).
#include "device.cuh"

namespace mcuda {
namespace {

constexpr int kThreads = 256;

struct RowStats {
  float mean;
  float rstd;
};

/** Mean (0 for RMSNorm) and rstd of row r. Every thread of the block gets them. */
__device__ RowStats rowStats(In x, long long r, long long cols, float eps, bool centered) {
  float mean = 0.0f;
  if (centered) {
    float s = 0.0f;
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) s += x[r * cols + c];
    mean = blockSum(s) / cols;
  }
  float sq = 0.0f;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
    float d = x[r * cols + c] - mean;
    sq += d * d;
  }
  return RowStats{mean, rsqrtf(blockSum(sq) / cols + eps)};
}

__global__ void normForwardKernel(In x, In w, In b, Out y, long long rows, long long cols, float eps, bool centered) {
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    RowStats s = rowStats(x, r, cols, eps, centered);
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
      float v = (x[r * cols + c] - s.mean) * s.rstd * w[c];
      if (centered) v += b[c];
      y.set(r * cols + c, v);
    }
  }
}

__global__ void normBackwardKernel(In dy, In x, In w, Out dx, float* dwPartial, float* dbPartial, long long rows,
                                   long long cols, float eps, bool centered) {
  float* dwRow = dwPartial + blockIdx.x * cols;
  float* dbRow = centered ? dbPartial + blockIdx.x * cols : nullptr;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
    dwRow[c] = 0.0f;
    if (dbRow) dbRow[c] = 0.0f;
  }
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    RowStats s = rowStats(x, r, cols, eps, centered);
    float sumG = 0.0f, sumGX = 0.0f;
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
      float xHat = (x[r * cols + c] - s.mean) * s.rstd;
      float g = dy[r * cols + c] * w[c];
      sumG += g;
      sumGX += g * xHat;
    }
    float meanG = centered ? blockSum(sumG) / cols : 0.0f;
    float meanGX = blockSum(sumGX) / cols;
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
      float d = dy[r * cols + c];
      float xHat = (x[r * cols + c] - s.mean) * s.rstd;
      dx.set(r * cols + c, s.rstd * (d * w[c] - meanG - xHat * meanGX));
      dwRow[c] += d * xHat;
      if (dbRow) dbRow[c] += d;
    }
  }
}

/** out[c] = Σ_p partial[p, c] */
__global__ void sumPartialRowsKernel(const float* partial, int parts, long long cols, Out out) {
  for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < cols; c += (long long)gridDim.x * blockDim.x) {
    double acc = 0.0;
    for (int p = 0; p < parts; p++) acc += partial[p * cols + c];
    out.set(c, static_cast<float>(acc));
  }
}

unsigned normBlocks(long long rows) {
  long long cap = static_cast<long long>(multiprocessors()) * 8;
  return static_cast<unsigned>(rows < 1 ? 1 : (rows < cap ? rows : cap));
}

/** x, w, [b], y, rows, cols, eps */
void normForward(Args& a, bool centered) {
  In x = readIn(a), w = readIn(a);
  In b = centered ? readIn(a) : In{nullptr, F32};
  Out y = readOut(a);
  long long rows = a.i64(), cols = a.i64();
  float eps = a.f32();
  if (rows == 0 || cols == 0) return;
  normForwardKernel<<<normBlocks(rows), kThreads, 0, stream()>>>(x, w, b, y, rows, cols, eps, centered);
}

/** dy, x, w, dx, dw, [db], rows, cols, eps */
void normBackward(Args& a, bool centered) {
  In dy = readIn(a), x = readIn(a), w = readIn(a);
  Out dx = readOut(a), dw = readOut(a);
  Out db = centered ? readOut(a) : Out{nullptr, F32};
  long long rows = a.i64(), cols = a.i64();
  float eps = a.f32();
  if (cols == 0) return;
  if (rows == 0) {
    zeroFill(dw.p, cols * bytesOf(dw.dtype));
    if (centered) zeroFill(db.p, cols * bytesOf(db.dtype));
    return;
  }
  unsigned blocks = normBlocks(rows);
  Scratch dwPartial(sizeof(float) * blocks * cols);
  Scratch dbPartial(centered ? sizeof(float) * blocks * cols : 0);
  normBackwardKernel<<<blocks, kThreads, 0, stream()>>>(dy, x, w, dx, dwPartial.as<float>(), dbPartial.as<float>(),
                                                       rows, cols, eps, centered);
  unsigned colBlocks = blocksFor(cols, kThreads);
  sumPartialRowsKernel<<<colBlocks, kThreads, 0, stream()>>>(dwPartial.as<float>(), blocks, cols, dw);
  if (centered) sumPartialRowsKernel<<<colBlocks, kThreads, 0, stream()>>>(dbPartial.as<float>(), blocks, cols, db);
}

void rmsNormOp(Args& a) { normForward(a, false); }
void rmsNormGradOp(Args& a) { normBackward(a, false); }
void layerNormOp(Args& a) { normForward(a, true); }
void layerNormGradOp(Args& a) { normBackward(a, true); }

MCUDA_OP("rmsNorm", rmsNormOp);
MCUDA_OP("rmsNormGrad", rmsNormGradOp);
MCUDA_OP("layerNorm", layerNormOp);
MCUDA_OP("layerNormGrad", layerNormGradOp);

}  // namespace
}  // namespace mcuda
