// Products with few rows, y = alpha·x·Wᵀ with x (M, K) and W (N, K) row-major, as in decoding (one token per
// sequence through a Linear layer). Such a product is bound by reading W once, but cuBLASLt's kernels for it launch
// a few blocks and leave most of the memory bandwidth unused (1×80×1536 runs on 2 blocks). Here a warp owns one output
// column n and up to ROWS rows of x: its lanes sweep W's row n in 16-byte vectors (512 contiguous bytes per warp
// access), multiply them with the same columns of its x rows (small, served by the caches), and the warp adds its
// lanes' sums. GEMM plans time this kernel against cuBLASLt's candidates (runtime.cc) and keep the faster.
#include "device.cuh"

namespace mcuda {
namespace {

constexpr int kSkinnyThreads = 256;

template <class T, int ROWS>
__global__ void __launch_bounds__(kSkinnyThreads) skinnyGemmKernel(const T* x, const T* w, T* y, int M, int N, int K, float alpha) {
  constexpr int V = 16 / sizeof(T);
  constexpr int kLine = 128 / sizeof(T);  // elements per L2 line
  const int n = (blockIdx.x * kSkinnyThreads + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  const T* wRow = w + static_cast<long long>(n) * K;
  // W's row is on its way from memory while the kernel before this one finishes.
  if (n < N && blockIdx.y == 0) {
    for (int k = lane * kLine; k < K; k += 32 * kLine) prefetchL2(wRow + k);
  }
  waitForPrevious();
  startNext();
  if (n >= N) return;
  const int m0 = blockIdx.y * ROWS, rows = min(ROWS, M - m0);
  const T* xRows = x + static_cast<long long>(m0) * K;
  float acc[ROWS] = {};
#pragma unroll 4
  for (int k = lane * V; k < K; k += 32 * V) {
    ElemPack<T, V> wv = *reinterpret_cast<const ElemPack<T, V>*>(wRow + k);
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
      if (r < rows) {
        ElemPack<T, V> xv = *reinterpret_cast<const ElemPack<T, V>*>(xRows + static_cast<long long>(r) * K + k);
#pragma unroll
        for (int j = 0; j < V; j++) acc[r] = fmaf(toFloat(xv.e[j]), toFloat(wv.e[j]), acc[r]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ROWS; r++) {
    float total = warpSum(acc[r]);
    if (lane == r && r < rows) y[static_cast<long long>(m0 + r) * N + n] = fromFloat<T>(alpha * total);
  }
}

template <class T, int ROWS>
void launchSkinny(const GemmSpec& g) {
  dim3 grid(blocksFor(g.N * 32, kSkinnyThreads), static_cast<unsigned>((g.M + ROWS - 1) / ROWS));
  launchDependent(skinnyGemmKernel<T, ROWS>, grid, kSkinnyThreads, 0, static_cast<const T*>(g.A),
                  static_cast<const T*>(g.B), static_cast<T*>(g.C), static_cast<int>(g.M), static_cast<int>(g.N),
                  static_cast<int>(g.K), g.alpha);
}

}  // namespace

bool skinnyGemmFits(const GemmSpec& g) {
  if (g.transA || !g.transB || g.batch != 1 || g.beta != 0.0f || g.inType != g.outType) return false;
  if (g.lda != 0 || g.ldb != 0 || g.tf32Operands) return false;
  if (g.inType != F32 && g.inType != BF16 && g.inType != F16) return false;
  if (g.M < 1 || g.M > kSkinnyMaxRows || g.N > (1LL << 26) || g.K > (1LL << 30)) return false;
  const long long vector = 16 / bytesOf(g.inType);
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return g.K % vector == 0 && aligned(g.A) && aligned(g.B);
}

void skinnyGemm(const GemmSpec& g) {
  withFloatType(g.inType, [&](auto tag) {
    using T = decltype(tag);
    if (g.M == 1) launchSkinny<T, 1>(g);
    else if (g.M == 2) launchSkinny<T, 2>(g);
    else if (g.M <= 4) launchSkinny<T, 4>(g);
    else launchSkinny<T, 8>(g);
  });
}

}  // namespace mcuda
