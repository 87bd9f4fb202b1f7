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
  float lr, beta1, beta2, eps, weightDecay, stepSize, sqrtBiasCorrection2;
};

__global__ void adamwKernel(In param, In grad, In m, In v, Out paramOut, float* mOut, float* vOut, long long n,
                            AdamwScalars k) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float g = grad[i];
    float p = param[i] * (1.0f - k.lr * k.weightDecay);
    float mi = k.beta1 * m[i] + (1.0f - k.beta1) * g;
    float vi = k.beta2 * v[i] + (1.0f - k.beta2) * g * g;
    float denom = sqrtf(vi) / k.sqrtBiasCorrection2 + k.eps;
    mOut[i] = mi;
    vOut[i] = vi;
    paramOut.set(i, p - k.stepSize * (mi / denom));
  }
}

/** param, grad, m, v, paramOut, mOut, vOut, n, lr, beta1, beta2, eps, weightDecay, step */
void adamwOp(Args& a) {
  In param = readIn(a), grad = readIn(a), m = readIn(a), v = readIn(a);
  Out paramOut = readOut(a);
  float* mOut = a.as<float>();
  float* vOut = a.as<float>();
  long long n = a.i64();
  double lr = a.f64(), beta1 = a.f64(), beta2 = a.f64(), eps = a.f64(), weightDecay = a.f64(), step = a.f64();
  if (n == 0) return;
  double biasCorrection1 = 1.0 - std::pow(beta1, step);
  double biasCorrection2 = 1.0 - std::pow(beta2, step);
  AdamwScalars k{static_cast<float>(lr), static_cast<float>(beta1), static_cast<float>(beta2), static_cast<float>(eps),
                 static_cast<float>(weightDecay), static_cast<float>(lr / biasCorrection1),
                 static_cast<float>(std::sqrt(biasCorrection2))};
  unsigned blocks = blocksFor(n, 256), cap = multiprocessors() * 16;
  adamwKernel<<<blocks < cap ? blocks : cap, 256, 0, stream()>>>(param, grad, m, v, paramOut, mOut, vOut, n, k);
}

MCUDA_OP("adamw", adamwOp);

}  // namespace
}  // namespace mcuda
