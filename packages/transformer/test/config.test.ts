import { describe, expect, test } from 'vitest';
import { headSize, parseGPTNeoXConfig, rotaryDims } from '@mamba-ts/transformer';

const pythia70m = {
  architectures: ['GPTNeoXForCausalLM'],
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'gelu',
  hidden_size: 512,
  initializer_range: 0.02,
  intermediate_size: 2048,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 2048,
  model_type: 'gpt_neox',
  num_attention_heads: 8,
  num_hidden_layers: 6,
  rotary_emb_base: 10000,
  rotary_pct: 0.25,
  tie_word_embeddings: false,
  use_parallel_residual: true,
  vocab_size: 50304,
};

describe('parseGPTNeoXConfig', () => {
  test('reads a Pythia-70m config.json', () => {
    const c = parseGPTNeoXConfig(pythia70m);
    expect(c).toMatchObject({ hiddenSize: 512, numHiddenLayers: 6, numAttentionHeads: 8, vocabSize: 50304, rotaryPct: 0.25, useParallelResidual: true, eosTokenId: 0 });
    expect(headSize(c)).toBe(64);
    expect(rotaryDims(c)).toBe(16);
  });

  test('accepts the newer rotary field names', () => {
    const { rotary_pct: _p, rotary_emb_base: _b, ...rest } = pythia70m;
    const c = parseGPTNeoXConfig({ ...rest, partial_rotary_factor: 0.5, rope_theta: 500 });
    expect([c.rotaryPct, c.rotaryEmbBase]).toEqual([0.5, 500]);
    const d = parseGPTNeoXConfig({ ...rest, rope_parameters: { rope_type: 'default', rope_theta: 123, partial_rotary_factor: 1 } });
    expect([d.rotaryPct, d.rotaryEmbBase]).toEqual([1, 123]);
  });

  test('bad input names the field', () => {
    expect(() => parseGPTNeoXConfig({ ...pythia70m, hidden_size: 500 }, 'x/config.json')).toThrow(/x\/config.json: hidden_size 500 is not divisible by num_attention_heads 8/);
    expect(() => parseGPTNeoXConfig({ ...pythia70m, num_hidden_layers: 0 })).toThrow(/num_hidden_layers must be a positive integer/);
    expect(() => parseGPTNeoXConfig({ ...pythia70m, hidden_act: 'swish' })).toThrow(/hidden_act "swish" is not supported/);
    expect(() => parseGPTNeoXConfig({ ...pythia70m, model_type: 'mamba' })).toThrow(/model_type is "mamba"/);
    expect(() => parseGPTNeoXConfig({ ...pythia70m, tie_word_embeddings: true })).toThrow(/tie_word_embeddings/);
    expect(() => parseGPTNeoXConfig({ ...pythia70m, rope_scaling: { type: 'linear', factor: 2 } })).toThrow(/rope_scaling/);
    expect(() => parseGPTNeoXConfig({ ...pythia70m, rotary_pct: 0.3 })).toThrow(/rotary dimensions; it must be even/);
    expect(() => parseGPTNeoXConfig([])).toThrow(/expected a JSON object/);
  });
});
