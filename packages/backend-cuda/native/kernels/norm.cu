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
// as float. Teams walk rows with a grid stride (one wave of resident blocks) and add their dw/db terms into their own
// rows of shared memory; at the end the block adds its teams' rows in a fixed order into one partial row per block,
// and a second kernel adds the partial rows in a fixed order (deterministic, no atomics).
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

/** v[j] = params[col + j] for j < valid, 0 beyond; one 16-byte shared-memory read when `vector` (cols % 4 == 0). */
__device__ __forceinline__ void paramsAt(const float* params, int col, int valid, bool vector, float (&v)[kNormVec]) {
  if (vector && valid == kNormVec) {
    float4 p = *reinterpret_cast<const float4*>(params + col);
    v[0] = p.x, v[1] = p.y, v[2] = p.z, v[3] = p.w;
    return;
  }
#pragma unroll
  for (int j = 0; j < kNormVec; j++) v[j] = j < valid ? params[col + j] : 0.0f;
}

template <class T, int kTeam, int kChunks, bool kCentered>
__global__ void __launch_bounds__(kNormThreads)
    normForwardTeamKernel(In x, In w, In b, Out y, long long rows, int cols, float eps, bool vector) {
  extern __shared__ __align__(16) float params[];  // w, then b
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
      float out[kNormVec], wv[kNormVec], bv[kNormVec] = {};
      paramsAt(params, col, valid, vector, wv);
      if constexpr (kCentered) paramsAt(params + cols, col, valid, vector, bv);
#pragma unroll
      for (int j = 0; j < kNormVec; j++) out[j] = (v[c][j] - st.mean) * st.rstd * wv[j] + bv[j];
      storePack<T, kNormVec>(y.p, r * cols + col, valid, vector, out);
    }
  }
}

/** sums[col + j] += v[j] for j < valid, in shared memory; one 16-byte access when `vector` (cols % 4 == 0). */
__device__ __forceinline__ void addAt(float* sums, int col, int valid, bool vector, const float (&v)[kNormVec]) {
  if (vector && valid == kNormVec) {
    float4* p = reinterpret_cast<float4*>(sums + col);
    float4 a = *p;
    a.x += v[0], a.y += v[1], a.z += v[2], a.w += v[3];
    *p = a;
    return;
  }
#pragma unroll
  for (int j = 0; j < kNormVec; j++)
    if (j < valid) sums[col + j] += v[j];
}

/** partial[blockIdx.x, c] = Σ_t sums[t, c] over the block's teams in order. */
__device__ __forceinline__ void blockColumnSums(const float* sums, int teams, int cols, float* partial) {
  float* out = partial + static_cast<long long>(blockIdx.x) * cols;
  for (int col = threadIdx.x; col < cols; col += blockDim.x) {
    float total = 0.0f;
    for (int t = 0; t < teams; t++) total += sums[t * cols + col];
    out[col] = total;
  }
}

/** Shared memory of the backward kernel: w, then per team its dw column sums, then (LayerNorm) its db sums. */
template <bool kCentered>
constexpr size_t normBackwardSharedFloats(int teams, long long cols) {
  return static_cast<size_t>(cols) * (1 + teams * (kCentered ? 2 : 1));
}

