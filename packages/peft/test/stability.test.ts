import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { MambaLM, parseMambaConfig } from '@mamba-ts/ssm';
import { compareLogits, loadAdapter, lyapunovExponents, precisionDivergence, runStability } from '@mamba-ts/peft';
import { FIXTURES, MODEL_DIR, idsOf, loadTiny, reference, tempDir } from './helpers.js';

describe('compareLogits', () => {
  test('identical logits: zero divergence, full agreement', () => {
    const a = Float32Array.from([1, 2, 3, 0, 5, -1]);
    expect(compareLogits(a, a, 3)).toEqual({
      positions: 2, maxAbsDiff: 0, meanAbsDiff: 0, klMean: 0, klMax: 0, top1Agreement: 1, nonFinitePositions: 0,
    });
  });

  test('KL, max/mean |Δ|, argmax flips and non-finite rows against hand values', () => {
    const ref = Float32Array.from([0, 0, Math.log(3), 0]); // p = (1/2, 1/2), (3/4, 1/4)
    const other = Float32Array.from([Math.log(3), 0, 0, 0]); // q = (3/4, 1/4), (1/2, 1/2)
    const d = compareLogits(ref, other, 2);
    const kl1 = 0.5 * Math.log(0.5 / 0.75) + 0.5 * Math.log(0.5 / 0.25);
    const kl2 = 0.75 * Math.log(0.75 / 0.5) + 0.25 * Math.log(0.25 / 0.5);
    expect(d.klMean).toBeCloseTo((kl1 + kl2) / 2, 6);
    expect(d.maxAbsDiff).toBeCloseTo(Math.log(3), 6);
    expect(d.meanAbsDiff).toBeCloseTo(Math.log(3) / 2, 6);
    expect(d.top1Agreement).toBe(1); // argmax (first on ties) is 0 in every row of both
    expect(compareLogits(Float32Array.from([0, 1, 2, 0]), Float32Array.from([1, 0, 3, 0]), 2).top1Agreement).toBe(0.5);
    const bad = compareLogits(ref, Float32Array.from([Infinity, 0, 1, 0]), 2);
    expect(bad.nonFinitePositions).toBe(1);
    expect(bad.positions).toBe(2);
  });
});

describe('precision divergence on mamba-tiny', () => {
  test('bf16 drifts more than f16, both small; accuracy delta from a callback', async () => {
    const model = await loadTiny();
    const ids = idsOf(reference('lora-all'));
    const seen: string[] = [];
    const [bf16, f16] = await precisionDivergence(model, [ids], {
      accuracy: async (m, p) => {
        seen.push(`${p}:${m.computeDType}`);
        return p === 'fp32' ? 0.5 : p === 'bf16' ? 0.45 : 0.5;
      },
    });
    expect(seen).toEqual(['fp32:f32', 'bf16:bf16', 'f16:f16']);
    expect(model.computeDType).toBe('f32');
    expect(bf16.precision).toBe('bf16');
    expect(bf16.positions).toBe(18);
    expect(bf16.maxAbsDiff).toBeGreaterThan(1e-3);
    expect(bf16.maxAbsDiff).toBeLessThan(0.5);
    expect(f16.meanAbsDiff).toBeLessThan(bf16.meanAbsDiff);
    expect(f16.klMean).toBeLessThan(bf16.klMean);
    expect(bf16.top1Agreement).toBeGreaterThan(0.7);
    expect(f16.top1Agreement).toBe(1);
    expect(bf16.accuracy!.delta).toBeCloseTo(-0.05, 10);
    expect(f16.accuracy!.delta).toBe(0);
    ids.dispose();
    model.dispose();
  });
});

