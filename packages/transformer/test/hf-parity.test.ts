/**
 * Parity with Hugging Face transformers on a random-weight GPT-NeoX checkpoint (test/fixtures/neox-tiny, made by
 * tools/fixtures/make_fixtures.py): logits, loss, every parameter's gradient, and greedy generation.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { registerWasmBackend } from '@mamba-ts/backend-wasm';
import { setBackend, tensor, valueAndGrad, type Tensor } from '@mamba-ts/tensor';
import { openCheckpoint, type SafetensorsCheckpoint } from '@mamba-ts/tensor/node';
import { TransformerLM } from '@mamba-ts/transformer';
import { maxAbsDiff } from './helpers/tiny.js';

const dir = fileURLToPath(new URL('./fixtures/neox-tiny', import.meta.url));

let ref: SafetensorsCheckpoint;

async function refValues(name: string): Promise<Float32Array> {
  return (await ref.get(name)).data as Float32Array;
}

beforeAll(async () => {
  ref = await openCheckpoint(`${dir}/reference.safetensors`);
});

afterAll(async () => {
  await ref?.close();
});

describe.each(['cpu', 'wasm'])('neox-tiny vs Hugging Face on the %s backend', (backend) => {
  let lm: TransformerLM;
  let inputIds: Tensor;

  beforeAll(async () => {
    if (backend === 'wasm') await registerWasmBackend();
    setBackend(backend);
    lm = await TransformerLM.fromPretrained(dir);
    const ids = await ref.get('input_ids');
    inputIds = tensor(ids.data as Int32Array, ids.shape, 'i32');
  });

  afterAll(() => {
    lm?.dispose();
    setBackend('cpu');
  });

  test('config', () => {
    expect(lm.config.useParallelResidual).toBe(true);
    expect(lm.config.rotaryPct).toBe(0.25);
    expect(lm.config.hiddenAct).toBe('gelu');
  });

  test('logits within 1e-4', async () => {
    const logits = lm.forward(inputIds);
    expect(logits.shape).toEqual(ref.info('logits').shape);
    expect(maxAbsDiff(await logits.toFloat32(), await refValues('logits'))).toBeLessThan(1e-4);
  });

  test('loss and the gradient of every parameter', async () => {
    const named = [...lm.model.namedParameters()];
    const { value, grads } = valueAndGrad(() => lm.loss(inputIds), named.map(([, p]) => p.value));
    const [expectedLoss] = await refValues('loss');
    expect(Math.abs((await value.toFloat32())[0] - expectedLoss)).toBeLessThan(1e-5);
    const gradNames = ref.names().filter((n) => n.startsWith('grad.'));
    expect(gradNames.sort()).toEqual(named.map(([n]) => `grad.${n}`).sort());
    for (const [k, [name]] of named.entries()) {
      const expected = await refValues(`grad.${name}`);
      const scale = Math.max(1, ...Array.from(expected, Math.abs));
      const diff = maxAbsDiff(await grads[k].toFloat32(), expected);
      expect(diff, `grad of ${name}`).toBeLessThan(1e-4 * scale);
    }
  });

  test('bf16 activations stay near the fp32 logits (HF CPU autocast differs by 0.03)', async () => {
    const logits = lm.forward(inputIds, { dtype: 'bf16' });
    expect(logits.dtype).toBe('bf16');
    expect(maxAbsDiff(await logits.toFloat32(), await refValues('logits'))).toBeLessThan(0.1);
  });

  test('greedy generation ids equal (KV cache)', async () => {
    const { prompt_ids, new_ids } = JSON.parse(await readFile(`${dir}/generate.json`, 'utf8')) as { prompt_ids: number[]; new_ids: number[] };
    const { ids } = await lm.generate(prompt_ids, { maxNewTokens: new_ids.length, eosTokenId: null });
    expect(ids).toEqual(new_ids);
  });

  test('tokenizer round-trips text and generate accepts text', async () => {
    expect(lm.tokenizer).not.toBeNull();
    const text = 'the cat sat on the mat';
    const ids = lm.encode(text);
    expect(ids.length).toBeGreaterThan(0);
    expect(lm.decode(ids)).toBe(text);
    const out = await lm.generate(text, { maxNewTokens: 3, eosTokenId: null });
    expect(out.ids).toHaveLength(3);
    expect(out.text).toBe(lm.decode(out.ids));
  });
});
