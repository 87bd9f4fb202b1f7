import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, test } from 'vitest';
import { MambaLM, presetConfig } from '@mamba-ts/ssm';
import { ensureChromium } from './chromium.js';
import { main, parameterCount, parseBenchArgs, renderHtml, runBench, type BenchReport } from '@mamba-ts/bench';

const FAST = ['--backend', 'cpu', '--recompute', 'ssm', '--steps', '2', '--warmup', '0', '--batch-size', '1', '--seq-len', '16', '--decode-tokens', '3',
  '--decode-batch', '2', '--scaling-lengths', '8,16', '--scaling-batches', '1', '--quiet'];

let report: BenchReport;

describe('bench report', () => {
  test('a run over every mode measures every figure', async () => {
    report = await runBench(parseBenchArgs(FAST)!);
    expect(report.schema).toBe('mamba-ts-bench/1');
    expect(report.training.map((t) => t.mode)).toEqual(['full-fp32', 'full-bf16', 'full-f16', 'lora-fp32', 'lora-bf16', 'lora-f16']);
    for (const t of report.training) {
      expect(t.tokensPerSecond.median).toBeGreaterThan(0);
      expect(t.tokensPerSecond.samples).toBe(2);
      expect(t.peakBytes).toBeGreaterThan(t.memory.weights);
      expect(t.peakBytesPerToken).toBeCloseTo(t.peakBytes / 16, 6);
      expect(Number.isFinite(t.finalLoss)).toBe(true);
    }
    const lora = report.training.find((t) => t.mode === 'lora-fp32')!;
    const full = report.training.find((t) => t.mode === 'full-fp32')!;
    expect(lora.trainableParameters).toBeLessThan(full.trainableParameters / 4);
    expect(report.ratios.find((r) => r.mode === 'full-fp32')).toEqual({ mode: 'full-fp32', tokensPerSecond: 1, memoryPerTokenReduction: 0 });
    expect(report.inference.map((i) => `${i.mode}${i.batchSize}`)).toEqual(['prefill1', 'decode1', 'decode2']);
    for (const i of report.inference) {
      // equal tokens per interval: the whole-run rate is their harmonic mean, within their range
      expect(i.wholeRunTokensPerSecond).toBeGreaterThanOrEqual(i.tokensPerSecond.min * (1 - 1e-9));
      expect(i.wholeRunTokensPerSecond).toBeLessThanOrEqual(i.tokensPerSecond.max * (1 + 1e-9));
    }
    expect(report.scaling.map((p) => `${p.model}${p.seqLen}`)).toEqual(['mamba8', 'transformer8', 'mamba16', 'transformer16']);
    expect(report.model.parameters).toBe(parameterCount(presetConfig('tiny')));
  }, 120_000);

  test('the parameter count from the config equals the built model', () => {
    for (const name of ['tiny'] as const) {
      const m = new MambaLM(presetConfig(name));
      expect(parameterCount(m.config)).toBe(m.parameterCount());
      m.dispose();
    }
    expect(parameterCount(presetConfig('130m'))).toBe(129_135_360);
  });

  test('the HTML report draws its charts in headless Chromium', () => {
    const chromium = ensureChromium();
    const dir = mkdtempSync(`${tmpdir()}/bench-html-`);
    // A probe script appended for the test only: the report itself has no scripts.
    const probe = `<script>
      const charts = [...document.querySelectorAll('svg[data-chart]')].map((svg) => ({
        id: svg.dataset.chart,
        width: svg.getBoundingClientRect().width,
        bars: [...svg.querySelectorAll('rect.bar')].filter((r) => r.getBBox().width > 0).length,
        lines: [...svg.querySelectorAll('polyline.line')].filter((l) => l.points.length >= 2 && l.getBBox().width > 0).length,
      }));
      document.body.setAttribute('data-probe', JSON.stringify(charts));
    </script>`;
    writeFileSync(`${dir}/report.html`, renderHtml(report).replace('</body>', `${probe}</body>`));
    const dom = execFileSync(chromium, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run', `--user-data-dir=${dir}/profile`, '--dump-dom', `file://${dir}/report.html`], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] });
    const json = /data-probe="([^"]*)"/.exec(dom)![1].replace(/&quot;/g, '"');
    const charts = JSON.parse(json) as { id: string; width: number; bars: number; lines: number }[];
    expect(charts.map((c) => c.id)).toEqual(['train-tokens', 'train-memory', 'inference-tokens', 'scaling-tokens', 'scaling-memory']);
    expect(charts.every((c) => c.width > 100)).toBe(true);
    expect(charts.find((c) => c.id === 'train-tokens')!.bars).toBe(6);
    expect(charts.find((c) => c.id === 'inference-tokens')!.bars).toBe(3);
    expect(charts.find((c) => c.id === 'scaling-tokens')!.lines).toBe(2);
  }, 700_000);

  test('main writes report.json, report.md and report.html', async () => {
    const out = mkdtempSync(`${tmpdir()}/bench-out-`);
    const code = await main([...FAST, '--modes', 'full-fp32,decode', '--scaling-lengths', 'none', '--out', out, '--json']);
    expect(code).toBe(0);
    const json = JSON.parse(readFileSync(`${out}/report.json`, 'utf8')) as BenchReport;
    expect(json.training).toHaveLength(1);
    expect(readFileSync(`${out}/report.md`, 'utf8')).toMatch(/\| full-fp32 \|/);
    expect(readFileSync(`${out}/report.html`, 'utf8')).toMatch(/data-chart="train-tokens"/);
  }, 60_000);
});

describe('bad input', () => {
  test('unknown preset, mode and backend list the valid ones', () => {
    expect(() => parseBenchArgs(['--preset', '7b'])).toThrow('Unknown preset "7b"; valid presets: tiny, 130m, 370m, 790m, 1.4b, 2.8b.');
    expect(() => parseBenchArgs(['--modes', 'full-fp64'])).toThrow(/Unknown mode "full-fp64"; valid modes: full-fp32, full-bf16/);
    expect(() => parseBenchArgs(['--backend', 'tpu'])).toThrow('Unknown backend "tpu"; valid backends: auto, cpu, wasm, cuda.');
    expect(() => parseBenchArgs(['--steps', '0'])).toThrow('--steps must be an integer ≥ 1, got "0".');
  });

  test('a size that does not fit reports the estimate and the limit instead of crashing', async () => {
    await expect(runBench(parseBenchArgs(['--backend', 'cpu', '--preset', '2.8b', '--batch-size', '64', '--seq-len', '4096', '--quiet'])!)).rejects.toThrow(
      /needs about \d+\.\d GiB for full fp32 training, more than the \d+\.\d GiB available on cpu; lower --batch-size or --seq-len/,
    );
  });
});

describe('modes start from the same weights', () => {
  test('two full-fp32 runs in one bench report the same final loss', async () => {
    const r = await runBench(parseBenchArgs([...FAST, '--modes', 'full-fp32,full-fp32', '--scaling-lengths', 'none'])!);
    expect(r.training).toHaveLength(2);
    expect(r.training[1].finalLoss).toBe(r.training[0].finalLoss);
  }, 60_000);
});
