// RMSNorm and LayerNorm over the last axis of a (rows, cols) matrix, forward and backward; statistics in float.
//
//   RMSNorm:   rstd = 1/sqrt(mean(x²) + eps),         y = x·rstd·w
//   LayerNorm: rstd = 1/sqrt(mean((x − μ)²) + eps),   y = (x − μ)·rstd·w + b
//   backward, x̂ the normalised row, ĝ = dy·w:
//   RMSNorm:   dx = rstd·(ĝ − x̂·mean(ĝ·x̂))            LayerNorm: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))
//   dw = Σ_rows dy·x̂, db = Σ_rows dy.
//
// Fast path (x/y/dy/dx of one float dtype, 16-byte aligned, cols a multiple of 4 for f32 and of 8 for halves, at
// most 4096 and 8192): a team of threads owns a row and holds it in registers, kChunks (3 or 4) 16-byte accesses
// per thread (4 floats or 8 halves each), so x and dy are read once and the row statistics need no second pass over
// memory. The team is one warp when the row fits (its sums are shuffles only), else 2, 4 or 8 warps whose sums meet
// in shared memory; the host picks the team size and kChunks that leave the fewest columns idle. Teams walk rows
// with a grid stride (one wave of resident blocks) and keep two rows in flight: the next row's loads are issued
// before the current row is computed, and the first row's before the weight (and bias) are staged in shared memory
// as float.
// Backward, teams add their dw/db terms into their own rows of shared memory; at the end the block adds its teams'
// rows in a fixed order into one partial row per block, and a second kernel adds the partial rows in a fixed order
// (deterministic, no atomics).
//
// Other shapes (wider or unaligned rows, odd column counts, mixed dtypes) take the block-per-row kernels at the end
// of the file.
#include <climits>
#include <optional>
#include <type_traits>

#include "device.cuh"

namespace mcuda {
namespace {

constexpr int kNormThreads = 256;
constexpr int kNormWarps = kNormThreads / 32;

/** Elements of T in one 16-byte access. */
template <class T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));

/**
 * Minimum resident blocks of kNormThreads per multiprocessor, which caps the registers. Chosen from ptxas (sm_90):
 * forward 64 registers (LayerNorm in halves 80; halves with 4 chunks spill 8–16 bytes), backward 128 (halves with a
 * RowRing 80–94). With two rows in flight per thread a multiprocessor then has ~100 KB of loads in flight on rows that
 * fill the team (e.g. 768 columns).
 */
template <class T, bool kBackward, bool kCentered>
constexpr int kNormMinBlocks = kBackward ? 2 : (sizeof(T) == 4 || !kCentered ? 4 : 3);

/** kVec<T> elements of T as loaded: 16 bytes in four words, two halves a word (the lower address in the low bits). */
struct Pack16 {
  unsigned w[4];
};

/** One 16-byte load. */
__device__ __forceinline__ Pack16 loadPack16(const void* src) {
  uint4 u = *static_cast<const uint4*>(src);
  return Pack16{{u.x, u.y, u.z, u.w}};
}

/** Element j of a pack as float. */
template <class T>
__device__ __forceinline__ float elementOf(const Pack16& p, int j) {
  if constexpr (std::is_same_v<T, float>) {
    return __uint_as_float(p.w[j]);
  } else {
    unsigned word = p.w[j / 2];
    if constexpr (std::is_same_v<T, __nv_bfloat16>) return __uint_as_float(j % 2 ? word & 0xffff0000u : word << 16);
    else return __half2float(__ushort_as_half(static_cast<unsigned short>(j % 2 ? word >> 16 : word)));
  }
}

/** One 16-byte store of v rounded to T (to nearest even, as storef). */
template <class T>
__device__ __forceinline__ void storePack16(void* dst, const float (&v)[kVec<T>]) {
  unsigned w[4];
#pragma unroll
  for (int q = 0; q < 4; q++) {
    if constexpr (std::is_same_v<T, float>) {
      w[q] = __float_as_uint(v[q]);
    } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * q], v[2 * q + 1]);
      w[q] = *reinterpret_cast<const unsigned*>(&h);
    } else {
      __half2 h = __floats2half2_rn(v[2 * q], v[2 * q + 1]);
      w[q] = *reinterpret_cast<const unsigned*>(&h);
    }
  }
  *static_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
}

