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

// ---- fast paths: dtype and op fixed at compile time, kPack elements per thread step with one vector access per
// ---- operand where the pointers allow. Same float math per element as the generic kernels above.

/** Elements per thread step: 16 bytes of bf16/f16 (one 128-bit access), 32 bytes of f32 (two). */
constexpr int kPack = 8;

template <class T>
bool packable(const void* p) {
  return packAligned<T, kPack>(p);
}

/** The number of packs that cover n elements, and how many of the kPack elements from element i exist. */
__host__ __device__ __forceinline__ long long packsOf(long long n) { return (n + kPack - 1) / kPack; }
__device__ __forceinline__ int validIn(long long n, long long i) { return n - i < kPack ? static_cast<int>(n - i) : kPack; }

#define MCUDA_PACK_LOOP(p, packs) \
  for (long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x; p < (packs); p += (long long)gridDim.x * blockDim.x)

template <class T>
__global__ void fillPackKernel(T* out, long long n, float value, int intValue, bool vector) {
  T e;
  if constexpr (std::is_same_v<T, int>) e = intValue;
  else e = fromFloat<T>(value);
  MCUDA_PACK_LOOP(p, packsOf(n)) {
    long long i = p * kPack;
    int valid = validIn(n, i);
    if (vector && valid == kPack) {
      ElemPack<T, kPack> pack;
#pragma unroll
      for (int j = 0; j < kPack; j++) pack.e[j] = e;
      *reinterpret_cast<ElemPack<T, kPack>*>(out + i) = pack;
    } else {
      for (int j = 0; j < valid; j++) out[i + j] = e;
    }
  }
}

/** y[i] = f(x[i]) over packs of kPack elements (vector loads and stores where `vector`), in fp32. */
template <class From, class To, class F>
__global__ void mapPackKernel(const From* x, To* y, long long n, bool vector, F f) {
  waitForPrevious();
  startNext();
  MCUDA_PACK_LOOP(p, packsOf(n)) {
    long long i = p * kPack;
    int valid = validIn(n, i);
    float v[kPack];
    loadPack<From, kPack>(x, i, valid, vector, v);
#pragma unroll
    for (int j = 0; j < kPack; j++) v[j] = f(v[j]);
    storePack<To, kPack>(y, i, valid, vector, v);
  }
}

struct Identity {
  __device__ float operator()(float v) const { return v; }
};

struct Affine {
  float scale, offset;
  __device__ float operator()(float v) const { return v * scale + offset; }
};

template <int kOp>
struct Unary {
  __device__ float operator()(float v) const { return applyUnary(kOp, v); }
};

template <class T, int kOp>
__global__ void binarySameKernel(const T* a, const T* b, T* y, long long n, bool vector) {
  MCUDA_PACK_LOOP(p, packsOf(n)) {
    long long i = p * kPack;
    int valid = validIn(n, i);
    float va[kPack], vb[kPack];
    loadPack<T, kPack>(a, i, valid, vector, va);
    loadPack<T, kPack>(b, i, valid, vector, vb);
#pragma unroll
    for (int j = 0; j < kPack; j++) va[j] = applyBinary(kOp, va[j], vb[j]);
    storePack<T, kPack>(y, i, valid, vector, va);
  }
}

/** Which element of a broadcast operand output element i reads. */
enum OperandIndex : int {
  kEvery,   // i: the operand has the output's shape
  kRepeat,  // i % period: one block of trailing axes repeated along the leading ones (a bias row)
  kSpread,  // i / period: each element repeated along the trailing axes (a column, a scalar)
};

struct Operand {
  const void* p;
  int index;
  unsigned period;
  bool vector;  // pack loads allowed: aligned, and for kRepeat a period that is a multiple of kPack
};

/** v[j] = the operand's value for output element i + j (j < valid), 0 beyond. Indices fit 32 bits. */
template <class T>
__device__ __forceinline__ void loadOperand(const Operand& x, unsigned i, int valid, float (&v)[kPack]) {
  const T* p = static_cast<const T*>(x.p);
  if (x.index == kEvery) {
    loadPack<T, kPack>(p, i, valid, x.vector, v);
  } else if (x.index == kRepeat) {
    unsigned c = i % x.period;
    if (x.vector) {
      loadPack<T, kPack>(p, c, valid, true, v);
      return;
    }
#pragma unroll
    for (int j = 0; j < kPack; j++) {
      v[j] = j < valid ? toFloat(p[c]) : 0.0f;
      if (++c == x.period) c = 0;
    }
  } else {
    unsigned q = i / x.period, r = i - q * x.period;
    float current = toFloat(p[q]);
#pragma unroll
    for (int j = 0; j < kPack; j++) {
      v[j] = j < valid ? current : 0.0f;
      if (++r == x.period && j + 1 < valid) {
        r = 0;
        current = toFloat(p[++q]);
      }
    }
  }
}

