import { cpSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { serializeSafetensors, readSafetensors } from '@mamba-ts/tensor';
import { fromPretrained, generate, parseMambaConfig, presetConfig } from '@mamba-ts/ssm';
import { FIXTURES } from './helpers.js';

const dirs: string[] = [];
function copyFixture(name = 'mamba-tiny'): string {
  const dir = mkdtempSync(`${tmpdir()}/mamba-bad-`);
  cpSync(`${FIXTURES}${name}`, dir, { recursive: true });
  dirs.push(dir);
  return dir;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Rewrites model.safetensors through `edit` on its (name → entry) map. */
function editWeights(dir: string, edit: (m: Map<string, { dtype: string; shape: number[]; data: ArrayBufferView }>) => void): void {
  const file = readSafetensors(new Uint8Array(readFileSync(`${dir}/model.safetensors`)));
  const m = new Map(file.names().map((n) => [n, file.get(n)] as const));
  edit(m as never);
  writeFileSync(`${dir}/model.safetensors`, serializeSafetensors(m as never, { format: 'pt' }));
}

describe('config.json', () => {
  test('missing file, bad JSON, missing and malformed fields name the file and the field', async () => {
    const dir = copyFixture();
    rmSync(`${dir}/config.json`);
    await expect(fromPretrained(dir)).rejects.toThrow(`${dir}/config.json: file not found; a model directory needs config.json.`);
    writeFileSync(`${dir}/config.json`, '{"hidden_size": 16,');
    await expect(fromPretrained(dir)).rejects.toThrow(`${dir}/config.json: not valid JSON`);
    expect(() => parseMambaConfig({ num_hidden_layers: 2, vocab_size: 8 })).toThrow('config.json: missing field "hidden_size" or "d_model".');
    expect(() => parseMambaConfig({ hidden_size: 16, num_hidden_layers: 2.5, vocab_size: 8 })).toThrow(
      'config.json: field "num_hidden_layers" must be a positive integer, got 2.5.',
    );
    expect(() => parseMambaConfig({ hidden_size: 16, num_hidden_layers: 2, vocab_size: 8, time_step_rank: 'big' })).toThrow(
      /field "time_step_rank" must be a positive integer or "auto"/,
    );
    expect(() => parseMambaConfig({ model_type: 'gpt_neox' })).toThrow(/model_type is "gpt_neox"/);
    expect(() => presetConfig('7b' as never)).toThrow('Unknown preset "7b"; valid presets: tiny, 130m, 370m, 790m, 1.4b, 2.8b.');
  });

  test('both schemas: the original config pads the vocabulary and derives E and R', () => {
    const c = parseMambaConfig({ d_model: 768, n_layer: 24, vocab_size: 50277, ssm_cfg: {}, pad_vocab_size_multiple: 8 });
    expect(c).toMatchObject({ hiddenSize: 768, numLayers: 24, vocabSize: 50280, intermediateSize: 1536, timeStepRank: 48, stateSize: 16, convKernel: 4, useBias: false, useConvBias: true, tieWordEmbeddings: true });
  });
});

describe('checkpoint', () => {
  test('a missing tensor is named with its expected shape', async () => {
    const dir = copyFixture();
    editWeights(dir, (m) => m.delete('backbone.layers.1.mixer.x_proj.weight'));
    await expect(fromPretrained(dir)).rejects.toThrow(
      /missing tensor "backbone.layers.1.mixer.x_proj.weight" \(expected shape \[17, 32\]\)/,
    );
  });

  test('a tensor of the wrong shape is named with expected and found shapes', async () => {
    const dir = copyFixture();
    editWeights(dir, (m) => m.set('backbone.norm_f.weight', { dtype: 'F32', shape: [15], data: new Float32Array(15) }));
    await expect(fromPretrained(dir)).rejects.toThrow(/tensor "backbone.norm_f.weight" has shape \[15\], expected \[16\] from config.json/);
  });

  test('unexpected extra tensors are reported as a warning and the model still loads', async () => {
    const dir = copyFixture();
    editWeights(dir, (m) => m.set('backbone.extra.weight', { dtype: 'F32', shape: [2], data: new Float32Array(2) }));
    const warnings: string[] = [];
    const { model } = await fromPretrained(dir, { warn: (w) => warnings.push(w) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/ignoring 1 unexpected tensor\(s\): backbone.extra.weight/);
    model.dispose();
  });

  test('a missing weights file is reported', async () => {
    const dir = copyFixture();
    rmSync(`${dir}/model.safetensors`);
    await expect(fromPretrained(dir)).rejects.toThrow(/cannot open the weights/);
  });
});

describe('token ids', () => {
  test('ids outside the vocabulary and empty prompts are refused', async () => {
    const { model } = await fromPretrained(`${FIXTURES}mamba-tiny`);
    await expect(generate(model, [[1, 504]])).rejects.toThrow('Token id 504 at position 1 is outside the vocabulary [0, 504).');
    await expect(generate(model, [[]])).rejects.toThrow('The prompt is empty: give at least one token.');
    expect(() => model.forward(T.tensor([1.5], [1, 1]))).toThrow(/must be an i32 tensor of shape \(batch, length\), got f32/);
    await expect(generate(model, [[1]], { temperature: -1 })).rejects.toThrow(/temperature must be a finite number ≥ 0/);
    model.dispose();
  });
});

describe('loading in half precision', () => {
  test.each(['bf16', 'f16'] as const)('%s weights give logits close to f32 and keep A, D, dt bias, norms in f32', async (dtype) => {
    const { model } = await fromPretrained(`${FIXTURES}mamba-tiny`, { dtype });
    const { model: ref } = await fromPretrained(`${FIXTURES}mamba-tiny`);
    expect(model.getParameter('backbone.layers.0.mixer.in_proj.weight')!.value.dtype).toBe(dtype);
    for (const name of ['A_log', 'D', 'dt_proj.bias']) {
      expect(model.getParameter(`backbone.layers.0.mixer.${name}`)!.value.dtype).toBe('f32');
    }
    expect(model.getParameter('backbone.norm_f.weight')!.value.dtype).toBe('f32');
    const ids = T.tensor([5, 9, 100, 7, 42, 3], [1, 6], 'i32');
    const a = T.tidy(() => model.forward(ids).logits).toFloat32Sync();
    const b = T.tidy(() => ref.forward(ids).logits).toFloat32Sync();
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    expect(maxDiff).toBeGreaterThan(0);
    expect(maxDiff).toBeLessThan(dtype === 'bf16' ? 0.25 : 0.05);
    model.dispose();
    ref.dispose();
  });
});
