// f32 GEMMs with f32 accuracy on TF32 tensor cores. The H200 multiplies f32 without tensor cores at ~50 TFLOP/s;
// its tensor cores take TF32 (11 significant bits) several times faster. Each f32 operand x is split into
// hi = tf32(x) and lo = tf32(x − hi), so that x = hi + lo to about 22 significant bits, and
//
//   A·B ≈ Ahi·Bhi + (Alo·Bhi + Ahi·Blo)        (the dropped Alo·Blo is ~2⁻²² of A·B)
//
// The two small products are one GEMM over 2K, [Alo | Ahi]·[Bhi ; Blo], written first; then Ahi·Bhi is added to it
// (beta 1), so the small terms are summed before the large one. Each operand is split once into a buffer holding both
// of its parts along K, and Ahi and Bhi are views of those buffers. cuBLASLt runs both GEMMs with TF32 inputs.
// The parts take twice an operand's memory: where they would exceed kPartsBudget, or K is longer than kMaxSliceK, K is
// taken in slices whose products are added up in C.
#include "device.cuh"

namespace mcuda {
namespace {

constexpr int kSplitThreads = 256;
/** Largest scratch for both operands' parts (bytes); beyond it K is sliced. */
constexpr long long kPartsBudget = 128LL << 20;
/** The longest K one GEMM sums on tensor cores: their f32 accumulation drifts over long sums (on the H200, relative
 *  error 1.8e-5 at K = 1.1M, 20× that of f32 GEMMs; 6.6e-7 when K is summed in slices of 8192, in f32 adds). */
constexpr long long kMaxSliceK = 8192;
/** K slices are a multiple of this many elements, so that every slice starts as aligned as the first. */
constexpr long long kSliceQuantum = 256;

__device__ __forceinline__ float roundToTf32(float x) {
  uint32_t bits;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(bits) : "f"(x));
  return __uint_as_float(bits);
}

/**
 * One operand's `rows` × `cols` block (rows `inPitch` apart, batches `inStride` apart) → both of its parts: element
 * (r, c)'s first part at out[r·pitch + c], its second `secondOffset` further (batches `outStride` apart). V elements
 * per thread.
 */
template <int V>
__global__ void __launch_bounds__(kSplitThreads) splitTf32Kernel(const float* in, float* out, long long rows,
                                                                 long long cols, long long inPitch, long long inStride,
                                                                 long long outStride, long long pitch,
                                                                 long long secondOffset, int batches, bool hiFirst) {
  using Pack = ElemPack<float, V>;
  const long long packs = rows * cols / V;
  for (int b = blockIdx.y; b < batches; b += gridDim.y) {
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < packs;
         i += static_cast<long long>(gridDim.x) * blockDim.x) {
      const long long r = i * V / cols, c = i * V - r * cols;
      Pack x = *reinterpret_cast<const Pack*>(in + b * inStride + r * inPitch + c);
      Pack hi, lo;
#pragma unroll
      for (int j = 0; j < V; j++) {
        hi.e[j] = roundToTf32(x.e[j]);
        lo.e[j] = roundToTf32(x.e[j] - hi.e[j]);
      }
      float* first = out + b * outStride + r * pitch + c;
      *reinterpret_cast<Pack*>(first) = hiFirst ? hi : lo;
      *reinterpret_cast<Pack*>(first + secondOffset) = hiFirst ? lo : hi;
    }
  }
}

/** One GEMM operand as stored (rows × cols, rows `inPitch` apart) and where its two parts go in the split buffer:
 *  side by side in each row when K runs along the stored rows, else one block of rows after the other. */
struct SplitOperand {
  const float* data;
  long long rows, cols, inPitch, stride;  // stride 0: one matrix broadcast over the batch
  bool kAlongRow;
  int batches;

  /** The part of the operand with k in [k0, k0 + k). */
  SplitOperand slice(long long k0, long long k) const {
    SplitOperand s = *this;
    s.data += kAlongRow ? k0 : k0 * inPitch;
    (kAlongRow ? s.cols : s.rows) = k;
    return s;
  }