describe('Lyapunov exponents of the SSM recurrence', () => {
  const check = (model: MambaLM, ids: T.Tensor): void => {
    const layers = lyapunovExponents(model, ids);
    expect(layers).toHaveLength(model.config.numLayers);
    for (const l of layers) {
      expect(l.lambdaMax, `layer ${l.layer}`).toBeLessThan(0);
      expect(l.lambdaMean).toBeLessThan(l.lambdaMax);
      // The kernel-driven state perturbation decays at the analytic rate.
      expect(Math.abs(l.empiricalState - l.lambdaMax), `layer ${l.layer}: ${l.empiricalState} vs ${l.lambdaMax}`).toBeLessThan(
        1e-4 + 1e-2 * Math.abs(l.lambdaMax),
      );
      expect(l.empiricalStateSlope).toBeLessThan(0);
      // An input nudge at t = 0 never grows: after the conv window the output deviation decays.
      const dev = l.inputPerturbation.deviation;
      const W = model.config.convKernel;
      expect(Math.max(...dev.slice(W))).toBeLessThanOrEqual(Math.max(...dev.slice(0, W)));
    }
  };

  test('mamba-tiny (fixture weights) on real token ids', async () => {
    const model = await loadTiny();
    check(model, idsOf(reference('lora-all')));
    model.dispose();
  });

  test('a random-init Mamba layer (S4D-real A, dt in [1e-3, 0.1]) over 48 tokens', () => {
    const cfg = parseMambaConfig({ model_type: 'mamba', hidden_size: 16, num_hidden_layers: 1, vocab_size: 64, state_size: 8 });
    const model = new MambaLM(cfg, { seed: 7 });
    const ids = T.tensor(Array.from({ length: 48 }, (_, i) => (i * 37 + 11) % 64), [1, 48], 'i32');
    check(model, ids);
    // S4D init: A = −(1..N); the slowest state is n = 0 (A = −1), so λ_max = −mean Δ of the slowest channel.
    const [l] = lyapunovExponents(model, ids, { analyticOnly: true });
    expect(l.at.state).toBe(0);
    expect(l.lambdaMax).toBeGreaterThan(-0.1 * 1.5);
    model.dispose();
  });

  test('with a trained (fixture) LoRA on every target, including dt_proj', async () => {
    const model = await loadTiny();
    await loadAdapter(model, `${FIXTURES}lora-all`);
    check(model, idsOf(reference('lora-all')));
    model.dispose();
  });
});

describe('runStability', () => {
  test('writes a JSON report for a model + adapter on JSONL data', async () => {
    const dir = tempDir();
    const data = join(dir, 'data.jsonl');
    writeFileSync(data, ['the cat sat on the mat.', 'a dog ran in the park and the sun was hot.'].map((text) => JSON.stringify({ text })).join('\n'));
    const out = join(dir, 'report', 'stability.json');
    const report = await runStability({ model: MODEL_DIR, data, out, adapter: `${FIXTURES}lora-xproj`, seqLen: 8, precisions: ['bf16'] });
    const onDisk = JSON.parse(readFileSync(out, 'utf8'));
    expect(onDisk).toEqual(JSON.parse(JSON.stringify(report)));
    expect(report.sequences).toBe(2);
    expect(report.tokens).toBeLessThanOrEqual(16);
    expect(report.divergence.map((d) => d.precision)).toEqual(['bf16']);
    expect(report.lyapunov.allNonPositive).toBe(true);
    expect(report.lyapunov.layers).toHaveLength(2);
    expect(report.lyapunov.layers[0].lambdaMaxPerSequence).toHaveLength(2);
  });

  test('bad input: fp32 in --precisions, empty data', async () => {
    const dir = tempDir();
    const data = join(dir, 'd.jsonl');
    writeFileSync(data, '\n');
    await expect(runStability({ model: MODEL_DIR, data, out: join(dir, 'o.json'), precisions: ['fp32'] })).rejects.toThrow(/list only bf16/);
    await expect(runStability({ model: MODEL_DIR, data, out: join(dir, 'o.json') })).rejects.toThrow(/d\.jsonl: no record has at least 2 tokens/);
  });
});
