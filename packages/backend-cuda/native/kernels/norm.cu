// RMSNorm and LayerNorm over the last axis of a (rows, cols) matrix, forward and backward; statistics in float.
//
//   RMSNorm:   rstd = 1/sqrt(mean(x²) + eps),         y = x·rstd·w
//   LayerNorm: rstd = 1/sqrt(mean((x − μ)²) + eps),   y = (x − μ)·rstd·w + b
//   backward, x̂ the normalised row, ĝ = dy·w:
//   RMSNorm:   dx = rstd·(ĝ − x̂·mean(ĝ·x̂))            LayerNorm: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))
//   dw = Σ_rows dy·x̂, db = Σ_rows dy.
//
// Fast path (cols ≤ 4096, x/y/dy/dx of one float dtype): a team of threads owns a row — one warp for cols ≤ 1024,
// the whole block above — and holds it in registers (kNormVec-wide accesses), so x and dy are read once and the
// row statistics need no second pass over memory. The weight (and bias) are staged once per block in shared memory
// as float. Teams walk rows with a grid stride and keep their dw/db sums in registers; the teams of a block add theirs
// in shared memory in a fixed order into one partial row per block, and a second kernel adds the partial rows in a
// fixed order (deterministic, no atomics).
//
// Other shapes (wider rows, mixed dtypes) take the block-per-row kernels at the end of the file.
#include <optional>
#include <type_traits>

#include "device.cuh"

namespace mcuda {
namespace {

constexpr int kNormThreads = 256;
/** Elements per access (16 bytes of f32, 8 of halves). */
constexpr int kNormVec = 4;

/** Widest rows of each team size: a warp holds 8 accesses per thread, a block of kNormThreads 4. */
constexpr int kWarpChunks = 8, kBlockChunks = 4;
constexpr int kWarpMaxCols = 32 * kNormVec * kWarpChunks;
constexpr int kBlockMaxCols = kNormThreads * kNormVec * kBlockChunks;

template <int kTeam>
__device__ __forceinline__ float teamSum(float v) {
  if constexpr (kTeam == 32) return warpSum(v);
  else return blockSum(v);
}

/** A team thread's slice of a row: chunk c covers columns [col(c), col(c) + valid(c)). */
template <int kTeam, int kChunks>
struct RowSlice {
  int rank, cols;
  __device__ __forceinline__ int col(int c) const { return (c * kTeam + rank) * kNormVec; }
  __device__ __forceinline__ int valid(int c) const {
    int left = cols - col(c);
    return left <= 0 ? 0 : left < kNormVec ? left : kNormVec;
  }
};

template <class T, int kTeam, int kChunks>
__device__ __forceinline__ void loadRow(const void* src, long long row, const RowSlice<kTeam, kChunks>& s, bool vector,
                                        float (&v)[kChunks][kNormVec]) {
#pragma unroll
  for (int c = 0; c < kChunks; c++) loadPack<T, kNormVec>(src, row * s.cols + s.col(c), s.valid(c), vector, v[c]);
}

struct RowStats {
  float mean;
  float rstd;
};

/** Mean (0 for RMSNorm) and rstd of the row held by the team; elements past the row's end are 0 in v. */
template <int kTeam, int kChunks, bool kCentered>
__device__ __forceinline__ RowStats statsOf(const float (&v)[kChunks][kNormVec], const RowSlice<kTeam, kChunks>& s,
                                            float eps) {
  float mean = 0.0f;
  if constexpr (kCentered) {
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; c++) {
#pragma unroll
      for (int j = 0; j < kNormVec; j++) sum += v[c][j];
    }
    mean = teamSum<kTeam>(sum) / s.cols;
  }
  float sq = 0.0f;
#pragma unroll
  for (int c = 0; c < kChunks; c++) {
    int valid = s.valid(c);
#pragma unroll
    for (int j = 0; j < kNormVec; j++) {
      float d = j < valid ? v[c][j] - mean : 0.0f;
      sq += d * d;
    }
  }
  return RowStats{mean, rsqrtf(teamSum<kTeam>(sq) / s.cols + eps)};
}

/** params[c] = w[c], and params[cols + c] = b[c] when b is given: the per-column parameters as float. */
__device__ __forceinline__ void stageParams(In w, In b, int cols, float* params) {
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    params[c] = w[c];
    if (b.present()) params[cols + c] = b[c];
  }
  __syncthreads();
}

