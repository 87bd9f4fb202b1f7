// Kernel benchmark: the wasm backend against the cpu reference backend and @tensorflow/tfjs-backend-wasm
// (XNNPACK, single-threaded), side by side in one run. Prints JSON, then a table. Medians of repeated runs.
//   pnpm --filter @mamba-ts/backend-wasm bench   (BENCH_QUICK=1: fewer repetitions; BENCH_ONLY=matmul,scan,layer,mamba)
import { createRequire } from 'node:module';
import * as T from '@mamba-ts/tensor';
import { registerWasmBackendSync, wasmKernels } from '@mamba-ts/backend-wasm';
import { MambaLike, tokenBatch, trainStep, type MambaLikeConfig } from '../test/helpers/mamba-like.js';

const QUICK = process.env.BENCH_QUICK === '1';
const ONLY = process.env.BENCH_ONLY?.split(',');
const want = (section: string): boolean => !ONLY || ONLY.includes(section);

interface Timing {
  medianMs: number;
  runs: number;
}

/** Median wall time of `fn` after one warm-up run: up to `reps` runs, stopping early once `budgetMs` is spent. */
function time(fn: () => void, reps: number, budgetMs: number): Timing {
  fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < reps && (times.length < 1 || performance.now() - start < budgetMs)) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { medianMs: times[Math.floor(times.length / 2)], runs: times.length };
}

/** Runs `fn` with `backend` active, disposing whatever it makes. */
function on(backend: string, fn: () => void): () => void {
  return () => {
    T.setBackend(backend);
    try {
      T.tidy(() => {
        fn();
      });
    } finally {
      T.setBackend('cpu');
    }
  };
}

interface Row {
  kernel: string;
  shape: string;
  /** Work per call: FLOPs (matmul: 2MNK; scan: see `note`) or bytes moved, per `unit`. */
  work: number;
  unit: 'GFLOP/s' | 'GB/s';
  wasmMs: number;
  cpuMs: number;
  tfjsMs?: number;
  tfjsTransBMs?: number;
  note?: string;
}

const rows: Row[] = [];
const reps = QUICK ? 3 : 7;
const cpuReps = QUICK ? 1 : 3;

/** Inputs are made on each backend by `make` (seeded, so both get the same values). */
function compare(kernel: string, shape: string, work: number, unit: Row['unit'], make: () => () => void, note?: string, cpuBudgetMs = 20000, timeWasm = true): Row {
  const bench = (backend: string, r: number, budget: number): number => {
    T.setBackend(backend);
    const run = T.tidy(() => make());
    T.setBackend('cpu');
    return time(on(backend, run), r, budget).medianMs;
  };
  const row: Row = { kernel, shape, work, unit, wasmMs: timeWasm ? bench('wasm', reps, 10000) : NaN, cpuMs: bench('cpu', cpuReps, cpuBudgetMs), note };
  rows.push(row);
  return row;
}

/** Creates persistent (kept) tensors for a benchmark closure; they live until the process ends. */
const keep = (t: T.Tensor): T.Tensor => t.keep();

/** Medians of two functions timed alternately, so that both see the same machine load. */
function timePair(f1: () => void, f2: () => void, r: number, budgetMs: number): [number, number] {
  f1();
  f2();
  const t1: number[] = [];
  const t2: number[] = [];
  const start = performance.now();
  while (t1.length < r && (t1.length < 1 || performance.now() - start < budgetMs)) {
    let t0 = performance.now();
    f1();
    t1.push(performance.now() - t0);
    t0 = performance.now();
    f2();
    t2.push(performance.now() - t0);
  }
  const median = (t: number[]) => t.sort((x, y) => x - y)[Math.floor(t.length / 2)];
  return [median(t1), median(t2)];
}

interface Tfjs {
  matMul(a: unknown, b: unknown, transA: boolean, transB: boolean): { dataSync(): unknown; dispose(): void };
  randomNormal(shape: number[]): { dispose(): void };
}

