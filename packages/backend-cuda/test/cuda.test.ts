import { afterAll, beforeAll, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { CudaBuffer, setCudaOption, type CudaBackend } from '../src/index.js';
import { describeGpu, on, toCuda, violation } from './gpu.js';

describeGpu('cuda backend', () => {
  let previous = 'cpu';
  beforeAll(() => {
    previous = T.engine().getBackend().name;
    T.setBackend('cuda');
  });
  afterAll(() => T.setBackend(previous));

  test('uploads, computes and reads back f32, bf16, f16 and i32', async () => {
    const f = T.tensor([1.5, -2, 3.25]);
    expect(Array.from(await T.tidy(() => T.mul(f, T.scalar(2))).data())).toEqual([3, -4, 6.5]);
    for (const dtype of ['bf16', 'f16'] as const) {
      const h = T.tensor([1, 2.5, -3], [3], dtype);
      expect(Array.from(await T.tidy(() => T.add(h, h)).toFloat32())).toEqual([2, 5, -6]);
    }
    const ids = T.tensor([3, -1, 7], [3], 'i32');
    expect(Array.from(await ids.data())).toEqual([3, -1, 7]);
    expect(T.engine().getBackend().name).toBe('cuda');
  });

  test('memory: live and peak bytes follow allocations, reserved covers the cache', async () => {
    await T.sync();
    const before = T.memory('cuda');
    const t = T.zeros([1000, 250], 'f32');
    const during = T.memory('cuda');
    expect(during.liveBytes - before.liveBytes).toBe(1_000_000);
    expect(during.peakBytes).toBeGreaterThanOrEqual(during.liveBytes);
    t.dispose();
    const after = T.memory('cuda');
    expect(after.liveBytes).toBe(before.liveBytes);
    expect(after.reservedBytes).toBeGreaterThanOrEqual(1_000_000); // the freed block stays cached
    T.resetPeak('cuda');
    expect(T.memory('cuda').peakBytes).toBe(after.liveBytes);
  });

  test('out of memory is a clear error naming the request and what is in use', () => {
    const live = T.memory('cuda').liveTensors;
    expect(() => T.zeros([2 ** 38], 'f32')).toThrow(/fill output f32\[274877906944\]: cuda: out of device memory allocating 1024\.00 GiB .*live tensors hold/);
    expect(T.memory('cuda').liveTensors).toBe(live);
  });

  test('freed buffers and buffers of other backends are rejected with a clear error', async () => {
    const backend = T.engine().findBackend('cuda') as CudaBackend;
    const t = T.tensor([1, 2]);
    const dataId = t.storage.dataId;
    t.dispose();
    expect(() => backend.buffer(dataId, 'add')).toThrow('add: the tensor\'s device memory was already freed (use after dispose).');
    await expect(backend.read(dataId, 'f32', 2)).rejects.toThrow(/already freed/);
    const cpuTensor = on('cpu', () => T.tensor([1, 2]));
    expect(() => backend.buffer(cpuTensor.storage.dataId, 'mul')).toThrow('mul: the tensor does not live on the cuda backend');
    const gpuTensor = T.tensor([1, 2]);
    expect(() => T.add(gpuTensor, cpuTensor)).toThrow(/lives on backend "cpu"/);
    expect(t.isDisposed && dataId instanceof CudaBuffer).toBe(true);
    T.dispose([cpuTensor, gpuTensor]);
  });

  test('an id outside the vocabulary is reported at the next read, naming the kernel; later work is fine', async () => {
    const table = T.tensor(new Float32Array(12).fill(1), [4, 3]);
    const out = T.embedding(table, T.tensor([1, 99, 2], [3], 'i32'));
    await expect(out.data()).rejects.toThrow('cuda: embedding: ids[1] = 99 is outside the vocabulary [0, 4) (its output row is zeros).');
    const ok = T.embedding(table, T.tensor([3], [1], 'i32'));
    expect(Array.from(await ok.data())).toEqual([1, 1, 1]);
    const loss = T.crossEntropyRows(T.zeros([2, 5]), T.tensor([0, 9], [2], 'i32'));
    await expect(T.sync()).rejects.toThrow(/crossEntropy: targets\[1\] = 9 is outside the vocabulary \[0, 5\)/);
    T.dispose([table, out, ok, loss]);
  });

  test('reads and syncs run off the main thread: timers keep firing while the GPU works', async () => {
    const a = T.ones([4096, 4096]);
    const products = Array.from({ length: 10 }, () => T.matmul(a, a)); // ≈ 1.4 TFLOP queued
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const last = await products[9].data();
    await T.sync();
    clearInterval(timer);
    expect(last[0]).toBe(4096);
    expect(ticks).toBeGreaterThan(0);
    T.dispose([a, ...products]);
  });

  test('matmul: folded, broadcast (stride 0), expanded batches and transposes match cpu in f32, bf16, f16', async () => {
    const cases: [number[], number[], boolean, boolean][] = [
      [[3, 7, 5], [5, 6], false, false], // weight folded into M
      [[7, 5], [3, 5, 6], false, false], // a broadcast over b's batch (stride 0)
      [[2, 1, 7, 5], [3, 6, 5], false, true], // both broadcast: a expanded
      [[3, 5, 7], [3, 6, 5], true, true],
      [[3, 5, 7], [5, 6], true, false], // transA with a shared weight: stride 0
    ];
    for (const dtype of ['f32', 'bf16', 'f16'] as const) {
      const [atol, rtol] = dtype === 'f32' ? [1e-4, 1e-4] : [2e-2, 2e-2];
      for (const [as, bs, transA, transB] of cases) {
        const a = on('cpu', () => T.randomNormal(as, { seed: 1, dtype }));
        const b = on('cpu', () => T.randomNormal(bs, { seed: 2, dtype }));
        const want = on('cpu', () => T.matmul(a, b, { transA, transB }));
        const [ga, gb] = [toCuda(a), toCuda(b)];
        const got = T.matmul(ga, gb, { transA, transB });
        expect(got.shape).toEqual(want.shape);
        expect(got.dtype).toBe(dtype);
        const v = violation(await got.toFloat32(), want.toFloat32Sync(), atol * Math.sqrt(as.at(-1)!), rtol);
        expect(v, `${dtype} ${JSON.stringify([as, bs, transA, transB])}`).toBeLessThanOrEqual(1);
        T.dispose([a, b, want, ga, gb, got]);
      }
    }
  });

  test('the few-rows GEMM kernel (forced on) matches cpu for x·Wᵀ with 1 to 64 rows, and cuBLASLt where it does not fit', async () => {
    setCudaOption('skinnyGemm', 1);
    try {
      // rows, out features, in features: every row bucket (1, 2, ≤4, ≤8 per block), a partial last block of rows, K of
      // one and of many 16-byte sweeps, and K = 20 (not a whole number of bf16 vectors: cuBLASLt takes it).
      const cases: [number, number, number][] = [[1, 80, 1536], [2, 33, 64], [3, 7, 256], [8, 130, 768], [37, 9, 40], [64, 5, 20]];
      for (const dtype of ['f32', 'bf16', 'f16'] as const) {
        const [atol, rtol] = dtype === 'f32' ? [1e-4, 1e-4] : [2e-2, 2e-2];
        for (const [M, N, K] of cases) {
          const x = on('cpu', () => T.randomNormal([M, K], { seed: 3, dtype }));
          const w = on('cpu', () => T.randomNormal([N, K], { seed: 4, dtype }));
          const want = on('cpu', () => T.matmul(x, w, { transB: true }));
          const [gx, gw] = [toCuda(x), toCuda(w)];
          const got = T.matmul(gx, gw, { transB: true });
          const v = violation(await got.toFloat32(), want.toFloat32Sync(), atol * Math.sqrt(K), rtol);
          expect(v, `${dtype} ${M}×${N}×${K}`).toBeLessThanOrEqual(1);
          T.dispose([x, w, want, gx, gw, got]);
        }
      }
    } finally {
      setCudaOption('skinnyGemm', -1);
    }
  });

  test('split TF32 products (forced on) match cpu for transposes, broadcast and expanded batches, odd K', async () => {
    const cases: [number[], number[], boolean, boolean][] = [
      [[3, 7, 5], [5, 6], false, false],
      [[7, 5], [3, 5, 6], false, false], // a broadcast over b's batch (stride 0)
      [[2, 1, 7, 5], [3, 6, 5], false, true],
      [[3, 5, 7], [3, 6, 5], true, true],
      [[3, 5, 7], [5, 6], true, false],
      [[33, 768], [130, 768], false, true], // x·Wᵀ: K a whole number of vectors, the parts side by side in each row
      [[768, 40], [768, 9], true, false], // dW = xᵀ·dy: the parts one block of rows after the other
      [[3, 5], [5, 8], false, false], // A's parts an odd number of floats long, B's in 16-byte vectors after them
    ];
    setCudaOption('splitTf32', 1);
    try {
      for (const [as, bs, transA, transB] of cases) {
        const a = on('cpu', () => T.randomNormal(as, { seed: 5 }));
        const b = on('cpu', () => T.randomNormal(bs, { seed: 6 }));
        const want = on('cpu', () => T.matmul(a, b, { transA, transB }));
        const [ga, gb] = [toCuda(a), toCuda(b)];
        const got = T.matmul(ga, gb, { transA, transB });
        expect(got.shape).toEqual(want.shape);
        const v = violation(await got.toFloat32(), want.toFloat32Sync(), 1e-5 * Math.sqrt(transA ? as.at(-2)! : as.at(-1)!), 1e-5);
        expect(v, JSON.stringify([as, bs, transA, transB])).toBeLessThanOrEqual(1);
        T.dispose([a, b, want, ga, gb, got]);
      }
    } finally {
      setCudaOption('splitTf32', -1);
    }
  });

  test('split TF32 products are as accurate as f32 products against an f64 reference, also with K sliced; TF32 is not', async () => {
    // The last two overflow the parts' scratch budget (128 MB): K is taken in slices (column blocks of each row, then
    // blocks of rows), and a slice misplaced would be wrong by the size of the result.
    const cases: [number, number, number, boolean][] = [[64, 96, 4096, false], [8, 8, 1_100_000, false], [8, 8, 1_100_000, true]];
    for (const [M, N, K, transA] of cases) {
      // transA: a stored K×M, b stored K×N (dW = xᵀ·dy); else a M×K, b N×K (y = x·Wᵀ).
      const a = on('cpu', () => T.randomNormal(transA ? [K, M] : [M, K], { seed: 7 }));
      const b = on('cpu', () => T.randomNormal(transA ? [K, N] : [N, K], { seed: 8 }));
      const [av, bv] = [a.toFloat32Sync(), b.toFloat32Sync()];
      const exact = new Float64Array(M * N);
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let acc = 0;
          if (transA) for (let k = 0; k < K; k++) acc += av[k * M + m] * bv[k * N + n];
          else for (let k = 0; k < K; k++) acc += av[m * K + k] * bv[n * K + k];
          exact[m * N + n] = acc;
        }
      }
      const relativeError = async (option: 'splitTf32' | 'tf32', value: number): Promise<number> => {
        setCudaOption(option, value);
        try {
          const [ga, gb] = [toCuda(a), toCuda(b)];
          const got = await T.tidy(() => T.matmul(ga, gb, transA ? { transA } : { transB: true })).toFloat32();
          T.dispose([ga, gb]);
          let [err, norm] = [0, 0];
          for (let i = 0; i < exact.length; i++) [err, norm] = [err + (got[i] - exact[i]) ** 2, norm + exact[i] ** 2];
          return Math.sqrt(err / norm);
        } finally {
          setCudaOption(option, option === 'tf32' ? 0 : -1);
        }
      };
      const f32 = await relativeError('splitTf32', 0);
      const split = await relativeError('splitTf32', 1);
      const shape = `${M}×${N}×${K}${transA ? ' tA' : ' tB'}`;
      const digits = (e: number) => e.toExponential(2);
      if (K === 4096) {
        const tf32 = await relativeError('tf32', 1);
        console.log(`relative error vs f64, ${shape}: f32 ${digits(f32)}, split TF32 ${digits(split)}, TF32 ${digits(tf32)}`);
        expect(tf32, shape).toBeGreaterThan(50 * split);
      } else {
        console.log(`relative error vs f64, ${shape}: f32 ${digits(f32)}, split TF32 ${digits(split)}`);
      }
      expect(split, shape).toBeLessThanOrEqual(2.5 * f32);
      T.dispose([a, b]);
    }
  });

  test('argmax of few long rows (split into parts, then the best part) matches cpu, ties to the lowest index', async () => {
    for (const [rows, cols] of [[1, 50280], [3, 9001], [64, 50280]] as const) {
      const x = on('cpu', () => T.randomNormal([rows, cols], { seed: rows, dtype: 'bf16' })); // bf16: many equal values
      const values = x.toFloat32Sync();
      for (let r = 0; r < rows; r++) values[r * cols + cols - 1 - r] = 100; // a late maximum…
      for (let r = 0; r < rows; r += 2) values[r * cols + 4097 + r] = 100; // …and on even rows an earlier tie
      const xs = on('cpu', () => T.tensor(values, [rows, cols], 'bf16'));
      const want = on('cpu', () => T.argmax(xs));
      const gx = toCuda(xs);
      const got = T.argmax(gx);
      expect(Array.from(await got.data()), `${rows}×${cols}`).toEqual(Array.from(want.dataSync()));
      T.dispose([x, xs, want, gx, got]);
    }
  });

  test('selective scan over long sequences (automatic chunking) matches cpu, forward and backward', async () => {
    const [B, L, E, N] = [2, 300, 24, 16];
    const cpuInputs = on('cpu', () => ({
      u: T.randomNormal([B, L, E], { seed: 11 }),
      delta: T.randomNormal([B, L, E], { seed: 12, std: 0.5 }),
      A: T.neg(T.exp(T.randomNormal([E, N], { seed: 13, std: 0.5 }))),
      B: T.randomNormal([B, L, N], { seed: 14 }),
      C: T.randomNormal([B, L, N], { seed: 15 }),
      D: T.randomNormal([E], { seed: 16 }),
      z: T.randomNormal([B, L, E], { seed: 17 }),
      deltaBias: T.randomNormal([E], { seed: 18, std: 0.5 }),
      h0: T.randomNormal([B, E, N], { seed: 19 }),
    }));
    const names = Object.keys(cpuInputs) as (keyof typeof cpuInputs)[];
    const run = (inputs: typeof cpuInputs) => {
      const xs = names.map((n) => inputs[n]);
      return T.valueAndGrad(() => {
        const r = T.selectiveScan({ ...inputs, deltaSoftplus: true });
        return T.add(T.sum(T.mul(r.y, r.y)), T.sum(T.mul(r.hLast, r.hLast)));
      }, xs);
    };
    const want = on('cpu', () => run(cpuInputs));
    const gpuInputs = Object.fromEntries(names.map((n) => [n, toCuda(cpuInputs[n])])) as typeof cpuInputs;
    const got = run(gpuInputs);
    expect(violation(await got.value.toFloat32(), want.value.toFloat32Sync(), 1e-3, 1e-4)).toBeLessThanOrEqual(1);
    for (const [i, n] of names.entries()) {
      const v = violation(await got.grads[i].toFloat32(), want.grads[i].toFloat32Sync(), 1e-2, 1e-3);
      expect(v, `grad ${n}`).toBeLessThanOrEqual(1);
    }
    T.dispose([got.value, ...got.grads, want.value, ...want.grads, ...Object.values(cpuInputs), ...Object.values(gpuInputs)]);
  });

  test('reductions split over blocks (few long rows or columns) match cpu, NaN kept by max', async () => {
    const long = on('cpu', () => T.randomNormal([3, 70_001], { seed: 21 }));
    const tall = on('cpu', () => T.randomNormal([9_000, 3], { seed: 22 }));
    const withNaN = on('cpu', () => T.tensor(Float32Array.from({ length: 40_000 }, (_, i) => (i === 31_337 ? NaN : i % 97))));
    const cases: [string, (x: T.Tensor) => T.Tensor, T.Tensor][] = [
      ['sum of long rows', (x) => T.sum(x, -1), long],
      ['sum of everything', (x) => T.sum(x), long],
      ['max of long rows', (x) => T.max(x, -1), long],
      ['sum down few columns', (x) => T.sum(x, 0), tall],
      ['max with a NaN', (x) => T.max(x), withNaN],
    ];
    for (const [label, f, x] of cases) {
      const want = on('cpu', () => f(x));
      const got = T.tidy(() => f(toCuda(x)));
      const a = await got.toFloat32();
      const b = want.toFloat32Sync();
      if (label === 'max with a NaN') expect(Number.isNaN(a[0]), label).toBe(true);
      else expect(violation(a, b, 1e-3, 1e-5), label).toBeLessThanOrEqual(1);
      T.dispose([got, want]);
    }
    T.dispose([long, tall, withNaN]);
  });
});