template <class T, int kTeam, int kChunks, bool kCentered>
__global__ void __launch_bounds__(kNormThreads)
    normForwardTeamKernel(In x, In w, In b, Out y, long long rows, int cols, float eps, bool vector) {
  extern __shared__ float params[];  // w, then b
  stageParams(w, kCentered ? b : In{nullptr, F32}, cols, params);
  constexpr int kTeams = kNormThreads / kTeam;
  RowSlice<kTeam, kChunks> s{static_cast<int>(threadIdx.x % kTeam), cols};
  for (long long r = blockIdx.x * (long long)kTeams + threadIdx.x / kTeam; r < rows; r += (long long)gridDim.x * kTeams) {
    float v[kChunks][kNormVec];
    loadRow<T>(x.p, r, s, vector, v);
    RowStats st = statsOf<kTeam, kChunks, kCentered>(v, s, eps);
#pragma unroll
    for (int c = 0; c < kChunks; c++) {
      int col = s.col(c), valid = s.valid(c);
      if (valid == 0) continue;
      float out[kNormVec];
#pragma unroll
      for (int j = 0; j < kNormVec; j++) {
        int k = j < valid ? col + j : col;  // keeps the shared-memory reads in range
        out[j] = (v[c][j] - st.mean) * st.rstd * params[k];
        if constexpr (kCentered) out[j] += params[cols + k];
      }
      storePack<T, kNormVec>(y.p, r * cols + col, valid, vector, out);
    }
  }
}

/**
 * Adds the teams' per-column sums of the block in team order into partial[blockIdx.x, :]. Every thread of the block
 * calls it; `scratch` holds kTeams rows of cols floats when there is more than one team.
 */
template <int kTeam, int kChunks>
__device__ __forceinline__ void blockColumnSums(const float (&sums)[kChunks][kNormVec], const RowSlice<kTeam, kChunks>& s,
                                                float* scratch, float* partial) {
  constexpr int kTeams = kNormThreads / kTeam;
  float* out = partial + static_cast<long long>(blockIdx.x) * s.cols;
  float* mine = kTeams == 1 ? out : scratch + (threadIdx.x / kTeam) * s.cols;
#pragma unroll
  for (int c = 0; c < kChunks; c++) {
#pragma unroll
    for (int j = 0; j < kNormVec; j++)
      if (j < s.valid(c)) mine[s.col(c) + j] = sums[c][j];
  }
  if constexpr (kTeams > 1) {
    __syncthreads();
    for (int col = threadIdx.x; col < s.cols; col += kNormThreads) {
      float total = 0.0f;
      for (int t = 0; t < kTeams; t++) total += scratch[t * s.cols + col];
      out[col] = total;
    }
    __syncthreads();  // scratch is reused by the next call
  }
}

template <class T, int kTeam, int kChunks, bool kCentered>
__global__ void __launch_bounds__(kNormThreads)
    normBackwardTeamKernel(In dy, In x, In w, Out dx, float* dwPartial, float* dbPartial, long long rows, int cols,
                           float eps, bool vector) {
  extern __shared__ float shared[];  // w (cols), then the teams' column sums (kTeams · cols) when kTeams > 1
  float* params = shared;
  stageParams(w, In{nullptr, F32}, cols, params);
  constexpr int kTeams = kNormThreads / kTeam;
  RowSlice<kTeam, kChunks> s{static_cast<int>(threadIdx.x % kTeam), cols};
  float dw[kChunks][kNormVec] = {}, db[kChunks][kNormVec] = {};
  for (long long r = blockIdx.x * (long long)kTeams + threadIdx.x / kTeam; r < rows; r += (long long)gridDim.x * kTeams) {
    float xv[kChunks][kNormVec], gv[kChunks][kNormVec];
    loadRow<T>(x.p, r, s, vector, xv);
    loadRow<T>(dy.p, r, s, vector, gv);
    RowStats st = statsOf<kTeam, kChunks, kCentered>(xv, s, eps);
    float sumG = 0.0f, sumGX = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; c++) {
      int col = s.col(c), valid = s.valid(c);
#pragma unroll
      for (int j = 0; j < kNormVec; j++) {
        float wj = j < valid ? params[col + j] : 0.0f;
        float xHat = (xv[c][j] - st.mean) * st.rstd;
        float g = gv[c][j] * wj;  // dy is 0 past the row's end
        sumG += g;
        sumGX += g * xHat;
        dw[c][j] += gv[c][j] * xHat;
        if constexpr (kCentered) db[c][j] += gv[c][j];
        xv[c][j] = xHat;  // x is no longer needed
        gv[c][j] = g;
      }
    }
    float meanG = kCentered ? teamSum<kTeam>(sumG) / cols : 0.0f;
    float meanGX = teamSum<kTeam>(sumGX) / cols;
#pragma unroll
    for (int c = 0; c < kChunks; c++) {
      float out[kNormVec];
#pragma unroll
      for (int j = 0; j < kNormVec; j++) out[j] = st.rstd * (gv[c][j] - meanG - xv[c][j] * meanGX);
      storePack<T, kNormVec>(dx.p, r * cols + s.col(c), s.valid(c), vector, out);
    }
  }
  float* scratch = shared + cols;
  blockColumnSums(dw, s, scratch, dwPartial);
  if constexpr (kCentered) blockColumnSums(db, s, scratch, dbPartial);
}