template <class T, int kOp>
__global__ void binaryBroadcastKernel(Operand a, Operand b, T* y, unsigned n, bool vectorY) {
  unsigned packs = static_cast<unsigned>(packsOf(n));
  for (unsigned p = blockIdx.x * blockDim.x + threadIdx.x; p < packs; p += gridDim.x * blockDim.x) {
    unsigned i = p * kPack;
    int valid = validIn(n, i);
    float va[kPack], vb[kPack];
    loadOperand<T>(a, i, valid, va);
    loadOperand<T>(b, i, valid, vb);
#pragma unroll
    for (int j = 0; j < kPack; j++) va[j] = applyBinary(kOp, va[j], vb[j]);
    storePack<T, kPack>(y, i, valid, vectorY, va);
  }
}

unsigned packGrid(long long n) { return coveringBlocks(packsOf(n), kThreads); }

/** Calls f(integral_constant<op>) for the unary ops with a fast path; false for the others. */
template <class F>
bool withFastUnary(int op, F&& f) {
  switch (op) {
    case kNeg: f(std::integral_constant<int, kNeg>{}); return true;
    case kExp: f(std::integral_constant<int, kExp>{}); return true;
    case kSqrt: f(std::integral_constant<int, kSqrt>{}); return true;
    case kRsqrt: f(std::integral_constant<int, kRsqrt>{}); return true;
    case kSquare: f(std::integral_constant<int, kSquare>{}); return true;
    case kReciprocal: f(std::integral_constant<int, kReciprocal>{}); return true;
    case kSigmoid: f(std::integral_constant<int, kSigmoid>{}); return true;
    case kSilu: f(std::integral_constant<int, kSilu>{}); return true;
    case kSoftplus: f(std::integral_constant<int, kSoftplus>{}); return true;
    default: return false;
  }
}

template <class F>
bool withFastBinary(int op, F&& f) {
  switch (op) {
    case kAdd: f(std::integral_constant<int, kAdd>{}); return true;
    case kSub: f(std::integral_constant<int, kSub>{}); return true;
    case kMul: f(std::integral_constant<int, kMul>{}); return true;
    case kDiv: f(std::integral_constant<int, kDiv>{}); return true;
    default: return false;
  }
}

/**
 * The index pattern of an operand whose strides over the output shape are `stride` (0 along broadcast axes), or
 * false when it is none of kEvery, kRepeat, kSpread. Size-1 output axes are ignored (their stride never matters).
 */
bool indexPattern(const Broadcast& bc, const long long* stride, int& index, long long& period) {
  long long size[kMaxRank], s[kMaxRank], dense[kMaxRank];
  int m = 0;
  for (int d = 0; d < bc.rank; d++) {
    if (bc.shape[d] == 1) continue;
    size[m] = bc.shape[d];
    s[m] = stride[d];
    m++;
  }
  long long run = 1;
  for (int d = m - 1; d >= 0; d--) {  // row-major strides of the output over the kept axes
    dense[d] = run;
    run *= size[d];
  }
  bool every = true;
  for (int d = 0; d < m; d++) every = every && s[d] == dense[d];
  if (every) {
    index = kEvery;
    period = 1;
    return true;
  }
  // kSpread: zeros over trailing axes, dense over the leading ones (as a tensor of the leading axes alone).
  int k = m;
  while (k > 0 && s[k - 1] == 0) k--;
  bool spread = k < m;
  run = 1;
  for (int d = k - 1; d >= 0 && spread; d--) {
    spread = s[d] == run;
    run *= size[d];
  }
  if (spread) {
    index = kSpread;
    period = k == 0 ? dense[0] * size[0] : dense[k - 1];  // k == 0: a scalar, one element for the whole output
    return true;
  }
  // kRepeat: zeros over leading axes, the output's dense strides over the trailing ones.
  k = m;
  while (k > 0 && s[k - 1] == dense[k - 1]) k--;
  bool repeat = k > 0;
  for (int d = 0; d < k && repeat; d++) repeat = s[d] == 0;
  if (repeat) {
    index = kRepeat;
    period = dense[k - 1];
    return true;
  }
  return false;
}

