import { expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { fallbackReport } from '@mamba-ts/tensor/testing';
import { describeGpu, on, onAsync, toCuda, violation } from './gpu.js';

// A one-layer Mamba LM written with the tensor ops (the mixer math of shared/reference/mamba-model.md §2), odd sizes.
const [Bt, L, D, E, N, R, W, V] = [2, 9, 10, 20, 6, 3, 4, 37];

type Params = Record<'emb' | 'norm' | 'inProj' | 'convW' | 'convB' | 'xProj' | 'dtW' | 'dtB' | 'Alog' | 'Dp' | 'outProj' | 'normF', T.Tensor>;

function makeParams(): Params {
  const n = (shape: number[], seed: number, std: number, mean = 0) => T.randomNormal(shape, { seed, std, mean });
  const alog = new Float32Array(E * N).map((_, i) => Math.log(1 + (i % N)));
  return {
    emb: n([V, D], 1, 0.5), norm: n([D], 2, 0.1, 1), inProj: n([2 * E, D], 3, 0.3), convW: n([E, W], 4, 0.4), convB: n([E], 5, 0.1),
    xProj: n([R + 2 * N, E], 6, 0.3), dtW: n([E, R], 7, 0.4), dtB: n([E], 8, 0.3, -1), Alog: T.tensor(alog, [E, N]), Dp: n([E], 9, 0.5, 1),
    outProj: n([D, E], 10, 0.3), normF: n([D], 11, 0.1, 1),
  };
}

/** Hidden states (Bt, L, D) after the layer and the final norm. */
function forward(p: Params, ids: T.Tensor): T.Tensor {
  const h = T.embedding(p.emb, ids);
  const xz = T.matmul(T.rmsNorm(h, p.norm), p.inProj, { transB: true });
  const [x, z] = T.split(xz, [E, E], -1);
  const xc = T.causalConv1d(x, p.convW, { bias: p.convB, silu: true });
  const [dtRank, Bm, Cm] = T.split(T.matmul(xc, p.xProj, { transB: true }), [R, N, N], -1);
  const delta = T.matmul(dtRank, p.dtW, { transB: true });
  const A = T.neg(T.exp(p.Alog));
  const { y } = T.selectiveScan({ u: xc, delta, A, B: Bm, C: Cm, D: p.Dp, z, deltaBias: p.dtB, deltaSoftplus: true });
  return T.rmsNorm(T.add(h, T.matmul(y, p.outProj, { transB: true })), p.normF);
}

function loss(p: Params, ids: T.Tensor, targets: T.Tensor): T.Tensor {
  return T.linearCrossEntropy(T.reshape(forward(p, ids), [Bt * L, D]), p.emb, targets, { chunkSize: 16 });
}

/** loss, gradients, then one AdamW step on every parameter (the fused adamw kernel). */
function trainStep(p: Params, ids: T.Tensor, targets: T.Tensor): T.Tensor[] {
  const names = Object.keys(p) as (keyof Params)[];
  const { value, grads } = T.valueAndGrad(() => loss(p, ids, targets), names.map((n) => p[n]));
  const updated = names.flatMap((n, i) => {
    const zeros = T.zeros(p[n].shape);
    const [param] = T.engine().runKernel('adamw', [p[n], grads[i], zeros, zeros], {
      lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1,
    });
    zeros.dispose();
    return [param];
  });
  return [value, ...grads, ...updated];
}

function greedy(p: Params, prompt: number[], steps: number): Promise<number[]> {
  return (async () => {
    const tokens = [...prompt];
    for (let s = 0; s < steps; s++) {
      const next = T.tidy(() => {
        const ids = T.tensor(Int32Array.from(tokens), [1, tokens.length], 'i32');
        const h = T.slice(T.reshape(forward(p, ids), [tokens.length, D]), [tokens.length - 1, 0], [1, D]);
        return T.argmax(T.matmul(h, p.emb, { transB: true }));
      });
      tokens.push((await next.data())[0]);
      next.dispose();
    }
    return tokens;
  })();
}

describeGpu('a Mamba training step on cuda', () => {
  test('forward + backward + AdamW runs without any cpu fallback and matches cpu', async () => {
    const cpuParams = on('cpu', makeParams);
    const ids = on('cpu', () => T.tensor(Int32Array.from({ length: Bt * L }, (_, i) => (i * 7 + 3) % V), [Bt, L], 'i32'));
    const targets = on('cpu', () => T.tensor(Int32Array.from({ length: Bt * L }, (_, i) => (i % 5 === 4 ? -100 : (i * 11 + 1) % V)), [Bt * L], 'i32'));
    const want = on('cpu', () => trainStep(cpuParams, ids, targets));
    const gpuParams = Object.fromEntries(Object.entries(cpuParams).map(([k, t]) => [k, toCuda(t)])) as Params;
    const [gIds, gTargets] = [toCuda(ids), toCuda(targets)];
    let got: T.Tensor[] = [];
    const fallbacks = fallbackReport(() => {
      got = on('cuda', () => trainStep(gpuParams, gIds, gTargets));
    });
    expect(fallbacks).toEqual({});
    expect(got.every((t) => t.backend === 'cuda')).toBe(true);
    const labels = ['loss', ...Object.keys(cpuParams).map((k) => `grad ${k}`), ...Object.keys(cpuParams).map((k) => `adamw ${k}`)];
    for (const [i, label] of labels.entries()) {
      const v = violation(await got[i].toFloat32(), want[i].toFloat32Sync(), 2e-5, 2e-3);
      expect(v, label).toBeLessThanOrEqual(1);
    }
    T.dispose([...got, ...want, ...Object.values(cpuParams), ...Object.values(gpuParams), ids, targets, gIds, gTargets]);
  });

  test('greedy generation gives the same tokens as cpu', async () => {
    const cpuParams = on('cpu', makeParams);
    const gpuParams = Object.fromEntries(Object.entries(cpuParams).map(([k, t]) => [k, toCuda(t)])) as Params;
    const want = await onAsync('cpu', () => greedy(cpuParams, [1, 5, 9], 6));
    const got = await onAsync('cuda', () => greedy(gpuParams, [1, 5, 9], 6));
    expect(got).toEqual(want);
    T.dispose([...Object.values(cpuParams), ...Object.values(gpuParams)]);
  });

  test('recurrent steps (selectiveStateUpdate) reproduce the parallel scan', async () => {
    const [B, Ln, Ech, Ns] = [3, 7, 33, 16];
    const u = T.randomNormal([B, Ln, Ech], { seed: 21 });
    const delta = T.randomNormal([B, Ln, Ech], { seed: 22, std: 0.5 });
    const A = T.neg(T.exp(T.randomNormal([Ech, Ns], { seed: 23, std: 0.5 })));
    const Bm = T.randomNormal([B, Ln, Ns], { seed: 24 });
    const Cm = T.randomNormal([B, Ln, Ns], { seed: 25 });
    const Dp = T.randomNormal([Ech], { seed: 26 });
    const z = T.randomNormal([B, Ln, Ech], { seed: 27 });
    const bias = T.randomNormal([Ech], { seed: 28 });
    const cu = [u, delta, A, Bm, Cm, Dp, z, bias].map(toCuda);
    const [gu, gdelta, gA, gB, gC, gD, gz, gbias] = cu;
    const { y } = on('cuda', () => T.selectiveScan({ u: gu, delta: gdelta, A: gA, B: gB, C: gC, D: gD, z: gz, deltaBias: gbias }));
    const parallel = await y.toFloat32();
    let state = on('cuda', () => T.zeros([B, Ech, Ns]));
    for (let t = 0; t < Ln; t++) {
      const at = (x: T.Tensor, width: number) => T.reshape(T.slice(x, [0, t, 0], [B, 1, width]), [B, width]);
      const step = on('cuda', () =>
        T.tidy(() =>
          T.selectiveStateUpdate({ state, x: at(gu, Ech), delta: at(gdelta, Ech), A: gA, B: at(gB, Ns), C: at(gC, Ns), D: gD, z: at(gz, Ech), deltaBias: gbias }),
        ),
      );
      const stepY = await step.y.toFloat32();
      const want = new Float32Array(B * Ech);
      for (let b = 0; b < B; b++) want.set(parallel.subarray((b * Ln + t) * Ech, (b * Ln + t + 1) * Ech), b * Ech);
      expect(violation(stepY, want, 1e-5, 1e-4), `step ${t}`).toBeLessThanOrEqual(1);
      state.dispose();
      step.y.dispose();
      state = step.state;
    }
    T.dispose([state, y, u, delta, A, Bm, Cm, Dp, z, bias, ...cu]);
  });
});