// The dw/db sums live in shared memory rather than registers, so a thread holds only its slices of x and dy: at
// most 128 registers, two resident blocks.
template <class T, int kTeam, int kChunks, bool kCentered>
__global__ void __launch_bounds__(kNormThreads, 2)
    normBackwardTeamKernel(In dy, In x, In w, Out dx, float* dwPartial, float* dbPartial, long long rows, int cols,
                           float eps, bool vector) {
  constexpr int kTeams = kNormThreads / kTeam;
  extern __shared__ __align__(16) float shared[];
  float* params = shared;
  float* dwSums = shared + cols;
  float* dbSums = dwSums + kTeams * cols;
  for (int i = threadIdx.x; i < kTeams * cols * (kCentered ? 2 : 1); i += kNormThreads) dwSums[i] = 0.0f;
  stageParams(w, In{nullptr, F32}, cols, params);  // ends with a barrier
  int team = threadIdx.x / kTeam;
  RowSlice<kTeam, kChunks> s{static_cast<int>(threadIdx.x % kTeam), cols};
  for (long long r = blockIdx.x * (long long)kTeams + team; r < rows; r += (long long)gridDim.x * kTeams) {
    float xv[kChunks][kNormVec], gv[kChunks][kNormVec];
    loadRow<T>(x.p, r, s, vector, xv);
    loadRow<T>(dy.p, r, s, vector, gv);
    RowStats st = statsOf<kTeam, kChunks, kCentered>(xv, s, eps);
    float sumG = 0.0f, sumGX = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; c++) {
      int col = s.col(c), valid = s.valid(c);
      if (valid == 0) continue;
      float wv[kNormVec], dwv[kNormVec];
      paramsAt(params, col, valid, vector, wv);
#pragma unroll
      for (int j = 0; j < kNormVec; j++) {
        float xHat = (xv[c][j] - st.mean) * st.rstd;
        float g = gv[c][j] * wv[j];  // dy is 0 past the row's end
        sumG += g;
        sumGX += g * xHat;
        dwv[j] = gv[c][j] * xHat;
        xv[c][j] = xHat;  // x is no longer needed
      }
      addAt(dwSums + team * cols, col, valid, vector, dwv);
      if constexpr (kCentered) addAt(dbSums + team * cols, col, valid, vector, gv[c]);
#pragma unroll
      for (int j = 0; j < kNormVec; j++) gv[c][j] *= wv[j];
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
  __syncthreads();
  blockColumnSums(dwSums, kTeams, cols, dwPartial);
  if constexpr (kCentered) blockColumnSums(dbSums, kTeams, cols, dbPartial);
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

/** out[c] = the column sum c of the partial rows. */
struct ColumnStore {
  Out out;
  __device__ __forceinline__ void operator()(long long c, double sum) const { out.set(c, static_cast<float>(sum)); }
};

// ---- host side ----

unsigned anyBlocks(long long rows) {
  long long cap = static_cast<long long>(multiprocessors()) * 8;
  return static_cast<unsigned>(rows < 1 ? 1 : (rows < cap ? rows : cap));
}

/** Dynamic shared memory a kernel may take without opting in (48 KiB, less the static blockSum buffer). */
constexpr size_t kDefaultSharedBytes = 48 * 1024 - 256;

/** Blocks for a grid-stride launch of kKernel over `rows` rows, `teams` rows at a time: enough to fill the device
 *  once (the occupancy query is cached per kernel and shared-memory size). */
template <auto kKernel>
unsigned teamBlocks(size_t sharedBytes, long long rows, int teams) {
  static size_t cachedBytes = ~size_t{0}, allowedBytes = 0;
  static int resident = 1;
  if (sharedBytes > allowedBytes && sharedBytes > kDefaultSharedBytes) {
    check(cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sharedBytes)),
          "norm shared memory size");
    allowedBytes = sharedBytes;
  }
  if (sharedBytes != cachedBytes) {
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kKernel, kNormThreads, sharedBytes), "norm occupancy");
    if (resident < 1) resident = 1;
    cachedBytes = sharedBytes;
  }
  long long needed = (rows + teams - 1) / teams;
  long long cap = static_cast<long long>(multiprocessors()) * resident;
  return static_cast<unsigned>(needed < cap ? needed : cap);
}

/** Calls f(kTeam, kChunks) for the smallest team that holds a row of cols; false when rows are too wide for any. */
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
    size_t bytes = sizeof(float) * normBackwardSharedFloats<kCentered>(kTeams, cols);
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
  dim3 sumBlocks(blocksFor(cols, 32)), sumThreads(32, kSumRowGroups);
  sumRowsKernel<<<sumBlocks, sumThreads, 0, stream()>>>(dwPartial->as<float>(), static_cast<int>(parts), cols, ColumnStore{dw});
  if (centered) {
    sumRowsKernel<<<sumBlocks, sumThreads, 0, stream()>>>(dbPartial->as<float>(), static_cast<int>(parts), cols, ColumnStore{db});
  }
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
