// The engine's matmul kernel: a strided-batched GEMM (the JS side folds, broadcasts or expands batch axes first).
#include "context.h"

namespace mcuda {
namespace {

/** a, b, out, dtype, transA, transB, M, N, K, batch, strideA, strideB, strideC (a stride of 0 broadcasts) */
void matmulOp(Args& args) {
  GemmSpec g;
  g.A = args.ptr();
  g.B = args.ptr();
  g.C = args.ptr();
  g.inType = g.outType = args.dtype();
  g.transA = args.flag();
  g.transB = args.flag();
  g.M = args.i64();
  g.N = args.i64();
  g.K = args.i64();
  g.batch = args.i64();
  g.strideA = args.i64();
  g.strideB = args.i64();
  g.strideC = args.i64();
  if (g.inType == I32) throw Failure("matmul: i32 inputs are not supported on cuda; cast them to f32 first.");
  gemm(g);
}

MCUDA_OP("matmul", matmulOp);

}  // namespace
}  // namespace mcuda