template <class T, int kOp>
void launchBinary(const In& a, const In& b, const Out& y, long long n, const Broadcast& bc) {
  const T* pa = static_cast<const T*>(a.p);
  const T* pb = static_cast<const T*>(b.p);
  T* py = static_cast<T*>(y.p);
  if (bc.rank == 0) {
    bool vector = packable<T>(pa) && packable<T>(pb) && packable<T>(py);
    binarySameKernel<T, kOp><<<packGrid(n), kThreads, 0, stream()>>>(pa, pb, py, n, vector);
    return;
  }
  Operand oa{pa, kEvery, 1, false}, ob{pb, kEvery, 1, false};
  auto describe = [&](Operand& o, const long long* stride) {
    int index;
    long long period;
    if (!indexPattern(bc, stride, index, period)) return false;
    o.index = index;
    o.period = static_cast<unsigned>(period);
    o.vector = packable<T>(o.p) && (index == kEvery || (index == kRepeat && period % kPack == 0));
    return true;
  };
  if (n < (1LL << 31) && describe(oa, bc.strideA) && describe(ob, bc.strideB)) {
    binaryBroadcastKernel<T, kOp><<<packGrid(n), kThreads, 0, stream()>>>(oa, ob, py, static_cast<unsigned>(n),
                                                                          packable<T>(py));
  } else {
    binaryKernel<<<gridFor(n), kThreads, 0, stream()>>>(kOp, a, b, y, n, false, bc);
  }
}

// ---- ops: argument order is the contract with src/kernels/*.ts ----

/** out, n, value */
void fillOp(Args& a) {
  Out out = readOut(a);
  long long n = a.i64();
  double value = a.f64();
  if (n == 0) return;
  int intValue = std::isnan(value) ? 0 : static_cast<int>(std::trunc(value));
  auto launch = [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(out.p);
    fillPackKernel<T><<<packGrid(n), kThreads, 0, stream()>>>(p, n, static_cast<float>(value), intValue, packable<T>(p));
  };
  if (out.dtype == I32) launch(int{});
  else if (!withFloatType(out.dtype, launch)) fillKernel<<<gridFor(n), kThreads, 0, stream()>>>(out, n, static_cast<float>(value), intValue);
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
  bool launched = false;
  withFloatType(x.dtype, [&](auto from) {
    withFloatType(y.dtype, [&](auto to) {
      using From = decltype(from);
      using To = decltype(to);
      if constexpr (!std::is_same_v<From, To>) {
        const From* px = static_cast<const From*>(x.p);
        To* py = static_cast<To*>(y.p);
        bool vector = packable<From>(px) && packable<To>(py);
        launchDependent(mapPackKernel<From, To, Identity>, packGrid(n), kThreads, 0, px, py, n, vector, Identity{});
        launched = true;
      }
    });
  });
  if (!launched) castKernel<<<gridFor(n), kThreads, 0, stream()>>>(x, y, n);
}

/** x, y, n, scale, offset */
void affineOp(Args& a) {
  In x = readIn(a);
  Out y = readOut(a);
  long long n = a.i64();
  float scale = a.f32();
  float offset = a.f32();
  if (n == 0) return;
  bool launched = x.dtype == y.dtype && withFloatType(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x.p);
    T* py = static_cast<T*>(y.p);
    launchDependent(mapPackKernel<T, T, Affine>, packGrid(n), kThreads, 0, px, py, n, packable<T>(px) && packable<T>(py),
                    Affine{scale, offset});
  });
  if (!launched) affineKernel<<<gridFor(n), kThreads, 0, stream()>>>(x, y, n, scale, offset);
}

/** op, x, y, n */
void unaryOp(Args& a) {
  int op = a.i32();
  In x = readIn(a);
  Out y = readOut(a);
  long long n = a.i64();
  if (op < 0 || op >= kUnaryCount) throw Failure("internal: unknown unary op " + std::to_string(op));
  if (n == 0) return;
  bool launched = false;
  if (x.dtype == y.dtype) {
    withFloatType(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      launched = withFastUnary(op, [&](auto opTag) {
        const T* px = static_cast<const T*>(x.p);
        T* py = static_cast<T*>(y.p);
        bool vector = packable<T>(px) && packable<T>(py);
        using F = Unary<decltype(opTag)::value>;
        launchDependent(mapPackKernel<T, T, F>, packGrid(n), kThreads, 0, px, py, n, vector, F{});
      });
    });
  }
  if (!launched) unaryKernel<<<gridFor(n), kThreads, 0, stream()>>>(op, x, y, n);
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
  bool launched = false;
  if (a.dtype == b.dtype && a.dtype == y.dtype) {
    withFloatType(y.dtype, [&](auto tag) {
      using T = decltype(tag);
      launched = withFastBinary(op, [&](auto opTag) { launchBinary<T, decltype(opTag)::value>(a, b, y, n, bc); });
    });
  }
  if (!launched) binaryKernel<<<gridFor(n), kThreads, 0, stream()>>>(op, a, b, y, n, bc.rank == 0, bc);
}

MCUDA_OP("fill", fillOp);
MCUDA_OP("cast", castOp);
MCUDA_OP("affine", affineOp);
MCUDA_OP("unary", unaryOp);
MCUDA_OP("binary", binaryOp);

}  // namespace
}  // namespace mcuda