/** A thread's share of a row: chunk c holds the kVec<T> columns from col(c), present when col(c) < cols (cols is a
 *  multiple of kVec<T>). With each chunk index a team of `size` threads covers size·kVec<T> consecutive columns. */
template <class T>
struct RowSlice {
  int rank, size, cols;
  __device__ __forceinline__ int col(int c) const { return (c * size + rank) * kVec<T>; }
  __device__ __forceinline__ bool has(int c) const { return col(c) < cols; }
};

/** A thread's chunks of one row of a token tensor, as loaded (chunks past the row's end are zero). */
template <int kChunks>
struct Row {
  Pack16 chunk[kChunks];
};

template <class T, int kChunks>
__device__ __forceinline__ void loadRow(const void* src, long long row, const RowSlice<T>& s, Row<kChunks>& v) {
  const T* p = static_cast<const T*>(src) + row * s.cols;
#pragma unroll
  for (int c = 0; c < kChunks; c++) v.chunk[c] = s.has(c) ? loadPack16(p + s.col(c)) : Pack16{{0, 0, 0, 0}};
}

/** Cross-warp partial sums of team reductions: [call parity][value][warp of the block]. */
struct TeamSlots {
  float v[2][2][kNormWarps];
};

/**
 * The threads that own a row: `size` threads (32, 64, 128 or 256: whole warps), team `index` of the block. Sums
 * over the team: shuffles within each warp; for teams of several warps, the warps' partial sums then meet in shared
 * memory behind a block barrier, so every team of the block must make the same calls (see pipelineRows).
 * Consecutive calls alternate between two sets of slots: a warp may write a call's slots while others still read
 * the previous call's, never those of the call before (a barrier lies between).
 */
struct Team {
  int index, size, rank;
  TeamSlots* slots;
  int parity;

  template <int N>
  __device__ __forceinline__ void sum(float (&v)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) v[i] = warpSum(v[i]);
    if (size == 32) return;
    int warp = threadIdx.x >> 5, firstWarp = index * (size >> 5);
    if ((threadIdx.x & 31) == 0) {
#pragma unroll
      for (int i = 0; i < N; i++) slots->v[parity][i][warp] = v[i];
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < N; i++) {
      float total = 0.0f;
      for (int w = firstWarp; w < firstWarp + (size >> 5); w++) total += slots->v[parity][i][w];
      v[i] = total;
    }
    parity ^= 1;
  }

  __device__ __forceinline__ float sum(float v) {
    float one[1] = {v};
    sum(one);
    return one[0];
  }
};

__device__ __forceinline__ Team teamOf(int size, TeamSlots* slots) {
  int t = threadIdx.x;
  return Team{t / size, size, t % size, slots, 0};
}

struct RowStats {
  float mean;
  float rstd;
};

/** Mean (0 for RMSNorm) and rstd of the row the team holds. */
template <class T, int kChunks, bool kCentered>
__device__ __forceinline__ RowStats statsOf(const Row<kChunks>& x, const RowSlice<T>& s, Team& team, float eps) {
  float mean = 0.0f;
  if constexpr (kCentered) {
    float sum = 0.0f;  // absent chunks are zero
#pragma unroll
    for (int c = 0; c < kChunks; c++) {
#pragma unroll
      for (int j = 0; j < kVec<T>; j++) sum += elementOf<T>(x.chunk[c], j);
    }
    mean = team.sum(sum) / s.cols;
  }
  float sq = 0.0f;
#pragma unroll
  for (int c = 0; c < kChunks; c++) {
    if (!s.has(c)) continue;
#pragma unroll
    for (int j = 0; j < kVec<T>; j++) {
      float d = elementOf<T>(x.chunk[c], j) - mean;
      sq += d * d;
    }
  }
  return RowStats{mean, rsqrtf(team.sum(sq) / s.cols + eps)};
}

/**
 * Where column col of a per-column float array in shared memory (w, b, a team's dw/db sums) lives. A thread reads its
 * kVec<T> columns as float4s: for f32 one float4, in the plain layout; for halves two, and the first and the second
 * four columns of every pack lie in two planes of cols/2, so that a warp's float4 accesses are consecutive rather than
 * 32 bytes apart (which costs a second pass through the banks: measured 39% excess shared wavefronts in bf16).
 */