  long long partsPerBatch() const { return 2 * rows * cols; }
  long long pitch() const { return kAlongRow ? 2 * cols : cols; }
  long long secondOffset() const { return kAlongRow ? cols : rows * cols; }
  long long partsStride() const { return stride == 0 ? 0 : partsPerBatch(); }
  long long elements() const { return partsPerBatch() * batches; }
};

SplitOperand operandA(const GemmSpec& g) {
  const long long rows = g.transA ? g.K : g.M, cols = g.transA ? g.M : g.K;
  return {static_cast<const float*>(g.A), rows, cols, cols, g.strideA, !g.transA,
          g.strideA == 0 ? 1 : static_cast<int>(g.batch)};
}

SplitOperand operandB(const GemmSpec& g) {
  const long long rows = g.transB ? g.N : g.K, cols = g.transB ? g.K : g.N;
  return {static_cast<const float*>(g.B), rows, cols, cols, g.strideB, g.transB,
          g.strideB == 0 ? 1 : static_cast<int>(g.batch)};
}

void split(const SplitOperand& x, bool hiFirst, float* out) {
  const bool vector = x.cols % 4 == 0 && x.inPitch % 4 == 0 && x.stride % 4 == 0 && packAligned<float, 4>(x.data) &&
                      packAligned<float, 4>(out);
  const int V = vector ? 4 : 1;
  dim3 grid(coveringBlocks(x.rows * x.cols / V, kSplitThreads, 4), static_cast<unsigned>(std::min(x.batches, 65535)));
  auto kernel = vector ? splitTf32Kernel<4> : splitTf32Kernel<1>;
  kernel<<<grid, kSplitThreads, 0, stream()>>>(x.data, out, x.rows, x.cols, x.inPitch, x.stride, x.partsStride(),
                                               x.pitch(), x.secondOffset(), x.batches, hiFirst);
  check(cudaGetLastError(), "split TF32 operand launch");
}

/** Where B's parts start in the parts buffer: after A's, as aligned as the buffer (256 bytes). */
long long bPartsOffset(const SplitOperand& a) { return (a.elements() + 63) / 64 * 64; }

/** C = alpha·A·B + beta·C for the operands' slices a and b (both over the same K), as the two TF32 GEMMs. */
void splitProducts(const GemmSpec& g, const SplitOperand& a, const SplitOperand& b, long long K, float beta,
                   float* parts) {
  float* aParts = parts;
  float* bParts = parts + bPartsOffset(a);
  split(a, /*hiFirst=*/false, aParts);  // [Alo | Ahi]
  split(b, /*hiFirst=*/true, bParts);   // [Bhi ; Blo]

  GemmSpec small = g;
  small.K = 2 * K;
  small.A = aParts;
  small.B = bParts;
  small.strideA = a.partsStride();
  small.strideB = b.partsStride();
  small.beta = beta;
  small.tf32Operands = true;
  gemm(small);

  GemmSpec large = small;
  large.K = K;
  large.A = aParts + a.secondOffset();  // Ahi
  large.lda = a.pitch();
  large.ldb = b.pitch();                // Bhi: the first part
  large.beta = 1.0f;
  gemm(large);
}

}  // namespace

bool splitTf32Fits(const GemmSpec& g) {
  return g.inType == F32 && g.outType == F32 && !g.tf32Operands && g.lda == 0 && g.ldb == 0 &&
         g.batch <= (1LL << 30);
}

void splitTf32Gemm(const GemmSpec& g) {
  const SplitOperand a = operandA(g), b = operandB(g);
  const long long bytesPerK = (a.elements() + b.elements()) / g.K * static_cast<long long>(sizeof(float));
  long long slice = std::min(g.K, kMaxSliceK);
  if (bytesPerK * slice > kPartsBudget) {
    slice = std::min(slice, std::max(kSliceQuantum, kPartsBudget / bytesPerK / kSliceQuantum * kSliceQuantum));
  }
  Scratch parts(static_cast<size_t>(bPartsOffset(a.slice(0, slice)) + b.slice(0, slice).elements()) * sizeof(float));
  for (long long k0 = 0; k0 < g.K; k0 += slice) {
    const long long k = std::min(slice, g.K - k0);
    splitProducts(g, a.slice(k0, k), b.slice(k0, k), k, k0 == 0 ? g.beta : 1.0f, parts.as<float>());
  }
}

}  // namespace mcuda
