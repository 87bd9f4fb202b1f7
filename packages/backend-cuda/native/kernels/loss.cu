// Per-row cross-entropy without reduction, and the fused linear version that never stores (rows, vocab) logits:
//
//   loss[r] = lse[r] − logits[r, target[r]]  (0 where target = ignoreIndex),   lse = log Σ_v exp(logits[r, v])
//   dlogits[r, v] = (softmax[r, v] − [v = target[r]]) · dloss[r]
//
// The linear versions compute logits = hidden · weightᵀ one vocabulary chunk at a time with cuBLASLt (f32 output)
// and keep a running (max, sum) per row; their backward recomputes each chunk's logits, forms its dlogits in the
// input dtype and adds dlogits·weight into dhidden and dlogitsᵀ·hidden into dweight (f32 accumulation).
#include "device.cuh"

namespace mcuda {
namespace {

__device__ __forceinline__ bool targetValid(int t, int ignoreIndex, long long vocab) {
  return t == ignoreIndex || (t >= 0 && t < vocab);
}

/** One block per row: online log-sum-exp over the row, then the row's loss. */
__global__ void crossEntropyKernel(In logits, const int* targets, float* loss, float* lse, long long rows, long long vocab,
                                   int ignoreIndex, DeviceErrors* errors) {
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    Lse acc{-INFINITY, 0.0f};
    for (long long v = threadIdx.x; v < vocab; v += blockDim.x) acc = lseAbsorb(acc, logits[r * vocab + v]);
    acc = blockLse(acc);
    if (threadIdx.x == 0) {
      float rowLse = acc.max + logf(acc.sum);
      int t = targets[r];
      lse[r] = rowLse;
      if (!targetValid(t, ignoreIndex, vocab)) {
        reportError(errors, kCrossEntropyTargetOutOfRange, r, t, vocab);
        loss[r] = NAN;
      } else {
        loss[r] = t == ignoreIndex ? 0.0f : rowLse - logits[r * vocab + t];
      }
    }
  }
}

__global__ void crossEntropyGradKernel(In logits, const int* targets, In lse, In dloss, Out dlogits, long long rows,
                                       long long vocab, int ignoreIndex) {
  long long n = rows * vocab;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    long long r = i / vocab, v = i % vocab;
    int t = targets[r];
    float d = 0.0f;
    if (t != ignoreIndex) d = (expf(logits[i] - lse[r]) - (v == t ? 1.0f : 0.0f)) * dloss[r];
    dlogits.set(i, d);
  }
}

/** Folds one chunk of f32 logits (rows, width) into each row's running (max, sum); picks the target's logit. */
__global__ void absorbChunkKernel(const float* chunk, long long rows, long long width, long long c0, const int* targets,
                                  float* runMax, float* runSum, float* targetLogit) {
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    Lse acc{-INFINITY, 0.0f};
    for (long long j = threadIdx.x; j < width; j += blockDim.x) {
      acc = lseAbsorb(acc, chunk[r * width + j]);
      if (targets[r] == c0 + j) targetLogit[r] = chunk[r * width + j];
    }
    acc = blockLse(acc);
    if (threadIdx.x == 0) {
      Lse total = lseCombine(Lse{runMax[r], runSum[r]}, acc);
      runMax[r] = total.max;
      runSum[r] = total.sum;
    }
  }
}

__global__ void lseInitKernel(float* runMax, float* runSum, float* targetLogit, long long rows) {
  for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < rows; r += (long long)gridDim.x * blockDim.x) {
    runMax[r] = -INFINITY;
    runSum[r] = 0.0f;
    targetLogit[r] = 0.0f;
  }
}

__global__ void linearLossKernel(const float* runMax, const float* runSum, const float* targetLogit, const int* targets,
                                 float* loss, float* lse, long long rows, long long vocab, int ignoreIndex,
                                 DeviceErrors* errors) {
  for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < rows; r += (long long)gridDim.x * blockDim.x) {
    float rowLse = runMax[r] + logf(runSum[r]);
    int t = targets[r];
    lse[r] = rowLse;
    if (!targetValid(t, ignoreIndex, vocab)) {
      reportError(errors, kLinearCrossEntropyTargetOutOfRange, r, t, vocab);
      loss[r] = NAN;
    } else {
      loss[r] = t == ignoreIndex ? 0.0f : rowLse - targetLogit[r];
    }
  }
}