async function loadTfjs(): Promise<Tfjs> {
  const require = createRequire(import.meta.url);
  const tf = require('@tensorflow/tfjs-core');
  const wasm = require('@tensorflow/tfjs-backend-wasm');
  if (tf.getBackend() !== 'wasm') {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    wasm.setThreadsCount(1);
    await tf.setBackend('wasm');
  }
  return tf as Tfjs;
}

/** The wasm backend and tfjs-backend-wasm on one matmul shape, timed alternately. */
function matmulAgainstTfjs(tf: Tfjs, M: number, K: number, N: number): { wasm: number; tfjs: number; tfjsTransB: number } {
  const a = T.randomNormal([M, K], { seed: 1 });
  const w = T.randomNormal([N, K], { seed: 2 });
  const [wa, ww] = [a, w].map((t) => {
    T.setBackend('wasm');
    const copy = T.tensor(t.dataSync(), t.shape, t.dtype);
    T.setBackend('cpu');
    return copy;
  });
  const ours = on('wasm', () => void T.matmul(wa, ww, { transB: true }));
  const ta = tf.randomNormal([M, K]);
  const tb = tf.randomNormal([K, N]);
  const tbT = tf.randomNormal([N, K]);
  const theirs = (b: unknown, transB: boolean) => () => {
    const c = tf.matMul(ta, b, false, transB);
    c.dataSync();
    c.dispose();
  };
  const [wasm, tfjs] = timePair(ours, theirs(tb, false), reps, 15000);
  const tfjsTransB = time(theirs(tbT, true), QUICK ? 1 : 3, 5000).medianMs;
  for (const t of [a, w, wa, ww]) t.dispose();
  for (const t of [ta, tb, tbT]) t.dispose();
  return { wasm, tfjs, tfjsTransB };
}

