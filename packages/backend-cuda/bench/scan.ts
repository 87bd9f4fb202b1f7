// Timing of the selective-scan kernels alone on cuda at the shape (B 8, E 1536, L 2048, N 16): forward, and
// forward + backward (`selectiveScanGrad` with every optional input), f32 and bf16 inputs. A program, not a test:
// prints JSON, with a fingerprint of the gradients (bit-identical across runs when the backward is deterministic).
//   node bench-scan.mjs [B L E N [dtypes]]      e.g. node bench-scan.mjs 8 2048 1536 16 bf16
import * as T from '@mamba-ts/tensor';
import { fingerprint, startCuda } from './common.js';

const [B, L, E, N] = process.argv.length >= 6 ? process.argv.slice(2, 6).map(Number) : [8, 2048, 1536, 16];
const DTYPES = (process.argv[6] ?? 'f32,bf16').split(',') as ('f32' | 'bf16')[];

async function main(): Promise<void> {
  if (!startCuda()) return;
  const n = (shape: number[], seed: number, std: number, mean = 0) => T.randomNormal(shape, { seed, std, mean });
  const f32 = {
    u: n([B, L, E], 1, 1), delta: n([B, L, E], 2, 0.5), A: T.neg(T.exp(n([E, N], 3, 0.5, 1))), B: n([B, L, N], 4, 1),
    C: n([B, L, N], 5, 1), D: n([E], 6, 0.1, 1), z: n([B, L, E], 7, 1), deltaBias: n([E], 8, 0.3, -3),
  };
  const dyF32 = n([B, L, E], 9, 1);
  const names = ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'deltaBias'] as const;
  const lowPrecision = new Set(['u', 'delta', 'B', 'C', 'z']);
  const time = async (fn: () => void, iters: number) => {
    fn();
    await T.sync();
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) fn();
    await T.sync();
    return +((performance.now() - t0) / iters).toFixed(3);
  };
  const results = [];
  for (const dtype of DTYPES) {
    const inputs = names.map((k) => (lowPrecision.has(k) ? T.cast(f32[k], dtype) : f32[k]));
    const dy = T.cast(dyF32, dtype);
    const attrs = { names: [...names], deltaSoftplus: true };
    const forward = () => T.dispose(T.engine().runKernel('selectiveScan', inputs, attrs));
    const backward = () => T.engine().runKernel('selectiveScanGrad', [dy, ...inputs], { ...attrs, hasDhLast: false });
    const fwdMs = await time(forward, 20);
    const bwdMs = await time(() => T.dispose(backward()), 10);
    const g1 = backward();
    const g2 = backward();
    const [p1, p2] = [await fingerprint(g1), await fingerprint(g2)];
    const absMean = async (t: T.Tensor) => {
      const v = await t.toFloat32();
      let s = 0;
      for (let i = 0; i < v.length; i++) s += Math.abs(v[i]);
      return +(s / v.length).toPrecision(6);
    };
    const gradMeans = Object.fromEntries(await Promise.all(names.map(async (k, i) => [k, await absMean(g1[i])])));
    results.push({ dtype, forwardMs: fwdMs, backwardMs: bwdMs, forwardPlusBackwardMs: +(fwdMs + bwdMs).toFixed(3),
      gradFingerprint: p1, reproducible: p1 === p2, gradAbsMeans: gradMeans });
    T.dispose([...g1, ...g2]);
    if (dtype !== 'f32') T.dispose([dy, ...inputs.filter((_, i) => lowPrecision.has(names[i]))]);
  }
  console.log(JSON.stringify({ shape: { B, L, E, N }, results }, null, 1));
}

await main();