/** dlogits of one chunk, stored in the GEMM input dtype. */
__global__ void chunkGradKernel(const float* chunk, long long rows, long long width, long long c0, const int* targets,
                                In lse, In dloss, int ignoreIndex, Out dchunk) {
  long long n = rows * width;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    long long r = i / width, j = i % width;
    int t = targets[r];
    float d = 0.0f;
    if (t != ignoreIndex) d = (expf(chunk[i] - lse[r]) - (c0 + j == t ? 1.0f : 0.0f)) * dloss[r];
    dchunk.set(i, d);
  }
}

__global__ void toDtypeKernel(const float* src, Out dst, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    dst.set(i, src[i]);
  }
}

unsigned gridFor(long long n) {
  unsigned blocks = blocksFor(n, 256), cap = multiprocessors() * 16;
  return blocks < cap ? blocks : cap;
}

unsigned rowBlocks(long long rows) {
  long long cap = static_cast<long long>(multiprocessors()) * 32;
  return static_cast<unsigned>(rows < 1 ? 1 : (rows < cap ? rows : cap));
}

/** C (M×N, f32) = op(A)·op(B) + beta·C with A and B of `dtype`. */
void gemmF32(int dtype, bool transA, bool transB, long long M, long long N, long long K, const void* A, const void* B,
             float* C, float beta = 0.0f) {
  GemmSpec g;
  g.inType = dtype;
  g.outType = F32;
  g.transA = transA;
  g.transB = transB;
  g.M = M;
  g.N = N;
  g.K = K;
  g.A = A;
  g.B = B;
  g.C = C;
  g.beta = beta;
  gemm(g);
}

/** logits (rows, vocab) of the chunk [c0, c0 + width) in f32: hidden · weight[c0 : c0 + width]ᵀ. */
void chunkLogits(const void* hidden, const char* weight, int dtype, long long rows, long long dim, long long c0,
                 long long width, float* out) {
  gemmF32(dtype, false, true, rows, width, dim, hidden, weight + c0 * dim * bytesOf(dtype), out);
}

/** logits, targets, loss, lse, rows, vocab, ignoreIndex */
void crossEntropyOp(Args& a) {
  In logits = readIn(a);
  const int* targets = a.as<const int>();
  float* loss = a.as<float>();
  float* lse = a.as<float>();
  long long rows = a.i64(), vocab = a.i64();
  int ignoreIndex = a.i32();
  if (rows == 0) return;
  crossEntropyKernel<<<rowBlocks(rows), 256, 0, stream()>>>(logits, targets, loss, lse, rows, vocab, ignoreIndex,
                                                            deviceErrors());
}

/** dloss, logits, targets, lse, dlogits, rows, vocab, ignoreIndex */
void crossEntropyGradOp(Args& a) {
  In dloss = readIn(a), logits = readIn(a);
  const int* targets = a.as<const int>();
  In lse = readIn(a);
  Out dlogits = readOut(a);
  long long rows = a.i64(), vocab = a.i64();
  int ignoreIndex = a.i32();
  if (rows * vocab == 0) return;
  crossEntropyGradKernel<<<gridFor(rows * vocab), 256, 0, stream()>>>(logits, targets, lse, dloss, dlogits, rows,
                                                                       vocab, ignoreIndex);
}

