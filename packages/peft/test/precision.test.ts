import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { fromPretrained } from '@mamba-ts/ssm';
import { LossScaler, applyPrecision, parsePrecision, runFinetune } from '@mamba-ts/peft';
import { MODEL_DIR, loadTiny, tempDir } from './helpers.js';

describe('LossScaler', () => {
  test('backs off on overflow, grows after growthInterval good steps, counts everything', () => {
    const s = new LossScaler({ initScale: 1024, growthInterval: 2 });
    expect(s.update(false)).toBe(false);
    expect(s.scale).toBe(512);
    expect(s.update(true)).toBe(true);
    expect(s.scale).toBe(512);
    expect(s.update(true)).toBe(true);
    expect(s.scale).toBe(1024);
    expect(s.update(true)).toBe(true);
    expect(s.update(false)).toBe(false); // resets the good-step run
    expect(s.update(true)).toBe(true);
    expect(s.scale).toBe(512);
    expect(s.state()).toEqual({ scale: 512, goodSteps: 1, skipped: 2, growths: 1, backoffs: 2 });
    const t = new LossScaler();
    t.restore(s.state());
    expect(t.state()).toEqual(s.state());
  });

  test('never goes below minScale', () => {
    const s = new LossScaler({ initScale: 2, minScale: 1 });
    s.update(false);
    s.update(false);
    expect(s.scale).toBe(1);
  });
});

describe('precision policy', () => {
  test('bf16/f16 switch the compute dtype and keep f32 master weights', async () => {
    const model = await loadTiny();
    applyPrecision(model, 'bf16');
    expect(model.computeDType).toBe('bf16');
    expect([...model.namedParameters()].every(([, p]) => p.value.dtype === 'f32')).toBe(true);
    applyPrecision(model, parsePrecision('fp16'));
    expect(model.computeDType).toBe('f16');
    model.dispose();
  });

  test('low-precision master weights and unknown names are refused', async () => {
    const { model } = await fromPretrained(MODEL_DIR, { dtype: 'bf16', warn: () => {}, tokenizer: false });
    expect(() => applyPrecision(model, 'bf16')).toThrow(/parameter "backbone\.embeddings\.weight" is bf16; load the model with dtype f32/);
    expect(() => parsePrecision('int8')).toThrow(/must be fp32, bf16 or f16, got "int8"/);
    model.dispose();
  });
});

test('a fine-tune leaves no live tensors behind', async () => {
  const dir = tempDir();
  const data = join(dir, 'd.jsonl');
  writeFileSync(data, ['the cat sat on the mat.', 'the dog ran.'].map((text) => JSON.stringify({ text })).join('\n'));
  const before = T.memory().liveTensors;
  await runFinetune({ model: MODEL_DIR, data, out: join(dir, 'out'), steps: 2, batchSize: 2, seqLen: 16, gradAccum: 2, quiet: true, evalData: data, checkpointEvery: 1, loraDropout: 0.1 });
  expect(T.memory().liveTensors).toBe(before);
});
