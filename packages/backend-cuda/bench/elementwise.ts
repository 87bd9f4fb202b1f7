// Timing of the bandwidth-bound elementwise and layout kernels on cuda at the Mamba-130m training shapes (batch
// 8 × 1024 tokens): same-shape and bias-row add, f32 → bf16 cast, a column block sliced out of a wide matrix and
// padSlice'd back (the split along the last axis and its gradient), and the (B, L, E) → (B, E, L) transpose.
// Each kernel's GPU time comes from the backend's profiling mode (CUDA events around the op), one report per call;
// the median over the calls is set against the bytes the kernel must move at least (every input read once, every
// output written once): achieved GB/s and the share of the device's peak bandwidth. A program, not a test: prints
// JSON, then the same as a table.
//   node bench-elementwise.mjs [rows]        (rows defaults to 8192 = 8 × 1024 tokens)
import * as T from '@mamba-ts/tensor';
import { sizeOf } from '@mamba-ts/tensor';
import { setCudaOption } from '../src/index.js';
import { bytesOf, medianGpuMs, startProfiledCuda } from './common.js';

const ROWS = process.argv.length >= 3 ? Number(process.argv[2]) : 8192;
const [D, E, WIDE, BATCH, SEQ] = [768, 1536, 3104, 8, ROWS / 8];
const ITERS = 25;



interface Result {
  label: string;
  kernel: string;
  dtype: string;
  medianUs: number;
  minBytes: number;
  gbPerSecond: number;
  percentOfPeak: number;
}

async function main(): Promise<void> {
  const cuda = startProfiledCuda();
  if (!cuda) return;
  const { device, peak } = cuda;
  const results: Result[] = [];
  const normal = (shape: number[], seed: number, dtype: T.DType) => T.tidy(() => T.cast(T.randomNormal(shape, { seed, std: 1 }), dtype));

  const measure = async (label: string, kernel: string, dtype: string, inputs: T.Tensor[], attrs: Record<string, unknown>, minBytes: number) => {
    const ms = await medianGpuMs(kernel, inputs, attrs, ITERS);
    const gbPerSecond = minBytes / (ms * 1e-3) / 1e9;
    results.push({
      label, kernel, dtype, medianUs: +(ms * 1000).toFixed(2), minBytes, gbPerSecond: +gbPerSecond.toFixed(1),
      percentOfPeak: +((100 * gbPerSecond * 1e9) / peak.bytesPerSecond).toFixed(1),
    });
    T.dispose(inputs);
  };

  for (const dtype of ['f32', 'bf16'] as const) {
    const s = bytesOf(dtype);
    const wide = [ROWS, 2 * E];
    const n = sizeOf(wide);
    await measure(`add [${wide}] + [${wide}]`, 'add', dtype, [normal(wide, 1, dtype), normal(wide, 2, dtype)], {}, 3 * n * s);
    await measure(`add [${wide}] + [${2 * E}] (bias row)`, 'add', dtype, [normal(wide, 3, dtype), normal([2 * E], 4, dtype)], {}, 2 * n * s + 2 * E * s);
  }
  for (const shape of [[3072, D], [ROWS, E]]) {
    const n = sizeOf(shape);
    await measure(`cast [${shape}] f32→bf16`, 'cast', 'f32→bf16', [normal(shape, 5, 'f32')], { dtype: 'bf16' }, n * (4 + 2));
  }
  for (const dtype of ['f32', 'bf16'] as const) {
    const s = bytesOf(dtype);
    const block = ROWS * E;
    await measure(`slice [${ROWS},${WIDE}] → [${ROWS},${E}] at column ${E}`, 'slice', dtype, [normal([ROWS, WIDE], 6, dtype)],
      { begin: [0, E], size: [ROWS, E] }, 2 * block * s);
    await measure(`padSlice [${ROWS},${E}] → [${ROWS},${WIDE}] at column ${E}`, 'padSlice', dtype, [normal([ROWS, E], 7, dtype)],
      { shape: [ROWS, WIDE], begin: [0, E] }, block * s + ROWS * WIDE * s);
    const x = [BATCH, SEQ, E];
    await measure(`transpose [${x}] → [${BATCH},${E},${SEQ}]`, 'transpose', dtype, [normal(x, 8, dtype)], { perm: [0, 2, 1] }, 2 * sizeOf(x) * s);
  }
  setCudaOption('profile', 0);

  const report = { rows: ROWS, device, peakBandwidthGBs: peak.bytesPerSecond / 1e9, peakSource: peak.source, iterations: ITERS, results };
  console.log(JSON.stringify(report, null, 1));
  const header = `${'case'.padEnd(52)} ${'dtype'.padEnd(8)} ${'median µs'.padStart(10)} ${'min MB'.padStart(8)} ${'GB/s'.padStart(8)} ${'% peak'.padStart(7)}`;
  const lines = results.map((r) =>
    `${r.label.padEnd(52)} ${r.dtype.padEnd(8)} ${r.medianUs.toFixed(2).padStart(10)} ${(r.minBytes / 1e6).toFixed(1).padStart(8)} ${r.gbPerSecond.toFixed(0).padStart(8)} ${r.percentOfPeak.toFixed(1).padStart(7)}`,
  );
  console.log([`\n${device}: peak ${(peak.bytesPerSecond / 1e12).toFixed(2)} TB/s (${peak.source})`, header, ...lines].join('\n'));
}

await main();