/** hidden, weight, dtype, targets, loss, lse, rows, dim, vocab, ignoreIndex, chunkSize */
void linearCrossEntropyOp(Args& a) {
  const void* hidden = a.ptr();
  const char* weight = a.as<const char>();
  int dtype = a.dtype();
  const int* targets = a.as<const int>();
  float* loss = a.as<float>();
  float* lse = a.as<float>();
  long long rows = a.i64(), dim = a.i64(), vocab = a.i64();
  int ignoreIndex = a.i32();
  long long chunkSize = a.i64();
  if (rows == 0) return;
  long long width = chunkSize < vocab ? chunkSize : vocab;
  Scratch chunk(rows * (width > 0 ? width : 1) * sizeof(float));
  Scratch runMax(rows * sizeof(float)), runSum(rows * sizeof(float)), targetLogit(rows * sizeof(float));
  lseInitKernel<<<gridFor(rows), 256, 0, stream()>>>(runMax.as<float>(), runSum.as<float>(), targetLogit.as<float>(), rows);
  for (long long c0 = 0; c0 < vocab; c0 += chunkSize) {
    long long w = vocab - c0 < chunkSize ? vocab - c0 : chunkSize;
    chunkLogits(hidden, weight, dtype, rows, dim, c0, w, chunk.as<float>());
    absorbChunkKernel<<<rowBlocks(rows), 256, 0, stream()>>>(chunk.as<float>(), rows, w, c0, targets, runMax.as<float>(),
                                                             runSum.as<float>(), targetLogit.as<float>());
  }
  linearLossKernel<<<gridFor(rows), 256, 0, stream()>>>(runMax.as<float>(), runSum.as<float>(), targetLogit.as<float>(),
                                                        targets, loss, lse, rows, vocab, ignoreIndex, deviceErrors());
}

/** dloss, hidden, weight, dtype, targets, lse, dhidden, dweight (0: not wanted), rows, dim, vocab, ignoreIndex, chunkSize */
void linearCrossEntropyGradOp(Args& a) {
  In dloss = readIn(a);
  const void* hidden = a.ptr();
  const char* weight = a.as<const char>();
  int dtype = a.dtype();
  const int* targets = a.as<const int>();
  In lse = readIn(a);
  void* dhidden = a.ptr();
  char* dweight = a.as<char>();
  long long rows = a.i64(), dim = a.i64(), vocab = a.i64();
  int ignoreIndex = a.i32();
  long long chunkSize = a.i64();

  bool direct = dtype == F32;
  bool wantWeight = dweight != nullptr;  // null: the weight's gradient is not wanted (a frozen head)
  Scratch dhidden32(direct ? 0 : rows * dim * sizeof(float)),
      dweight32(direct || !wantWeight ? 0 : vocab * dim * sizeof(float));
  float* dh = direct ? static_cast<float*>(dhidden) : dhidden32.as<float>();
  float* dw = direct ? reinterpret_cast<float*>(dweight) : dweight32.as<float>();
  zeroFill(dh, rows * dim * sizeof(float));
  if (rows == 0 && wantWeight) zeroFill(dw, vocab * dim * sizeof(float));

  long long width = chunkSize < vocab ? chunkSize : vocab;
  Scratch chunk(rows * (width > 0 ? width : 1) * sizeof(float));
  Scratch dchunk(rows * (width > 0 ? width : 1) * bytesOf(dtype));
  for (long long c0 = 0; rows > 0 && c0 < vocab; c0 += chunkSize) {
    long long w = vocab - c0 < chunkSize ? vocab - c0 : chunkSize;
    chunkLogits(hidden, weight, dtype, rows, dim, c0, w, chunk.as<float>());
    chunkGradKernel<<<gridFor(rows * w), 256, 0, stream()>>>(chunk.as<float>(), rows, w, c0, targets, lse, dloss,
                                                             ignoreIndex, Out{dchunk.get(), dtype});
    // dhidden += dchunk (rows × w) · weight[c0 : c0 + w] (w × dim)
    gemmF32(dtype, false, false, rows, dim, w, dchunk.get(), weight + c0 * dim * bytesOf(dtype), dh, 1.0f);
    // dweight[c0 : c0 + w] = dchunkᵀ (w × rows) · hidden (rows × dim)
    if (wantWeight) gemmF32(dtype, true, false, w, dim, rows, dchunk.get(), hidden, dw + c0 * dim);
  }
  if (!direct) {
    if (rows * dim > 0) toDtypeKernel<<<gridFor(rows * dim), 256, 0, stream()>>>(dh, Out{dhidden, dtype}, rows * dim);
    if (wantWeight && vocab * dim > 0) toDtypeKernel<<<gridFor(vocab * dim), 256, 0, stream()>>>(dw, Out{dweight, dtype}, vocab * dim);
  }
}

MCUDA_OP("crossEntropy", crossEntropyOp);
MCUDA_OP("crossEntropyGrad", crossEntropyGradOp);
MCUDA_OP("linearCrossEntropy", linearCrossEntropyOp);
MCUDA_OP("linearCrossEntropyGrad", linearCrossEntropyGradOp);

}  // namespace
}  // namespace mcuda