// ---- any width, any dtypes: a block per row ----

/** Mean (0 for RMSNorm) and rstd of row r. Every thread of the block gets them. */
__device__ RowStats rowStatsAny(In x, long long r, long long cols, float eps, bool centered) {
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

__global__ void normForwardAnyKernel(In x, In w, In b, Out y, long long rows, long long cols, float eps, bool centered) {
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    RowStats s = rowStatsAny(x, r, cols, eps, centered);
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
      float v = (x[r * cols + c] - s.mean) * s.rstd * w[c];
      if (centered) v += b[c];
      y.set(r * cols + c, v);
    }
  }
}

__global__ void normBackwardAnyKernel(In dy, In x, In w, Out dx, float* dwPartial, float* dbPartial, long long rows,
                                      long long cols, float eps, bool centered) {
  float* dwRow = dwPartial + blockIdx.x * cols;
  float* dbRow = centered ? dbPartial + blockIdx.x * cols : nullptr;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
    dwRow[c] = 0.0f;
    if (dbRow) dbRow[c] = 0.0f;
  }
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    RowStats s = rowStatsAny(x, r, cols, eps, centered);
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

/** out[c] = Σ_p partial[p, c], p in order. */
__global__ void sumPartialRowsKernel(const float* partial, int parts, long long cols, Out out) {
  for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < cols; c += (long long)gridDim.x * blockDim.x) {
    double acc = 0.0;
    for (int p = 0; p < parts; p++) acc += partial[p * cols + c];
    out.set(c, static_cast<float>(acc));
  }
}

// ---- host side ----

unsigned anyBlocks(long long rows) {
  long long cap = static_cast<long long>(multiprocessors()) * 8;
  return static_cast<unsigned>(rows < 1 ? 1 : (rows < cap ? rows : cap));
}

/** Blocks for a grid-stride launch of kKernel over `rows` rows, `teams` rows at a time: enough to fill the device
 *  once (the occupancy query is cached per kernel and shared-memory size). */
template <auto kKernel>
unsigned teamBlocks(size_t sharedBytes, long long rows, int teams) {
  static size_t cachedBytes = ~size_t{0};
  static int resident = 1;
  if (sharedBytes != cachedBytes) {
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kKernel, kNormThreads, sharedBytes), "norm occupancy");
    if (resident < 1) resident = 1;
    cachedBytes = sharedBytes;
  }
  long long needed = (rows + teams - 1) / teams;
  long long cap = static_cast<long long>(multiprocessors()) * resident;
  return static_cast<unsigned>(needed < cap ? needed : cap);
}

/** kTeam-wide teams when cols fit them, in the dtype T of x; false when no team kernel takes the shape. */
template <class F>
bool withTeamShape(long long cols, F&& f) {
  if (cols <= kWarpMaxCols) {
    f(std::integral_constant<int, 32>{}, std::integral_constant<int, kWarpChunks>{});
    return true;
  }
  if (cols <= kBlockMaxCols) {
    f(std::integral_constant<int, kNormThreads>{}, std::integral_constant<int, kBlockChunks>{});
    return true;
  }
  return false;
}