async function main(): Promise<void> {
  registerWasmBackendSync();

  // ---- matmuls of a 130m-shaped Mamba layer: x (M, K) · Wᵀ with W (N, K), as nn.Linear runs them ----
  if (want('matmul')) {
    const tf = await loadTfjs();
    for (const [M, K, N] of [[512, 768, 3072], [512, 1536, 80], [512, 1536, 768]] as const) {
      const row = compare('matmul', `${M}x${K} · (${N}x${K})ᵀ`, 2 * M * N * K, 'GFLOP/s', () => {
        const a = keep(T.randomNormal([M, K], { seed: 1 }));
        const w = keep(T.randomNormal([N, K], { seed: 2 }));
        return () => void T.matmul(a, w, { transB: true });
      }, undefined, 20000, false);
      const pair = matmulAgainstTfjs(tf, M, K, N);
      row.wasmMs = pair.wasm;
      row.tfjsMs = pair.tfjs;
      row.tfjsTransBMs = pair.tfjsTransB;
      row.note = 'wasm and tfjs timed alternately; tfjs: B stored (K, N) (its XNNPACK path); tfjsTransB: B stored (N, K)';
    }
  }

  // ---- selective scan (B 1, D 1536, L 512, N 16) with D, z and delta bias, forward and backward ----
  if (want('scan')) {
    const [Bt, L, E, N] = [1, 512, 1536, 16];
    const scanInputs = () => ({
      u: keep(T.randomNormal([Bt, L, E], { seed: 3 })),
      delta: keep(T.randomUniform([Bt, L, E], { low: -4, high: -1, seed: 4 })),
      A: keep(T.neg(T.randomUniform([E, N], { low: 0.5, high: 8, seed: 5 }))),
      B: keep(T.randomNormal([Bt, L, N], { seed: 6 })),
      C: keep(T.randomNormal([Bt, L, N], { seed: 7 })),
      D: keep(T.ones([E])),
      z: keep(T.randomNormal([Bt, L, E], { seed: 8 })),
      deltaBias: keep(T.randomUniform([E], { low: -1, high: 0, seed: 9 })),
    });
    const elems = Bt * L * E * N;
    compare('selectiveScan', `B${Bt} L${L} D${E} N${N}`, 9 * elems, 'GFLOP/s', () => {
      const p = scanInputs();
      return () => void T.selectiveScan(p);
    }, 'nominal 9 FLOP per (b, t, d, n), exp counted as 1');
    compare('selectiveScanGrad', `B${Bt} L${L} D${E} N${N}`, 25 * elems, 'GFLOP/s', () => {
      const p = scanInputs();
      const names = ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'deltaBias'];
      const dy = keep(T.randomNormal([Bt, L, E], { seed: 10 }));
      const inputs = [p.u, p.delta, p.A, p.B, p.C, p.D, p.z, p.deltaBias];
      return () => void T.engine().runKernel('selectiveScanGrad', [dy, ...inputs], { names, deltaSoftplus: true, hasDhLast: false });
    }, 'nominal 25 FLOP per (b, t, d, n): recompute + reverse sweep');
  }

  // ---- the rest of the layer ----
  if (want('layer')) {
    const [L, E, W] = [512, 1536, 4];
    compare('causalConv1d', `1x${L}x${E} W${W} silu`, 4 * L * E * 2, 'GB/s', () => {
      const x = keep(T.randomNormal([1, L, E], { seed: 11 }));
      const w = keep(T.randomNormal([E, W], { seed: 12 }));
      const b = keep(T.randomNormal([E], { seed: 13 }));
      return () => void T.causalConv1d(x, w, { bias: b, silu: true });
    });
    compare('rmsNorm', `${L}x768`, 4 * L * 768 * 2, 'GB/s', () => {
      const x = keep(T.randomNormal([L, 768], { seed: 14 }));
      const w = keep(T.ones([768]));
      return () => void T.rmsNorm(x, w);
    });
    compare('silu', `${L}x${E}`, 4 * L * E * 2, 'GB/s', () => {
      const x = keep(T.randomNormal([L, E], { seed: 15 }));
      return () => void T.silu(x);
    });
    compare('add (broadcast row)', `${L}x${E} + ${E}`, 4 * L * E * 2, 'GB/s', () => {
      const x = keep(T.randomNormal([L, E], { seed: 16 }));
      const b = keep(T.randomNormal([E], { seed: 17 }));
      return () => void T.add(x, b);
    });
    const V = 8192;
    compare('linearCrossEntropy', `${L}x768 · (${V}x768)ᵀ`, 2 * L * 768 * V, 'GFLOP/s', () => {
      const h = keep(T.randomNormal([L, 768], { seed: 18 }));
      const w = keep(T.randomNormal([V, 768], { std: 0.02, seed: 19 }));
      const t = keep(T.tensor(Int32Array.from({ length: L }, (_, i) => (i * 131) % V), [L], 'i32'));
      return () => void T.linearCrossEntropy(h, w, t, { chunkSize: 4096 });
    });
  }

  // ---- a Mamba-like model at 130m width (1 layer, vocab 4096): forward, and forward + backward + AdamW ----
  let profile: Record<string, number> = {};
  if (want('mamba')) {
  const config: MambaLikeConfig = { vocab: 4096, dModel: 768, dInner: 1536, dState: 16, dtRank: 48, convWidth: 4, layers: 1 };
  const [batch, length] = [1, 128];
  const models: Record<string, { model: MambaLike; opt: T.AdamW; ids: T.Tensor; targets: T.Tensor }> = {};
  for (const backend of ['wasm', 'cpu']) {
    T.setBackend(backend);
    const model = new MambaLike(config);
    models[backend] = { model, opt: new T.AdamW(model.parameters(), { lr: 1e-4 }), ...tokenBatch(config.vocab, batch, length, 3) };
    T.setBackend('cpu');
  }
  const stepFlops = 6 * batch * length * (config.dModel * 2 * config.dInner + config.dInner * config.dModel + config.dModel * config.vocab);
  compare('mamba forward (loss)', `1 layer d768 e1536 L${length} V${config.vocab}`, stepFlops / 3, 'GFLOP/s', () => {
    const backend = T.getBackend().name;
    const m = models[backend];
    return () => void T.noGrad(() => m.model.loss(m.ids, m.targets));
  }, 'work = 2·tokens·(matmul weights), the dense part only', 60000);
  compare('mamba training step', `1 layer d768 e1536 L${length} V${config.vocab}`, stepFlops, 'GFLOP/s', () => {
    const backend = T.getBackend().name;
    const m = models[backend];
    return () => void trainStep(m.model, m.opt, m.ids, m.targets);
  }, 'forward + backward + AdamW; work = 6·tokens·(matmul weights)', 60000);

  // ---- where the wasm training step spends its time ----
  profile = profileWasm(() => trainStep(models.wasm.model, models.wasm.opt, models.wasm.ids, models.wasm.targets));
  }

  const table = rows.map((r) => {
    const rate = (ms: number | undefined) => (ms === undefined ? undefined : r.work / (ms * 1e6));
    return {
      kernel: r.kernel,
      shape: r.shape,
      unit: r.unit,
      wasmMs: round(r.wasmMs),
      cpuMs: round(r.cpuMs),
      tfjsMs: r.tfjsMs === undefined ? undefined : round(r.tfjsMs),
      wasm: round(rate(r.wasmMs)!),
      cpu: round(rate(r.cpuMs)!),
      tfjs: r.tfjsMs === undefined ? undefined : round(rate(r.tfjsMs)!),
      tfjsTransB: r.tfjsTransBMs === undefined ? undefined : round(rate(r.tfjsTransBMs)!),
      wasmOverCpu: round(r.cpuMs / r.wasmMs),
      wasmOverTfjs: r.tfjsMs === undefined ? undefined : round(r.tfjsMs / r.wasmMs),
      note: r.note,
    };
  });
  console.log(JSON.stringify({ date: new Date().toISOString(), node: process.version, quick: QUICK, results: table, wasmStepProfileMs: profile }, null, 2));
  console.log('');
  console.log(pad('kernel', 22) + pad('shape', 34) + pad('wasm', 16) + pad('cpu', 16) + pad('tfjs-wasm', 16) + pad('x cpu', 8) + 'x tfjs');
  for (const r of table) {
    const rate = (v: number | undefined, ms: number | undefined) => (v === undefined ? '-' : `${v} (${ms}ms)`);
    console.log(
      pad(r.kernel, 22) + pad(r.shape, 34) + pad(rate(r.wasm, r.wasmMs), 16) + pad(rate(r.cpu, r.cpuMs), 16) +
        pad(rate(r.tfjs, r.tfjsMs), 16) + pad(String(r.wasmOverCpu), 8) + (r.wasmOverTfjs ?? '-'),
    );
  }
  console.log(`(rates in ${'GFLOP/s or GB/s, per row unit'}; medians; tfjs-wasm single-threaded, XNNPACK)`);
  console.log('wasm training-step time by kernel (ms):', Object.entries(profile).map(([k, v]) => `${k} ${v}`).join(', '));
}

/** Times every wasm kernel during `fn` by re-registering wrapped kernels, then restores the originals. */
function profileWasm(fn: () => void): Record<string, number> {
  const kernels = wasmKernels();
  const totals: Record<string, number> = {};
  for (const [name, k] of Object.entries(kernels)) {
    T.registerKernel('wasm', name, (inputs, attrs, backend) => {
      const t0 = performance.now();
      try {
        return k(inputs, attrs, backend);
      } finally {
        totals[name] = (totals[name] ?? 0) + performance.now() - t0;
      }
    });
  }
  T.setBackend('wasm');
  try {
    fn();
    for (const key of Object.keys(totals)) totals[key] = 0;
    const t0 = performance.now();
    fn();
    totals.total = performance.now() - t0;
  } finally {
    T.setBackend('cpu');
    for (const [name, k] of Object.entries(kernels)) T.registerKernel('wasm', name, k);
  }
  return Object.fromEntries(Object.entries(totals).filter(([, v]) => v >= 0.05).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, round(v)]));
}

const round = (v: number): number => (v >= 100 ? Math.round(v) : Number(v.toPrecision(3)));
const pad = (s: string, n: number): string => (s.length >= n ? s + ' ' : s + ' '.repeat(n - s.length));

await main();
