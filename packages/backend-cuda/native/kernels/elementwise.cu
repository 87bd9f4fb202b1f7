// Elementwise kernels: fill, cast, affine, unary activations and broadcasting binary ops.
// Values are computed in float whatever the storage dtype (the cpu reference computes in double).
#include "device.cuh"

namespace mcuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxRank = 8;

// Op codes: the order of UNARY_OPS / BINARY_OPS in src/kernels/elementwise.ts.
enum UnaryOp {
  kNeg, kExp, kLog, kSqrt, kRsqrt, kAbs, kSquare, kReciprocal, kSigmoid, kSilu, kSoftplus, kTanh, kGelu, kRelu,
  kNormalCdf, kStep, kSign, kUnaryCount
};
enum BinaryOp { kAdd, kSub, kMul, kDiv, kMaximum, kMinimum, kPow, kGreater, kEqual, kBinaryCount };

__device__ __forceinline__ float applyUnary(int op, float x) {
  switch (op) {
    case kNeg: return -x;
    case kExp: return expf(x);
    case kLog: return logf(x);
    case kSqrt: return sqrtf(x);
    case kRsqrt: return 1.0f / sqrtf(x);
    case kAbs: return fabsf(x);
    case kSquare: return x * x;
    case kReciprocal: return 1.0f / x;
    case kSigmoid: return sigmoidf(x);
    case kSilu: return siluf(x);
    case kSoftplus: return softplusf(x);
    case kTanh: return tanhf(x);
    case kGelu: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case kRelu: return x > 0.0f ? x : 0.0f;
    case kNormalCdf: return 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    case kStep: return x > 0.0f ? 1.0f : 0.0f;
    case kSign: return isnan(x) ? x : (x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x));
    default: return x;
  }
}

/** Math.max / Math.min semantics: NaN if either input is NaN. */
__device__ __forceinline__ float applyBinary(int op, float a, float b) {
  switch (op) {
    case kAdd: return a + b;
    case kSub: return a - b;
    case kMul: return a * b;
    case kDiv: return a / b;
    case kMaximum: return isnan(a) || isnan(b) ? NAN : fmaxf(a, b);
    case kMinimum: return isnan(a) || isnan(b) ? NAN : fminf(a, b);
    case kPow: return powf(a, b);
    case kGreater: return a > b ? 1.0f : 0.0f;
    case kEqual: return a == b ? 1.0f : 0.0f;
    default: return a;
  }
}

__global__ void fillKernel(Out out, long long n, float value, int intValue) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    if (out.dtype == I32) static_cast<int*>(out.p)[i] = intValue;
    else out.set(i, value);
  }
}

__global__ void castKernel(In x, Out y, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    y.set(i, x[i]);
  }
}

__global__ void affineKernel(In x, Out y, long long n, float scale, float offset) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    y.set(i, x[i] * scale + offset);
  }
}

__global__ void unaryKernel(int op, In x, Out y, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    y.set(i, applyUnary(op, x[i]));
  }
}

/** Output shape and the strides of a and b in it (0 along broadcast axes). */
struct Broadcast {
  int rank;
  long long shape[kMaxRank];
  long long strideA[kMaxRank];
  long long strideB[kMaxRank];
};

__global__ void binaryKernel(int op, In a, In b, Out y, long long n, bool sameShape, Broadcast bc) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    long long ia = i, ib = i;
    if (!sameShape) {
      ia = 0;
      ib = 0;
      long long rest = i;
      for (int d = bc.rank - 1; d >= 0; d--) {
        long long idx = rest % bc.shape[d];
        rest /= bc.shape[d];
        ia += idx * bc.strideA[d];
        ib += idx * bc.strideB[d];
      }
    }
    y.set(i, applyBinary(op, a[ia], b[ib]));
  }
}

unsigned gridFor(long long n) {
  unsigned cap = static_cast<unsigned>(multiprocessors()) * 16;
  unsigned blocks = blocksFor(n, kThreads);
  return blocks < cap ? blocks : cap;
}

// ---- ops: argument order is the contract with src/kernels/*.ts ----

/** out, n, value */
void fillOp(Args& a) {
  Out out = readOut(a);
  long long n = a.i64();
  double value = a.f64();
  if (n == 0) return;
  int intValue = std::isnan(value) ? 0 : static_cast<int>(std::trunc(value));
  fillKernel<<<gridFor(n), kThreads, 0, stream()>>>(out, n, static_cast<float>(value), intValue);
}

/** x, y, n */
void castOp(Args& a) {
  In x = readIn(a);
  Out y = readOut(a);
  long long n = a.i64();
  if (n == 0) return;
  if (x.dtype == y.dtype) {
    check(cudaMemcpyAsync(y.p, x.p, n * bytesOf(x.dtype), cudaMemcpyDeviceToDevice, stream()), "cast copy");
    return;
  }
  castKernel<<<gridFor(n), kThreads, 0, stream()>>>(x, y, n);
}

/** x, y, n, scale, offset */
void affineOp(Args& a) {
  In x = readIn(a);
  Out y = readOut(a);
  long long n = a.i64();
  float scale = a.f32();
  float offset = a.f32();
  if (n == 0) return;
  affineKernel<<<gridFor(n), kThreads, 0, stream()>>>(x, y, n, scale, offset);
}

/** op, x, y, n */
void unaryOp(Args& a) {
  int op = a.i32();
  In x = readIn(a);
  Out y = readOut(a);
  long long n = a.i64();
  if (op < 0 || op >= kUnaryCount) throw Failure("internal: unknown unary op " + std::to_string(op));
  if (n == 0) return;
  unaryKernel<<<gridFor(n), kThreads, 0, stream()>>>(op, x, y, n);
}

/** op, a, b, y, n, rank, then per axis: size, strideA, strideB (rank 0 = same shape, no broadcasting) */
void binaryOp(Args& args) {
  int op = args.i32();
  In a = readIn(args);
  In b = readIn(args);
  Out y = readOut(args);
  long long n = args.i64();
  Broadcast bc{};
  bc.rank = args.i32();
  if (op < 0 || op >= kBinaryCount) throw Failure("internal: unknown binary op " + std::to_string(op));
  if (bc.rank > kMaxRank) throw Failure("binary op: broadcasting supports at most 8 axes, got " + std::to_string(bc.rank));
  for (int d = 0; d < bc.rank; d++) {
    bc.shape[d] = args.i64();
    bc.strideA[d] = args.i64();
    bc.strideB[d] = args.i64();
  }
  if (n == 0) return;
  binaryKernel<<<gridFor(n), kThreads, 0, stream()>>>(op, a, b, y, n, bc.rank == 0, bc);
}

MCUDA_OP("fill", fillOp);
MCUDA_OP("cast", castOp);
MCUDA_OP("affine", affineOp);
MCUDA_OP("unary", unaryOp);
MCUDA_OP("binary", binaryOp);

}  // namespace
}  // namespace mcuda
