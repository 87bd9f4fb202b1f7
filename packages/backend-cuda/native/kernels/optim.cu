// Fused AdamW step (torch.optim.AdamW semantics), writing new param, m and v buffers:
//
//   p ← p·(1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1^step)) · m / (sqrt(v) / sqrt(1 − β2^step) + eps)
//
// The bias corrections are computed on the host in double and passed in.
#include "device.cuh"

namespace mcuda {
namespace {

struct AdamwScalars {
  float lr, beta1, beta2, eps, weightDecay, stepSize, sqrtBiasCorrection2, gradScale;
};

__global__ void adamwKernel(In param, In grad, In m, In v, Out paramOut, float* mOut, float* vOut, long long n,
                            AdamwScalars k) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float g = k.gradScale == 1.0f ? grad[i] : grad[i] * k.gradScale;
    float p = param[i] * (1.0f - k.lr * k.weightDecay);
    float mi = k.beta1 * m[i] + (1.0f - k.beta1) * g;
    float vi = k.beta2 * v[i] + (1.0f - k.beta2) * g * g;
    float denom = sqrtf(vi) / k.sqrtBiasCorrection2 + k.eps;
    mOut[i] = mi;
    vOut[i] = vi;
    paramOut.set(i, p - k.stepSize * (mi / denom));
  }
}

/** param, grad, m, v, paramOut, mOut, vOut, n, lr, beta1, beta2, eps, weightDecay, step, gradScale */
void adamwOp(Args& a) {
  In param = readIn(a), grad = readIn(a), m = readIn(a), v = readIn(a);
  Out paramOut = readOut(a);
  float* mOut = a.as<float>();
  float* vOut = a.as<float>();
  long long n = a.i64();
  double lr = a.f64(), beta1 = a.f64(), beta2 = a.f64(), eps = a.f64(), weightDecay = a.f64(), step = a.f64();
  float gradScale = a.f32();
  if (n == 0) return;
  double biasCorrection1 = 1.0 - std::pow(beta1, step);
  double biasCorrection2 = 1.0 - std::pow(beta2, step);
  AdamwScalars k{static_cast<float>(lr), static_cast<float>(beta1), static_cast<float>(beta2), static_cast<float>(eps),
                 static_cast<float>(weightDecay), static_cast<float>(lr / biasCorrection1),
                 static_cast<float>(std::sqrt(biasCorrection2)), gradScale};
  unsigned blocks = blocksFor(n, 256), cap = multiprocessors() * 16;
  adamwKernel<<<blocks < cap ? blocks : cap, 256, 0, stream()>>>(param, grad, m, v, paramOut, mOut, vOut, n, k);
}

MCUDA_OP("adamw", adamwOp);

// sumSquares: Σ x² over many tensors (a global gradient norm²) in two launches: per-tensor block partials, then
// one block adds them in a fixed order (reproducible run to run).
constexpr int kSquaresPerLaunch = 32;
constexpr int kBlocksPerTensor = 32;

struct SquaresTable {
  const void* p[kSquaresPerLaunch];
  int dtype[kSquaresPerLaunch];
  long long n[kSquaresPerLaunch];
};

__global__ void squaresPartialKernel(SquaresTable t, float* partial) {
  In x{t.p[blockIdx.y], t.dtype[blockIdx.y]};
  long long n = t.n[blockIdx.y];
  float s = 0.0f;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float v = x[i];
    s += v * v;
  }
  s = blockSum(s);
  if (threadIdx.x == 0) partial[blockIdx.y * gridDim.x + blockIdx.x] = s;
}

__global__ void sumPartialsKernel(const float* partial, int count, float* out) {
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = blockSum(s);
  if (threadIdx.x == 0) *out = static_cast<float>(s);
}

/** out, count, then (x, dtype, n) × count */
void sumSquaresOp(Args& a) {
  float* out = a.as<float>();
  int count = a.i32();
  Scratch partial(size_t(count > 0 ? count : 1) * kBlocksPerTensor * sizeof(float));
  for (int first = 0; first < count; first += kSquaresPerLaunch) {
    int n = count - first < kSquaresPerLaunch ? count - first : kSquaresPerLaunch;
    SquaresTable t{};
    for (int i = 0; i < n; i++) {
      t.p[i] = a.ptr();
      t.dtype[i] = a.dtype();
      t.n[i] = a.i64();
    }
    squaresPartialKernel<<<dim3(kBlocksPerTensor, n), 256, 0, stream()>>>(t, partial.as<float>() + size_t(first) * kBlocksPerTensor);
  }
  sumPartialsKernel<<<1, 256, 0, stream()>>>(partial.as<float>(), count * kBlocksPerTensor, out);
}

MCUDA_OP("sumSquares", sumSquaresOp);

}  // namespace
}  // namespace mcuda
