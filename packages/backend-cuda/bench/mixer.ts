// Baseline timing of one Mamba-130m-shaped mixer layer on cuda (forward, and forward + backward), f32 and bf16
// matmuls. A program, not a test: prints JSON. Run on a GPU host (tools/gpu/run-cuda-tests.sh bundles it).
import * as T from '@mamba-ts/tensor';
import { startCuda } from './common.js';

const [B, L, D, E, N, R, W] = [4, 1024, 768, 1536, 16, 48, 4];

async function main(): Promise<void> {
  if (!startCuda()) return;
  const n = (shape: number[], seed: number, std: number, mean = 0) => T.randomNormal(shape, { seed, std, mean });
  const p = {
    inProj: n([2 * E, D], 1, 0.02), convW: n([E, W], 2, 0.3), convB: n([E], 3, 0.1), xProj: n([R + 2 * N, E], 4, 0.02),
    dtW: n([E, R], 5, 0.1), dtB: n([E], 6, 0.3, -3), Alog: n([E, N], 7, 0.5, 1), Dp: n([E], 8, 0.1, 1), outProj: n([D, E], 9, 0.02),
  };
  const x = n([B, L, D], 10, 1);
  const params = Object.values(p);
  const mixer = (dtype: T.DType) => {
    const c = (t: T.Tensor) => T.cast(t, dtype);
    const xz = T.matmul(c(x), c(p.inProj), { transB: true });
    const [xs, z] = T.split(xz, [E, E], -1);
    const xc = T.causalConv1d(xs, c(p.convW), { bias: c(p.convB), silu: true });
    const [dtr, Bm, Cm] = T.split(T.matmul(xc, c(p.xProj), { transB: true }), [R, N, N], -1);
    const delta = T.matmul(dtr, c(p.dtW), { transB: true });
    const { y } = T.selectiveScan({ u: xc, delta, A: T.neg(T.exp(p.Alog)), B: Bm, C: Cm, D: p.Dp, z, deltaBias: p.dtB, deltaSoftplus: true });
    return T.cast(T.matmul(y, c(p.outProj), { transB: true }), 'f32');
  };
  const time = async (label: string, fn: () => void, iters = 10) => {
    fn();
    await T.sync();
    T.resetPeak('cuda');
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) fn();
    await T.sync();
    const ms = (performance.now() - t0) / iters;
    return { label, msPerIter: +ms.toFixed(3), tokensPerSecond: Math.round((B * L) / (ms / 1000)), peakBytes: T.memory('cuda').peakBytes };
  };
  const results = [];
  for (const dtype of ['f32', 'bf16'] as const) {
    results.push(await time(`forward ${dtype}`, () => T.tidy(() => void mixer(dtype))));
    results.push(await time(`forward+backward ${dtype}`, () => T.tidy(() => void T.valueAndGrad(() => T.sum(mixer(dtype)), params))));
  }
  console.log(JSON.stringify({ shape: { B, L, D, E, N }, results }, null, 1));
}

await main();
