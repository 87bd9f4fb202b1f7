import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodeHalf } from '@mamba-ts/tensor';
import { writeSafetensorsFile } from '@mamba-ts/tensor/node';
import { loadGPTNeoX, TransformerLM, type GPTNeoXModel } from '@mamba-ts/transformer';
import { ids, maxAbsDiff, tinyModel } from './helpers/tiny.js';

const configJson = {
  model_type: 'gpt_neox',
  vocab_size: 37,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 24,
  rotary_pct: 0.5,
  rotary_emb_base: 10000,
  max_position_embeddings: 32,
  layer_norm_eps: 1e-5,
  use_parallel_residual: true,
  hidden_act: 'gelu',
  tie_word_embeddings: false,
  eos_token_id: null,
};

let root: string;
let source: GPTNeoXModel;

type Entry = { dtype: 'F32' | 'BF16'; shape: number[]; data: Float32Array | Uint16Array };

function weights(model: GPTNeoXModel, dtype: 'F32' | 'BF16' = 'F32'): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  for (const [name, p] of model.namedParameters()) {
    const values = p.value.toFloat32Sync();
    out[name] = { dtype, shape: [...p.shape], data: dtype === 'F32' ? values : encodeHalf(values, 'bf16') };
  }
  return out;
}

async function checkpoint(name: string, tensors: Record<string, Entry>, config: object = configJson): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir);
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors);
  return dir;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'neox-load-'));
  source = tinyModel({}, 21);
});

afterAll(async () => {
  source.dispose();
  await rm(root, { recursive: true, force: true });
});

describe('loadGPTNeoX', () => {
  test('round-trips weights (f32 file → f32 and bf16 models), ignoring old buffers', async () => {
    const tensors = weights(source);
    tensors['gpt_neox.layers.0.attention.rotary_emb.inv_freq'] = { dtype: 'F32', shape: [4], data: new Float32Array(4) };
    const dir = await checkpoint('ok', tensors);
    const model = await loadGPTNeoX(dir);
    const x = ids([[1, 5, 9, 30]]);
    expect(maxAbsDiff(model.forward(x).toFloat32Sync(), source.forward(x).toFloat32Sync())).toBe(0);
    const half = await loadGPTNeoX(dir, { dtype: 'bf16' });
    expect(half.getParameter('embed_out.weight')!.value.dtype).toBe('bf16');
    expect(maxAbsDiff(half.forward(x).toFloat32Sync(), source.forward(x).toFloat32Sync())).toBeLessThan(0.15);
    model.dispose();
    half.dispose();
  });

  test('reads bf16 files into f32 models', async () => {
    const dir = await checkpoint('bf16', weights(source, 'BF16'));
    const model = await loadGPTNeoX(dir);
    const p = model.getParameter('gpt_neox.layers.1.mlp.dense_h_to_4h.weight')!.value;
    expect(p.dtype).toBe('f32');
    expect(maxAbsDiff(p.toFloat32Sync(), source.getParameter('gpt_neox.layers.1.mlp.dense_h_to_4h.weight')!.value.toFloat32Sync())).toBeLessThan(1e-2);
    model.dispose();
  });

  test('a missing tensor is named', async () => {
    const tensors = weights(source);
    delete tensors['gpt_neox.layers.1.attention.dense.bias'];
    const dir = await checkpoint('missing', tensors);
    await expect(loadGPTNeoX(dir)).rejects.toThrow(/tensor "gpt_neox.layers.1.attention.dense.bias" \(shape \[16\]\) is missing/);
  });

  test('a wrong shape names the tensor and both shapes', async () => {
    const dir = await checkpoint('shape', weights(source), { ...configJson, intermediate_size: 32 });
    await expect(loadGPTNeoX(dir)).rejects.toThrow(/tensor "gpt_neox.layers.0.mlp.dense_h_to_4h.weight" has shape \[24, 16\], but config.json implies \[32, 16\]/);
  });

  test('a bad directory or config is reported with its path', async () => {
    await expect(loadGPTNeoX(join(root, 'nope'))).rejects.toThrow(/nope\/config.json: cannot read the model config/);
    const dir = await checkpoint('badcfg', weights(source), { ...configJson, num_attention_heads: 3 });
    await expect(loadGPTNeoX(dir)).rejects.toThrow(/badcfg\/config.json: hidden_size 16 is not divisible by num_attention_heads 3/);
  });

  test('TransformerLM without tokenizer.json works on ids and explains text calls', async () => {
    const lm = await TransformerLM.fromPretrained(join(root, 'ok'));
    expect(lm.tokenizer).toBeNull();
    expect(lm.maxLength).toBe(32);
    const { ids: out, text } = await lm.generate([1, 2, 3], { maxNewTokens: 3 });
    expect(out).toHaveLength(3);
    expect(text).toBeNull();
    await expect(lm.generate('hello')).rejects.toThrow(/has no tokenizer; put tokenizer.json/);
    lm.dispose();
  });
});