template <class T>
__device__ __forceinline__ int sharedSlot(int col, int cols) {
  if constexpr (kVec<T> == 4) return col;
  else return (col & 4 ? cols / 2 : 0) + (col >> 3) * 4 + (col & 3);
}

/** sharedSlot of the float4 q of the pack of columns from col (a multiple of kVec<T>). */
template <class T>
__device__ __forceinline__ int sharedPackSlot(int col, int cols, int q) {
  if constexpr (kVec<T> == 4) return col;
  else return q * (cols / 2) + col / 2;
}

/** params[slot(c)] = w[c], and params[cols + slot(c)] = b[c] when b is given: the per-column parameters as float. */
template <class T>
__device__ __forceinline__ void stageParams(In w, In b, int cols, float* params) {
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    params[sharedSlot<T>(c, cols)] = w[c];
    if (b.present()) params[cols + sharedSlot<T>(c, cols)] = b[c];
  }
  __syncthreads();
}

/** v[j] = column col + j of a per-column array in shared memory (col a multiple of kVec<T>), in 16-byte reads. */
template <class T>
__device__ __forceinline__ void readShared(const float* array, int col, int cols, float (&v)[kVec<T>]) {
#pragma unroll
  for (int q = 0; q < kVec<T> / 4; q++) {
    float4 f = *reinterpret_cast<const float4*>(array + sharedPackSlot<T>(col, cols, q));
    v[4 * q] = f.x, v[4 * q + 1] = f.y, v[4 * q + 2] = f.z, v[4 * q + 3] = f.w;
  }
}

/** Column col + j of a per-column array in shared memory += v[j], in 16-byte accesses. */
template <class T>
__device__ __forceinline__ void addShared(float* array, int col, int cols, const float (&v)[kVec<T>]) {
#pragma unroll
  for (int q = 0; q < kVec<T> / 4; q++) {
    float4* p = reinterpret_cast<float4*>(array + sharedPackSlot<T>(col, cols, q));
    float4 f = *p;
    f.x += v[4 * q], f.y += v[4 * q + 1], f.z += v[4 * q + 2], f.w += v[4 * q + 3];
    *p = f;
  }
}

/**
 * Runs compute(row buffer, row index, active) over the block's rows: team t takes rows first = blockIdx.x·teams + t,
 * first + stride, … (stride = gridDim.x·teams). Every team of the block makes the same number of calls, a team past
 * the last row with active = false (it must store nothing), so that team sums may meet at block barriers. Two row
 * buffers in turn: the next row's loads are issued before the current row is computed. The team's first row must
 * already be in `a` when it exists.
 */
template <class RowT, class Load, class Compute>
__device__ __forceinline__ void pipelineRows(long long first, int index, long long stride, long long rows, RowT& a,
                                             RowT& b, Load&& load, Compute&& compute) {
  long long r = first;
  auto step = [&](const RowT& now, RowT& later) {
    long long next = r + stride;
    if (next < rows) load(later, next);
    compute(now, r, r < rows);
    r = next;
    return r - index < rows;  // the block's first team still has a row
  };
  while (step(a, b) && step(b, a)) {
  }
}

template <class T, int kChunks, bool kCentered>
__global__ void __launch_bounds__(kNormThreads, kNormMinBlocks<T, false, kCentered>)
    normForwardTeamKernel(In x, In w, In b, Out y, long long rows, int cols, int teamSize, float eps) {
  extern __shared__ __align__(16) float params[];  // w, then b
  __shared__ TeamSlots slots;
  Team team = teamOf(teamSize, &slots);
  RowSlice<T> s{team.rank, teamSize, cols};
  int teams = kNormThreads / teamSize;
  long long first = static_cast<long long>(blockIdx.x) * teams + team.index;
  auto load = [&](Row<kChunks>& buf, long long r) { loadRow<T, kChunks>(x.p, r, s, buf); };
  Row<kChunks> xa{}, xb{};  // zeros until loaded: a team without rows computes on them and stores nothing
  if (first < rows) load(xa, first);
  stageParams<T>(w, kCentered ? b : In{nullptr, F32}, cols, params);

  auto normalize = [&](const Row<kChunks>& xr, long long r, bool active) {
    RowStats st = statsOf<T, kChunks, kCentered>(xr, s, team, eps);
    if (!active) return;
    T* out = static_cast<T*>(y.p) + r * cols;
#pragma unroll
    for (int c = 0; c < kChunks; c++) {
      if (!s.has(c)) continue;
      int col = s.col(c);
      float yv[kVec<T>], wv[kVec<T>], bv[kVec<T>] = {};
      readShared<T>(params, col, cols, wv);
      if constexpr (kCentered) readShared<T>(params + cols, col, cols, bv);
#pragma unroll
      for (int j = 0; j < kVec<T>; j++) yv[j] = (elementOf<T>(xr.chunk[c], j) - st.mean) * st.rstd * wv[j] + bv[j];
      storePack16<T>(out + col, yv);
    }
  };
  pipelineRows(first, team.index, static_cast<long long>(gridDim.x) * teams, rows, xa, xb, load, normalize);
}

