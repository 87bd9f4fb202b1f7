import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { fromPretrained } from '@mamba-ts/ssm';
import { loadAdapter, runFinetune, type FinetuneOptions } from '@mamba-ts/peft';
import { MODEL_DIR, tempDir } from './helpers.js';

const SENTENCES = [
  'the cat sat on the mat.',
  'a dog ran in the park.',
  'the sun is hot and bright.',
  'we read a book at home.',
  'the bird sang a song.',
  'she went to the store.',
  'he likes to play music.',
  'the tree is tall and green.',
];

function writeData(dir: string, lines: readonly string[], name = 'train.jsonl'): string {
  const path = join(dir, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

const textLines = SENTENCES.map((text) => JSON.stringify({ text }));

function base(dir: string, data: string, extra: Partial<FinetuneOptions> = {}): FinetuneOptions {
  return {
    model: MODEL_DIR, data, out: join(dir, 'out'), evalData: data, steps: 6, batchSize: 8, seqLen: 16, packing: false, truncate: true,
    quiet: true, checkpointEvery: 0, warn: () => {}, ...extra,
  };
}

describe('a short fine-tune on mamba-tiny lowers the loss', () => {
  test.each([
    ['full', 'fp32', 3e-3],
    ['full', 'bf16', 3e-3],
    ['lora', 'fp32', 2e-2],
    ['lora', 'bf16', 2e-2],
  ] as const)('%s / %s', async (mode, precision, lr) => {
    const dir = tempDir();
    const data = writeData(dir, textLines);
    const r = await runFinetune(base(dir, data, { mode, precision, lr }));
    expect(r.losses).toHaveLength(6);
    expect(r.losses.every(Number.isFinite)).toBe(true);
    // step 1 saw every row (batch 8 = the whole set), as does the final evaluation
    expect(r.evalLoss!).toBeLessThan(r.losses[0] - 0.1);
    if (mode === 'lora') {
      expect(existsSync(join(r.out, 'adapter_config.json'))).toBe(true);
      expect(r.trainable.trainable).toBeGreaterThan(0);
      expect(r.trainable.trainable).toBeLessThan(r.trainable.total / 2);
      const { model } = await fromPretrained(MODEL_DIR, { warn: () => {}, tokenizer: false });
      await loadAdapter(model, r.out);
      model.dispose();
    } else {
      expect(readdirSync(r.out).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
      const { model } = await fromPretrained(r.out, { warn: () => {} });
      model.dispose();
      expect(r.trainable.percent).toBe(100);
    }
    const metrics = readFileSync(r.metricsLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.filter((m) => m.type === 'train').map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(metrics.at(-1)).toMatchObject({ type: 'done', step: 6 });
  });
});

test('f16 with loss scaling survives a forced overflow: skips, backs off, then trains', async () => {
  const dir = tempDir();
  const data = writeData(dir, textLines);
  // 2^40 makes the f16 backward overflow for sure; the scaler must back off until the gradients are finite.
  const r = await runFinetune(base(dir, data, { mode: 'lora', precision: 'f16', lr: 2e-2, steps: 40, lossScale: { initScale: 2 ** 40, growthInterval: 4 } }));
  expect(r.skippedSteps).toBeGreaterThan(0);
  expect(r.skippedSteps).toBeLessThan(35);
  expect(r.lossScale!).toBeLessThan(2 ** 40);
  const metrics = readFileSync(r.metricsLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.type === 'train');
  expect(metrics[0]).toMatchObject({ skipped: true, loss_scale: 2 ** 40 });
  expect(metrics.some((m) => m.scale_growths > 0)).toBe(true);
  expect(metrics.at(-1).skipped_total).toBe(r.skippedSteps);
  expect(r.evalLoss!).toBeLessThan(r.losses[0] - 0.1);
});

describe('checkpoints', () => {
  test('kill and resume gives the same final weights, bit for bit (LoRA with dropout, grad accumulation)', async () => {
    const dir = tempDir();
    const lines = [...textLines, ...SENTENCES.map((s) => JSON.stringify({ instruction: 'repeat', input: s, output: s }))];
    const data = writeData(dir, lines);
    const opts = (name: string): FinetuneOptions => ({
      ...base(dir, data, { out: join(dir, name), mode: 'lora', loraDropout: 0.1, batchSize: 3, gradAccum: 2, steps: 7, lr: 1e-2, seqLen: 64, packing: true }),
      checkpointEvery: 2, evalData: undefined,
    });
    const straight = await runFinetune(opts('straight'));
    await expect(
      runFinetune({
        ...opts('killed'),
        onStep: ({ step }) => {
          if (step === 5) throw new Error('simulated kill');
        },
      }),
    ).rejects.toThrow('simulated kill');
    expect(existsSync(join(dir, 'killed'))).toBe(false);
    const resumed = await runFinetune({ ...opts('killed'), resume: true });
    expect(resumed.startStep).toBe(4);
    expect(resumed.losses).toEqual(straight.losses.slice(4));
    const a = readFileSync(join(straight.out, 'adapter_model.safetensors'));
    const b = readFileSync(join(resumed.out, 'adapter_model.safetensors'));
    expect(Buffer.compare(a, b)).toBe(0);
    const log = readFileSync(resumed.metricsLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.type === 'train');
    expect(log.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  test('full mode in f16: resume restores weights, optimizer moments and the loss scale', async () => {
    const dir = tempDir();
    const data = writeData(dir, textLines);
    const opts = (name: string): FinetuneOptions => ({
      ...base(dir, data, { out: join(dir, name), mode: 'full', precision: 'f16', batchSize: 4, steps: 4, lr: 1e-3, lossScale: { initScale: 2 ** 20, growthInterval: 2 } }),
      checkpointEvery: 1, evalData: undefined,
    });
    const straight = await runFinetune(opts('a'));
    await expect(runFinetune({ ...opts('b'), onStep: ({ step }) => { if (step === 3) throw new Error('kill'); } })).rejects.toThrow('kill');
    const resumed = await runFinetune({ ...opts('b'), resume: true });
    expect(resumed.startStep).toBe(3);
    expect(resumed.lossScale).toBe(straight.lossScale);
    expect(Buffer.compare(readFileSync(join(straight.out, 'model.safetensors')), readFileSync(join(resumed.out, 'model.safetensors')))).toBe(0);
  });

  test('resume with changed options is refused, naming the option', async () => {
    const dir = tempDir();
    const data = writeData(dir, textLines);
    const opts = { ...base(dir, data, { steps: 3, batchSize: 4 }), checkpointEvery: 1 };
    await expect(runFinetune({ ...opts, onStep: ({ step }) => { if (step === 2) throw new Error('kill'); } })).rejects.toThrow('kill');
    await expect(runFinetune({ ...opts, lr: 0.5, resume: true })).rejects.toThrow(/option "lr" was 0\.002 in the checkpointed run, now 0\.5/);
    await expect(runFinetune(opts)).rejects.toThrow(/a checkpoint of an earlier run is there; pass --resume/);
  });
});

describe('bad input', () => {
  test('a malformed line stops the run with its line number, or is skipped with a warning', async () => {
    const dir = tempDir();
    const data = writeData(dir, [textLines[0], '{"text": 3}', textLines[1], 'not json', textLines[2]]);
    await expect(runFinetune(base(dir, data))).rejects.toThrow(/train\.jsonl:2: "text" must be a string/);
    const warnings: string[] = [];
    const r = await runFinetune({ ...base(dir, data, { steps: 1 }), onBadLine: 'skip', warn: (m) => warnings.push(m) });
    expect(r.losses).toHaveLength(1);
    expect(warnings.filter((w) => /train\.jsonl:(2|4): skipped/.test(w))).toHaveLength(2);
  });

  test('an empty dataset is refused', async () => {
    const dir = tempDir();
    const data = writeData(dir, ['', '   ']);
    await expect(runFinetune(base(dir, data))).rejects.toThrow(/train\.jsonl: no training records; the dataset is empty/);
    const empty = writeData(dir, [JSON.stringify({ text: '' })], 'empty.jsonl');
    await expect(runFinetune({ ...base(dir, empty), evalData: undefined })).rejects.toThrow(/no token carries a loss/);
  });

  test('a sequence longer than seq-len is refused without packing or truncation', async () => {
    const dir = tempDir();
    const data = writeData(dir, [textLines[0], JSON.stringify({ text: SENTENCES.join(' ') })]);
    await expect(runFinetune({ ...base(dir, data), truncate: false })).rejects.toThrow(
      /train\.jsonl:2: the example is \d+ tokens, longer than seq-len 16; raise --seq-len, use packing, or allow --truncate/,
    );
  });

  test('unknown LoRA targets, rank 0 and an existing --out are refused before training', async () => {
    const dir = tempDir();
    const data = writeData(dir, textLines);
    await expect(runFinetune(base(dir, data, { loraTargets: ['q_proj'] }))).rejects.toThrow(/unknown LoRA target "q_proj"; available module paths/);
    await expect(runFinetune(base(dir, data, { rank: 0 }))).rejects.toThrow(/--rank must be a positive integer, got 0/);
    await expect(runFinetune(base(dir, data, { out: dir }))).rejects.toThrow(/already exists/);
  });
});

test('instruction records put the loss on the response only', async () => {
  const { tokenizeRecord } = await import('@mamba-ts/peft');
  const tok = { encode: (s: string) => [...s].map((c) => c.charCodeAt(0) % 50) };
  const ex = tokenizeRecord({ line: 1, record: { kind: 'instruction', instruction: 'say hi', input: '', output: 'hi' } }, tok, 0);
  const prompt = ex.ids.length - 3;
  expect(ex.labels.slice(0, prompt).every((l) => l === -100)).toBe(true);
  expect(ex.labels.slice(prompt)).toEqual([...tok.encode('hi'), 0]);
  T.engine(); // keeps the import used
});