template <class T, bool kCentered>
bool normForwardTeams(In x, In w, In b, Out y, long long rows, long long cols, float eps) {
  if (y.dtype != x.dtype) return false;
  return withTeamShape(cols, [&](auto team, auto chunks) {
    constexpr int kTeam = decltype(team)::value, kChunks = decltype(chunks)::value;
    constexpr auto kernel = normForwardTeamKernel<T, kTeam, kChunks, kCentered>;
    bool vector = cols % kNormVec == 0 && packAligned<T, kNormVec>(x.p) && packAligned<T, kNormVec>(y.p);
    size_t bytes = sizeof(float) * cols * (kCentered ? 2 : 1);
    unsigned blocks = teamBlocks<kernel>(bytes, rows, kNormThreads / kTeam);
    kernel<<<blocks, kNormThreads, bytes, stream()>>>(x, w, b, y, rows, static_cast<int>(cols), eps, vector);
  });
}

/** x, w, [b], y, rows, cols, eps */
void normForward(Args& a, bool centered) {
  In x = readIn(a), w = readIn(a);
  In b = centered ? readIn(a) : In{nullptr, F32};
  Out y = readOut(a);
  long long rows = a.i64(), cols = a.i64();
  float eps = a.f32();
  if (rows == 0 || cols == 0) return;
  bool launched = false;
  withFloatType(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    launched = centered ? normForwardTeams<T, true>(x, w, b, y, rows, cols, eps)
                        : normForwardTeams<T, false>(x, w, b, y, rows, cols, eps);
  });
  if (!launched) normForwardAnyKernel<<<anyBlocks(rows), kNormThreads, 0, stream()>>>(x, w, b, y, rows, cols, eps, centered);
}

/** Launches the team kernel into per-block partial rows; returns their count, or 0 when no team kernel fits. */
template <class T, bool kCentered>
unsigned normBackwardTeams(In dy, In x, In w, Out dx, std::optional<Scratch>& dwPartial,
                           std::optional<Scratch>& dbPartial, long long rows, long long cols, float eps) {
  if (dy.dtype != x.dtype || dx.dtype != x.dtype) return 0;
  unsigned blocks = 0;
  withTeamShape(cols, [&](auto team, auto chunks) {
    constexpr int kTeam = decltype(team)::value, kChunks = decltype(chunks)::value;
    constexpr int kTeams = kNormThreads / kTeam;
    constexpr auto kernel = normBackwardTeamKernel<T, kTeam, kChunks, kCentered>;
    bool vector = cols % kNormVec == 0 && packAligned<T, kNormVec>(x.p) && packAligned<T, kNormVec>(dy.p) &&
                  packAligned<T, kNormVec>(dx.p);
    size_t bytes = sizeof(float) * cols * (kTeams > 1 ? 1 + kTeams : 1);
    blocks = teamBlocks<kernel>(bytes, rows, kTeams);
    dwPartial.emplace(sizeof(float) * blocks * cols);
    if (kCentered) dbPartial.emplace(sizeof(float) * blocks * cols);
    kernel<<<blocks, kNormThreads, bytes, stream()>>>(dy, x, w, dx, dwPartial->as<float>(),
                                                     kCentered ? dbPartial->as<float>() : nullptr, rows,
                                                     static_cast<int>(cols), eps, vector);
  });
  return blocks;
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
  std::optional<Scratch> dwPartial, dbPartial;
  unsigned parts = 0;
  withFloatType(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    parts = centered ? normBackwardTeams<T, true>(dy, x, w, dx, dwPartial, dbPartial, rows, cols, eps)
                     : normBackwardTeams<T, false>(dy, x, w, dx, dwPartial, dbPartial, rows, cols, eps);
  });
  if (parts == 0) {
    parts = anyBlocks(rows);
    dwPartial.emplace(sizeof(float) * parts * cols);
    if (centered) dbPartial.emplace(sizeof(float) * parts * cols);
    normBackwardAnyKernel<<<parts, kNormThreads, 0, stream()>>>(dy, x, w, dx, dwPartial->as<float>(),
                                                                centered ? dbPartial->as<float>() : nullptr, rows, cols,
                                                                eps, centered);
  }
  unsigned colBlocks = blocksFor(cols, kNormThreads);
  sumPartialRowsKernel<<<colBlocks, kNormThreads, 0, stream()>>>(dwPartial->as<float>(), parts, cols, dw);
  if (centered) sumPartialRowsKernel<<<colBlocks, kNormThreads, 0, stream()>>>(dbPartial->as<float>(), parts, cols, db);
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