/** partial[blockIdx.x, c] = Σ_t sums[t, c] over the block's teams in order (sums in the sharedSlot layout). */
template <class T>
__device__ __forceinline__ void blockColumnSums(const float* sums, int teams, int cols, float* partial) {
  float* out = partial + static_cast<long long>(blockIdx.x) * cols;
  for (int col = threadIdx.x; col < cols; col += blockDim.x) {
    float total = 0.0f;
    for (int t = 0; t < teams; t++) total += sums[t * cols + sharedSlot<T>(col, cols)];
    out[col] = total;
  }
}

/** Shared memory of the backward kernel: w, then per team its dw column sums, then (LayerNorm) its db sums. */
template <bool kCentered>
constexpr size_t normBackwardSharedFloats(int teams, long long cols) {
  return static_cast<size_t>(cols) * (1 + teams * (kCentered ? 2 : 1));
}

/** A row of x and the same row of dy. */
template <int kChunks>
struct RowPair {
  Row<kChunks> x, dy;
};

/** 16 bytes from global to shared memory without passing through registers (cp.async, bypassing L1). */
__device__ __forceinline__ void copyAsync16(void* sharedDst, const void* src) {
  unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(sharedDst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void commitAsync() { asm volatile("cp.async.commit_group;\n" ::); }
/** Waits until at most N of the thread's committed groups of copies are still in flight. */
template <int N>
__device__ __forceinline__ void waitAsync() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/**
 * A team's ring of kStages row slots in shared memory (each x's row, then dy's): the copies of the next kStages − 1
 * rows stay in flight while a row is computed, without holding registers. Each thread copies and later reads only
 * its own chunks, so waiting for its own copies is the only synchronisation needed.
 */
template <class T, int kChunks, int kStages>
struct RowRing {
  T* slots;  // kStages × 2 rows of cols
  int cols;

  __device__ __forceinline__ T* slot(int i, int which) const {
    return slots + (static_cast<long long>(i) * 2 + which) * cols;
  }

  /** Starts copying row r of x and dy into slot i (nothing when the row does not exist), as one group. */
  __device__ __forceinline__ void fetch(int i, const void* x, const void* dy, long long r, long long rows,
                                        const RowSlice<T>& s) {
    if (r < rows) {
      const T* xr = static_cast<const T*>(x) + r * cols;
      const T* dyr = static_cast<const T*>(dy) + r * cols;
#pragma unroll
      for (int c = 0; c < kChunks; c++) {
        if (!s.has(c)) continue;
        copyAsync16(slot(i, 0) + s.col(c), xr + s.col(c));
        copyAsync16(slot(i, 1) + s.col(c), dyr + s.col(c));
      }
    }
    commitAsync();
  }

  /** The thread's chunks of slot i (zeros past the row's end), once its copies have landed. */
  __device__ __forceinline__ void read(int i, const RowSlice<T>& s, RowPair<kChunks>& row) const {
#pragma unroll
    for (int c = 0; c < kChunks; c++) {
      row.x.chunk[c] = s.has(c) ? loadPack16(slot(i, 0) + s.col(c)) : Pack16{{0, 0, 0, 0}};
      row.dy.chunk[c] = s.has(c) ? loadPack16(slot(i, 1) + s.col(c)) : Pack16{{0, 0, 0, 0}};
    }
  }
};

// The dw/db sums live in shared memory rather than registers, so a thread holds only its slices of x and dy. With
// kStages = 0 the next row waits in registers (pipelineRows); otherwise the next kStages − 1 rows wait in a RowRing
// after the dw/db sums.
template <class T, int kChunks, bool kCentered, int kStages>
__global__ void __launch_bounds__(kNormThreads, kNormMinBlocks<T, true, kCentered>)
    normBackwardTeamKernel(In dy, In x, In w, Out dx, float* dwPartial, float* dbPartial, long long rows, int cols,
                           int teamSize, float eps) {
  extern __shared__ __align__(16) float shared[];
  __shared__ TeamSlots slots;
  Team team = teamOf(teamSize, &slots);
  RowSlice<T> s{team.rank, teamSize, cols};
  int teams = kNormThreads / teamSize;
  long long first = static_cast<long long>(blockIdx.x) * teams + team.index;
  const long long stride = static_cast<long long>(gridDim.x) * teams;
  auto load = [&](RowPair<kChunks>& buf, long long r) {
    loadRow<T, kChunks>(x.p, r, s, buf.x);
    loadRow<T, kChunks>(dy.p, r, s, buf.dy);
  };
  RowPair<kChunks> a{}, b{};
  RowRing<T, kChunks, kStages> ring{
      reinterpret_cast<T*>(shared + normBackwardSharedFloats<kCentered>(teams, cols)) +
          static_cast<long long>(team.index) * kStages * 2 * cols,
      cols};
  if constexpr (kStages == 0) {
    if (first < rows) load(a, first);
  } else {
#pragma unroll
    for (int i = 0; i < kStages - 1; i++) ring.fetch(i, x.p, dy.p, first + i * stride, rows, s);
  }

  float* params = shared;
  float* dwSums = shared + cols;
  float* dbSums = dwSums + teams * cols;
  const bool weightGrad = dwPartial != nullptr;  // else the weights are frozen: no dw/db sums
  if (weightGrad) {
    for (int i = threadIdx.x; i < teams * cols * (kCentered ? 2 : 1); i += kNormThreads) dwSums[i] = 0.0f;
  }
  stageParams<T>(w, In{nullptr, F32}, cols, params);  // ends with a barrier
  float* dwTeam = dwSums + team.index * cols;
  float* dbTeam = dbSums + team.index * cols;

  auto backward = [&](const RowPair<kChunks>& row, long long r, bool active) {
    RowStats st = statsOf<T, kChunks, kCentered>(row.x, s, team, eps);
    // sums[0] = Σ ĝ, sums[1] = Σ ĝ·x̂ over the row.
    float sums[2] = {0.0f, 0.0f};
#pragma unroll
    for (int c = 0; c < kChunks; c++) {
      if (!s.has(c)) continue;
      int col = s.col(c);
      float wv[kVec<T>], dwv[kVec<T>], dbv[kVec<T>];
      readShared<T>(params, col, cols, wv);
#pragma unroll
      for (int j = 0; j < kVec<T>; j++) {
        float xHat = (elementOf<T>(row.x.chunk[c], j) - st.mean) * st.rstd;
        float d = elementOf<T>(row.dy.chunk[c], j);
        float g = d * wv[j];
        sums[0] += g;
        sums[1] += g * xHat;
        dwv[j] = d * xHat;
        dbv[j] = d;
      }
      if (active && weightGrad) {
        addShared<T>(dwTeam, col, cols, dwv);
        if constexpr (kCentered) addShared<T>(dbTeam, col, cols, dbv);
      }
    }
    float meanG = 0.0f, meanGX;
    if constexpr (kCentered) {
      team.sum(sums);
      meanG = sums[0] / cols;
      meanGX = sums[1] / cols;
    } else {
      meanGX = team.sum(sums[1]) / cols;
    }
    if (!active) return;
    T* out = static_cast<T*>(dx.p) + r * cols;
#pragma unroll
    for (int c = 0; c < kChunks; c++) {
      if (!s.has(c)) continue;
      int col = s.col(c);
      float wv[kVec<T>], dxv[kVec<T>];
      readShared<T>(params, col, cols, wv);
#pragma unroll
      for (int j = 0; j < kVec<T>; j++) {
        float xHat = (elementOf<T>(row.x.chunk[c], j) - st.mean) * st.rstd;
        float g = elementOf<T>(row.dy.chunk[c], j) * wv[j];
        dxv[j] = st.rstd * (g - meanG - xHat * meanGX);
      }
      storePack16<T>(out + col, dxv);
    }
  };
  if constexpr (kStages == 0) {
    pipelineRows(first, team.index, stride, rows, a, b, load, backward);
  } else {
    // As pipelineRows: every team makes the same number of calls (team sums may meet at block barriers).
    int slot = 0;
    for (long long r = first; r - team.index < rows; r += stride) {
      ring.fetch((slot + kStages - 1) % kStages, x.p, dy.p, r + (kStages - 1) * stride, rows, s);
      waitAsync<kStages - 1>();
      ring.read(slot, s, a);
      backward(a, r, r < rows);
      slot = (slot + 1) % kStages;
    }
  }
  if (!weightGrad) return;
  __syncthreads();
  blockColumnSums<T>(dwSums, teams, cols, dwPartial);
  if constexpr (kCentered) blockColumnSums<T>(dbSums, teams, cols, dbPartial);
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
  float* dwRow = dwPartial ? dwPartial + blockIdx.x * cols : nullptr;  // null: frozen weights, no dw/db sums
  float* dbRow = centered && dwPartial ? dbPartial + blockIdx.x * cols : nullptr;
  for (long long c = threadIdx.x; dwRow && c < cols; c += blockDim.x) {
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
      if (dwRow) dwRow[c] += d * xHat;
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

/** Per-block partial rows of dw (and db when centered), where the weights need gradients. */
void allocatePartials(bool weightGrad, bool centered, unsigned blocks, long long cols, std::optional<Scratch>& dw,
                      std::optional<Scratch>& db) {
  if (!weightGrad) return;
  dw.emplace(sizeof(float) * blocks * cols);
  if (centered) db.emplace(sizeof(float) * blocks * cols);
}

float* addressOf(const std::optional<Scratch>& partial) { return partial ? partial->as<float>() : nullptr; }

unsigned anyBlocks(long long rows) {
  long long cap = static_cast<long long>(multiprocessors()) * 8;
  return static_cast<unsigned>(rows < 1 ? 1 : (rows < cap ? rows : cap));
}

/** Rows of a RowRing (the backward of halves): two in flight while one is computed. */
constexpr int kRingStages = 3;
/** The most dynamic shared memory a backward block with a ring takes: two blocks fit on a multiprocessor. */
constexpr size_t kRingSharedBytes = 110 * 1024;

/** Dynamic shared memory a kernel may take without opting in (48 KiB, less a margin for its static buffers). */
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

/** Threads per row and 16-byte chunks per thread of a team kernel launch. */
struct TeamShape {
  int size = 0;
  int chunks = 0;
};

/** Of the teams of 32–kNormThreads threads (powers of two) holding 3 or 4 chunks each, the one that covers a row
 *  of cols with the fewest idle columns; size 0 when rows are too wide for any. */
template <class T>
TeamShape teamShapeFor(long long cols) {
  TeamShape best;
  long long bestIdle = LLONG_MAX;
  for (int chunks : {3, 4}) {
    for (int size = 32; size <= kNormThreads; size *= 2) {
      long long capacity = static_cast<long long>(size) * kVec<T> * chunks;
      if (capacity < cols) continue;
      if (capacity - cols < bestIdle) best = TeamShape{size, chunks}, bestIdle = capacity - cols;
      break;
    }
  }
  return best;
}

/** Calls f(kChunks) as an integral constant. */
template <class F>
void withChunks(int chunks, F&& f) {
  if (chunks == 3) f(std::integral_constant<int, 3>{});
  else f(std::integral_constant<int, 4>{});
}

template <class T, bool kCentered>
bool normForwardTeams(In x, In w, In b, Out y, long long rows, long long cols, float eps) {
  TeamShape shape = teamShapeFor<T>(cols);
  bool vector = cols % kVec<T> == 0 && packAligned<T, kVec<T>>(x.p) && packAligned<T, kVec<T>>(y.p);
  if (y.dtype != x.dtype || shape.size == 0 || !vector) return false;
  withChunks(shape.chunks, [&](auto chunks) {
    constexpr auto kernel = normForwardTeamKernel<T, decltype(chunks)::value, kCentered>;
    size_t bytes = sizeof(float) * cols * (kCentered ? 2 : 1);
    unsigned blocks = teamBlocks<kernel>(bytes, rows, kNormThreads / shape.size);
    kernel<<<blocks, kNormThreads, bytes, stream()>>>(x, w, b, y, rows, static_cast<int>(cols), shape.size, eps);
  });
  return true;
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

/** Launches the team kernel into per-block partial rows (with weightGrad); returns their count, or 0 when no team
 *  kernel fits. */
template <class T, bool kCentered>
unsigned normBackwardTeams(In dy, In x, In w, Out dx, bool weightGrad, std::optional<Scratch>& dwPartial,
                           std::optional<Scratch>& dbPartial, long long rows, long long cols, float eps) {
  TeamShape shape = teamShapeFor<T>(cols);
  bool vector = cols % kVec<T> == 0 && packAligned<T, kVec<T>>(x.p) && packAligned<T, kVec<T>>(dy.p) &&
                packAligned<T, kVec<T>>(dx.p);
  if (dy.dtype != x.dtype || dx.dtype != x.dtype || shape.size == 0 || !vector) return 0;
  unsigned blocks = 0;
  const int teams = kNormThreads / shape.size;
  const size_t sumsBytes = sizeof(float) * normBackwardSharedFloats<kCentered>(teams, cols);
  const size_t ringBytes = static_cast<size_t>(teams) * kRingStages * 2 * cols * sizeof(T);
  // Halves carry half the bytes per row of f32: rows in flight in registers alone leave DRAM idle, so they wait in a
  // shared-memory ring, where it leaves room for two blocks per multiprocessor.
  const bool ring = sizeof(T) == 2 && sumsBytes + ringBytes <= kRingSharedBytes;
  withChunks(shape.chunks, [&](auto chunks) {
    auto launch = [&](auto stages) {
      constexpr auto kernel = normBackwardTeamKernel<T, decltype(chunks)::value, kCentered, decltype(stages)::value>;
      size_t bytes = sumsBytes + (decltype(stages)::value > 0 ? ringBytes : 0);
      blocks = teamBlocks<kernel>(bytes, rows, teams);
      allocatePartials(weightGrad, kCentered, blocks, cols, dwPartial, dbPartial);
      kernel<<<blocks, kNormThreads, bytes, stream()>>>(dy, x, w, dx, addressOf(dwPartial), addressOf(dbPartial), rows,
                                                       static_cast<int>(cols), shape.size, eps);
    };
    if constexpr (sizeof(T) == 2) {
      if (ring) return launch(std::integral_constant<int, kRingStages>{});
    }
    launch(std::integral_constant<int, 0>{});
  });
  return blocks;
}

/** dy, x, w, dx, dw, [db], rows, cols, eps. dw (and db) absent: frozen weights, only dx is computed. */
void normBackward(Args& a, bool centered) {
  In dy = readIn(a), x = readIn(a), w = readIn(a);
  Out dx = readOut(a), dw = readOut(a);
  Out db = centered ? readOut(a) : Out{nullptr, F32};
  long long rows = a.i64(), cols = a.i64();
  float eps = a.f32();
  const bool weightGrad = dw.present();
  if (cols == 0) return;
  if (rows == 0) {
    if (weightGrad) zeroFill(dw.p, cols * bytesOf(dw.dtype));
    if (weightGrad && centered) zeroFill(db.p, cols * bytesOf(db.dtype));
    return;
  }
  std::optional<Scratch> dwPartial, dbPartial;
  unsigned parts = 0;
  withFloatType(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    parts = centered ? normBackwardTeams<T, true>(dy, x, w, dx, weightGrad, dwPartial, dbPartial, rows, cols, eps)
                     : normBackwardTeams<T, false>(dy, x, w, dx, weightGrad, dwPartial, dbPartial, rows, cols, eps);
  });
  if (parts == 0) {
    parts = anyBlocks(rows);
    allocatePartials(weightGrad, centered, parts, cols, dwPartial, dbPartial);
    normBackwardAnyKernel<<<parts, kNormThreads, 0, stream()>>>(dy, x, w, dx, addressOf(dwPartial),
                                                                addressOf(dbPartial), rows, cols, eps, centered);
  }
  if (!weightGrad) return;
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
