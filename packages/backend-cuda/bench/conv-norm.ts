// Timing of the causal conv and RMSNorm kernels alone on cuda at the Mamba-130m training shapes (B 8, L 1024,
// E 1536, W 4, D 768): causalConv1d, causalConv1dGrad (bias, SiLU), rmsNorm, rmsNormGrad (also with frozen weights: no
// weight gradients), with the token tensors in f32 and bf16 (RMSNorm's weight stays f32, the conv's weight and bias
// take the token dtype, as in training).
// Each kernel's GPU time comes from the backend's profiling mode (CUDA events around the op), one report per call,
// and the median over the calls is set against the bytes the kernel must move at least (every input read once,
// every output written once): achieved GB/s and the share of the device's peak bandwidth. A program, not a test:
// prints JSON, then the same as a table. Gradient fingerprints show whether two backward calls agree bit for bit.
// For reference, the same bytes go through the simplest streaming kernels too (y = x, and y = a + b for a backward's
// two inputs and one output): what any kernel moving them reaches here.
//   node bench-conv-norm.mjs [B L E W D]
import * as T from '@mamba-ts/tensor';
import { setCudaOption, takeProfile } from '../src/index.js';
import { bytesOf, fingerprint, medianGpuMs, startProfiledCuda } from './common.js';

const [B, L, E, W, D] = process.argv.length >= 7 ? process.argv.slice(2, 7).map(Number) : [8, 1024, 1536, 4, 768];
const ITERS = 25;

interface Result {
  label: string;
  kernel: string;
  dtype: T.DType;
  medianUs: number;
  minBytes: number;
  gbPerSecond: number;
  percentOfPeak: number;
  gradFingerprint?: string;
  reproducible?: boolean;
}

async function main(): Promise<void> {
  const cuda = startProfiledCuda();
  if (!cuda) return;
  const { device, peak } = cuda;
  const n = (shape: number[], seed: number, std: number, mean = 0) => T.randomNormal(shape, { seed, std, mean });
  const f32 = {
    x: n([B, L, E], 1, 1), weight: n([E, W], 2, 0.3), bias: n([E], 3, 0.1), dy: n([B, L, E], 4, 1),
    h: n([B * L, D], 5, 1), normW: n([D], 6, 0.1, 1), dh: n([B * L, D], 7, 1),
  };
  const BLE = B * L * E;
  const rowsD = B * L * D;
  const results: Result[] = [];

  const measure = async (label: string, kernel: string, dtype: T.DType, inputs: T.Tensor[], attrs: Record<string, unknown>, minBytes: number) => {
    const ms = await medianGpuMs(kernel, inputs, attrs, ITERS);
    const gbPerSecond = minBytes / (ms * 1e-3) / 1e9;
    const r: Result = {
      label, kernel, dtype, medianUs: +(ms * 1000).toFixed(2), minBytes, gbPerSecond: +gbPerSecond.toFixed(1),
      percentOfPeak: +((100 * gbPerSecond * 1e9) / peak.bytesPerSecond).toFixed(1),
    };
    if (kernel.endsWith('Grad')) {
      const g1 = T.engine().runKernel(kernel, inputs, attrs);
      const g2 = T.engine().runKernel(kernel, inputs, attrs);
      const [p1, p2] = [await fingerprint(g1), await fingerprint(g2)];
      r.gradFingerprint = p1;
      r.reproducible = p1 === p2;
      T.dispose([...g1, ...g2]);
      takeProfile();
    }
    results.push(r);
  };

  for (const dtype of ['f32', 'bf16'] as const) {
    const s = bytesOf(dtype);
    const c = (t: T.Tensor) => T.cast(t, dtype);
    const [x, weight, bias, dy, h, dh] = [c(f32.x), c(f32.weight), c(f32.bias), c(f32.dy), c(f32.h), c(f32.dh)];
    const convAttrs = { silu: true, names: ['x', 'weight', 'bias'] };
    const params = E * (W + 1) * s;
    // forward: x in, y out; backward: x and dy in, dx out, plus the weight and bias read and their gradients written.
    await measure('causalConv1d', 'causalConv1d', dtype, [x, weight, bias], convAttrs, 2 * BLE * s + params);
    await measure('causalConv1dGrad', 'causalConv1dGrad', dtype, [dy, x, weight, bias], convAttrs, 3 * BLE * s + 2 * params);
    await measure('rmsNorm', 'rmsNorm', dtype, [h, f32.normW], { eps: 1e-5 }, 2 * rowsD * s + D * 4);
    await measure('rmsNormGrad', 'rmsNormGrad', dtype, [dh, h, f32.normW], { eps: 1e-5 }, 3 * rowsD * s + 2 * D * 4);
    // Frozen weights (LoRA): no weight gradients, so no second kernel adding their per-block sums.
    const frozen = { weightGrad: false };
    await measure('causalConv1dGrad, frozen', 'causalConv1dGrad', dtype, [dy, x, weight, bias], { ...convAttrs, ...frozen }, 3 * BLE * s + params);
    await measure('rmsNormGrad, frozen', 'rmsNormGrad', dtype, [dh, h, f32.normW], { eps: 1e-5, ...frozen }, 3 * rowsD * s + D * 4);
    const copy = { scale: 1, offset: 0 };
    await measure('y = x, conv size', 'affine', dtype, [x], copy, 2 * BLE * s);
    await measure('y = a + b, conv size', 'add', dtype, [dy, x], {}, 3 * BLE * s);
    await measure('y = x, norm size', 'affine', dtype, [h], copy, 2 * rowsD * s);
    await measure('y = a + b, norm size', 'add', dtype, [dh, h], {}, 3 * rowsD * s);
    if (dtype !== 'f32') T.dispose([x, weight, bias, dy, h, dh]);
  }
  setCudaOption('profile', 0);

  const report = {
    shape: { B, L, E, W, D, normRows: B * L },
    device,
    peakBandwidthGBs: peak.bytesPerSecond / 1e9,
    peakSource: peak.source,
    iterations: ITERS,
    results,
  };
  console.log(JSON.stringify(report, null, 1));
  const header = `${'kernel'.padEnd(26)} ${'dtype'.padEnd(5)} ${'median µs'.padStart(10)} ${'min MB'.padStart(8)} ${'GB/s'.padStart(8)} ${'% peak'.padStart(7)}  reproducible`;
  const lines = results.map((r) =>
    `${r.label.padEnd(26)} ${r.dtype.padEnd(5)} ${r.medianUs.toFixed(2).padStart(10)} ${(r.minBytes / 1e6).toFixed(1).padStart(8)} ${r.gbPerSecond.toFixed(0).padStart(8)} ${r.percentOfPeak.toFixed(1).padStart(7)}  ${r.reproducible === undefined ? '' : r.reproducible ? 'yes' : 'NO'}`,
  );
  console.log([`\n${device}: peak ${(peak.bytesPerSecond / 1e12).toFixed(2)} TB/s (${peak.source})`, header, ...lines].join('\n'));
}

await main();
