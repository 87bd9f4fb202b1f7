import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { run } from '@mamba-ts/cli';

const TINY = fileURLToPath(new URL('../../../packages/ssm/test/fixtures/mamba-tiny', import.meta.url));
const fixtureGenerate = JSON.parse(readFileSync(`${TINY}/generate.json`, 'utf8'));

/** Runs the CLI in-process and captures what it prints. */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const log = vi.spyOn(console, 'log').mockImplementation((...a) => void (out += `${a.join(' ')}\n`));
  const error = vi.spyOn(console, 'error').mockImplementation((...a) => void (err += `${a.join(' ')}\n`));
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  try {
    return { code: await run(argv), out, err };
  } finally {
    log.mockRestore();
    error.mockRestore();
    write.mockRestore();
  }
}

afterEach(() => vi.restoreAllMocks());

describe('mamba-ts generate', () => {
  test('--json prints the new ids (equal to transformers greedy) and their text', async () => {
    const r = await cli('generate', '--model', TINY, '--ids', fixtureGenerate.prompt_ids.join(','), '--greedy', '--max-new-tokens', '8', '--stop', '1000', '--json', '--backend', 'cpu');
    expect(r.err).toBe('');
    const parsed = JSON.parse(r.out);
    expect(parsed.ids).toEqual(fixtureGenerate.new_ids);
    expect(typeof parsed.text).toBe('string');
  });

  test('--prompt is encoded with tokenizer.json', async () => {
    const r = await cli('generate', '--model', TINY, '--prompt', 'Hello world', '--greedy', '--max-new-tokens', '3', '--json', '--backend', 'cpu');
    expect(JSON.parse(r.out).ids).toHaveLength(3);
  });

  test('bad input gets one sentence and a non-zero exit code', async () => {
    expect(await cli('generate', '--model', TINY, '--ids', '1,999', '--backend', 'cpu')).toMatchObject({
      code: 2, err: 'mamba-ts generate: Token id 999 at position 1 is outside the vocabulary [0, 504).\n',
    });
    expect((await cli('generate', '--model', TINY, '--backend', 'cpu')).err).toMatch(/give exactly one of --prompt or --ids/);
    expect((await cli('generate', '--model', TINY, '--ids', '1', '--backend', 'tpu')).err).toMatch(/Unknown backend "tpu"; valid backends: auto, cpu, wasm, cuda/);
    expect((await cli('generate', '--model', TINY, '--ids', '1', '--dtype', 'f64', '--backend', 'cpu')).err).toMatch(/unknown dtype "f64"/);
    expect((await cli('generate', '--bogus')).err).toMatch(/Unknown option '--bogus'/);
    expect((await cli('generate', '--model', '/nonexistent', '--ids', '1', '--backend', 'cpu')).err).toMatch(/\/nonexistent\/config.json: file not found/);
    expect((await cli('nope')).err).toMatch(/unknown command "nope"; commands: generate, logits/);
  });

  test('--help prints the options', async () => {
    const r = await cli('generate', '--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/--max-new-tokens N/);
  });
});

describe('mamba-ts logits', () => {
  test('writes {shape, logits} equal to the reference forward', async () => {
    const out = `${mkdtempSync(`${tmpdir()}/logits-`)}/l.json`;
    const r = await cli('logits', '--model', TINY, '--ids', '3,4,5', '--out', out, '--backend', 'cpu');
    expect(r.code).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    expect(json.shape).toEqual([3, 504]);
    expect(json.logits).toHaveLength(3);
    expect(json.logits[2]).toHaveLength(504);
    expect(json.logits.flat().every(Number.isFinite)).toBe(true);
  });
});

describe('GPT-NeoX checkpoints dispatch on model_type', () => {
  const NEOX = fileURLToPath(new URL('../../../packages/transformer/test/fixtures/neox-tiny', import.meta.url));
  const neoxGenerate = JSON.parse(readFileSync(`${NEOX}/generate.json`, 'utf8'));
  test('generate --greedy equals transformers on neox-tiny', async () => {
    const r = await cli('generate', '--model', NEOX, '--ids', neoxGenerate.prompt_ids.join(','), '--greedy', '--max-new-tokens', String(neoxGenerate.new_ids.length), '--stop', '100000', '--json', '--backend', 'cpu');
    expect(r.err).toBe('');
    expect(JSON.parse(r.out).ids).toEqual(neoxGenerate.new_ids);
  });
});

describe('mamba-ts eval and eval-compare', () => {
  const DATA = fileURLToPath(new URL('../../../packages/eval/test/data', import.meta.url));
  const NEOX = fileURLToPath(new URL('../../../packages/transformer/test/fixtures/neox-tiny', import.meta.url));
  test('several shot counts write one file each plus the ICL report; eval-compare divides the gains', async () => {
    const dir = mkdtempSync(`${tmpdir()}/eval-`);
    const common = ['--tasks', 'piqa,arc_easy', '--shots', '0,1', '--data-dir', DATA, '--backend', 'cpu', '--bootstrap-iters', '10', '--quiet'];
    const a = await cli('eval', '--model', TINY, ...common, '--out', `${dir}/mamba.json`, '--log-samples', `${dir}/samples`);
    expect(a.err).toBe('');
    expect(a.code).toBe(0);
    const b = await cli('eval', '--model', NEOX, ...common, '--out', `${dir}/neox.json`);
    expect(b.code).toBe(0);
    const zero = JSON.parse(readFileSync(`${dir}/mamba.0shot.json`, 'utf8'));
    expect(zero.results.piqa['acc,none']).toBeGreaterThanOrEqual(0);
    expect(zero['n-shot'].piqa).toBe(0);
    expect(JSON.parse(readFileSync(`${dir}/mamba.json`, 'utf8')).byShot['1'].results.arc_easy).toBeDefined();
    expect(readFileSync(`${dir}/samples/1shot/piqa.jsonl`, 'utf8').split('\n').filter(Boolean).length).toBeGreaterThan(0);
    expect(a.out).toMatch(/In-context learning gain/);
    const cmp = await cli('eval-compare', `${dir}/mamba.json`, `${dir}/neox.json`);
    expect(cmp.code).toBe(0);
    expect(cmp.out).toMatch(/\|piqa\|1\|/);
  }, 120_000);

  test('unknown tasks and missing files are one sentence', async () => {
    expect((await cli('eval', '--model', TINY, '--tasks', 'squad', '--data-dir', '/x', '--out', '/tmp/x.json')).err).toMatch(/Unknown task "squad"; known tasks: .*piqa/);
    expect((await cli('eval-compare', '/nope/a.json', '/nope/b.json')).err).toMatch(/\/nope\/a.json: file not found/);
  });
});

describe('mamba-ts finetune, stability and --adapter', () => {
  const PEFT = fileURLToPath(new URL('../../../packages/peft/test/fixtures', import.meta.url));

  test('logits --adapter match peft on the x_proj-only fixture adapter', async () => {
    const { readSafetensors } = await import('@mamba-ts/tensor');
    const ref = readSafetensors(new Uint8Array(readFileSync(`${PEFT}/lora-xproj/reference.safetensors`)));
    const ids = Array.from(ref.get('input_ids').data as Int32Array).slice(0, 9);
    const want = (ref.get('logits').data as Float32Array).subarray(0, 9 * 504);
    const out = `${mkdtempSync(`${tmpdir()}/adapter-`)}/l.json`;
    const r = await cli('logits', '--model', TINY, '--ids', ids.join(','), '--adapter', `${PEFT}/lora-xproj`, '--out', out, '--backend', 'cpu');
    expect(r.err).toBe('');
    const got = (JSON.parse(readFileSync(out, 'utf8')).logits as number[][]).flat();
    let worst = 0;
    got.forEach((g, i) => (worst = Math.max(worst, Math.abs(g - want[i]))));
    expect(worst).toBeLessThan(1e-4);
  });

  test('a LoRA fine-tune writes an adapter that generate and stability then use', async () => {
    const dir = mkdtempSync(`${tmpdir()}/ft-`);
    const { writeFileSync } = await import('node:fs');
    const lines = Array.from({ length: 12 }, (_, i) => JSON.stringify({ text: `The number ${i} comes after ${i - 1} and before ${i + 1}.` }));
    writeFileSync(`${dir}/data.jsonl`, `${lines.join('\n')}\n`);
    const ft = await cli('finetune', '--model', TINY, '--data', `${dir}/data.jsonl`, '--out', `${dir}/adapter`, '--mode', 'lora', '--precision', 'bf16',
      '--steps', '3', '--batch-size', '2', '--seq-len', '16', '--rank', '2', '--quiet', '--backend', 'cpu');
    expect(ft.err).toBe('');
    const summary = JSON.parse(ft.out.trim().split('\n').at(-1)!);
    expect(summary).toMatchObject({ mode: 'lora', precision: 'bf16', steps: 3 });
    expect(readFileSync(`${dir}/adapter/adapter_config.json`, 'utf8')).toMatch(/"r": 2/);
    const gen = await cli('generate', '--model', TINY, '--ids', '5,6,7', '--adapter', `${dir}/adapter`, '--greedy', '--max-new-tokens', '4', '--json', '--backend', 'cpu');
    expect(JSON.parse(gen.out).ids).toHaveLength(4);
    const st = await cli('stability', '--model', TINY, '--data', `${dir}/data.jsonl`, '--out', `${dir}/stability.json`, '--adapter', `${dir}/adapter`,
      '--seq-len', '12', '--sequences', '2', '--backend', 'cpu');
    expect(st.err).toBe('');
    const report = JSON.parse(readFileSync(`${dir}/stability.json`, 'utf8'));
    expect(report.divergence.map((d: { precision: string }) => d.precision)).toEqual(['bf16', 'f16']);
    expect(st.out).toMatch(/bf16: max \|Δlogit\|/);
  }, 120_000);

  test('bad finetune input is one sentence', async () => {
    expect((await cli('finetune', '--model', TINY, '--data', '/nope.jsonl', '--out', '/tmp/x', '--mode', 'half')).err).toMatch(/--mode must be full or lora, got "half"/);
    expect((await cli('generate', '--model', TINY, '--ids', '1', '--adapter', '/nope', '--backend', 'cpu')).err).toMatch(/\/nope/);
  });
});

describe('backends', () => {
  test('generate on wasm equals transformers greedy output', async () => {
    const { setBackend } = await import('@mamba-ts/tensor');
    try {
      const r = await cli('generate', '--model', TINY, '--ids', fixtureGenerate.prompt_ids.join(','), '--greedy', '--max-new-tokens', '8', '--stop', '1000', '--json', '--backend', 'wasm');
      expect(r.err).toBe('');
      expect(JSON.parse(r.out).ids).toEqual(fixtureGenerate.new_ids);
    } finally {
      setBackend('cpu');
    }
  });

  test('auto picks cuda where it runs, else wasm', async () => {
    const { useBackend } = await import('@mamba-ts/cli');
    const { isAvailable } = await import('@mamba-ts/backend-cuda');
    const { setBackend } = await import('@mamba-ts/tensor');
    try {
      expect(await useBackend('auto')).toBe(isAvailable() ? 'cuda' : 'wasm');
      if (!isAvailable()) await expect(useBackend('cuda')).rejects.toThrow(/Backend "cuda" is not available \(cuda: /);
    } finally {
      setBackend('cpu');
    }
  });
});
