/** Activation functions GPT-NeoX checkpoints use (`hidden_act` in config.json). */
export type GPTNeoXActivation = 'gelu' | 'gelu_new' | 'gelu_fast' | 'gelu_pytorch_tanh' | 'relu';

const ACTIVATIONS: readonly GPTNeoXActivation[] = ['gelu', 'gelu_new', 'gelu_fast', 'gelu_pytorch_tanh', 'relu'];

/** The fields of a Hugging Face GPT-NeoX (Pythia) config.json that the model uses, in camelCase. */
export interface GPTNeoXConfig {
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  /** Fraction of each head's dimensions that get rotary position embeddings. */
  rotaryPct: number;
  rotaryEmbBase: number;
  maxPositionEmbeddings: number;
  layerNormEps: number;
  /** x + attn(ln1(x)) + mlp(ln2(x)) when true; the sequential form x' = x + attn(ln1(x)), x' + mlp(ln2(x')) when false. */
  useParallelResidual: boolean;
  hiddenAct: GPTNeoXActivation;
  /** Whether query_key_value and dense carry biases (always true for Pythia). */
  attentionBias: boolean;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
}

export const PYTHIA_DEFAULTS: Readonly<GPTNeoXConfig> = Object.freeze({
  vocabSize: 50432,
  hiddenSize: 6144,
  numHiddenLayers: 44,
  numAttentionHeads: 64,
  intermediateSize: 24576,
  rotaryPct: 0.25,
  rotaryEmbBase: 10000,
  maxPositionEmbeddings: 2048,
  layerNormEps: 1e-5,
  useParallelResidual: true,
  hiddenAct: 'gelu',
  attentionBias: true,
  tieWordEmbeddings: false,
  bosTokenId: 0,
  eosTokenId: 2,
});

export function headSize(config: GPTNeoXConfig): number {
  return config.hiddenSize / config.numAttentionHeads;
}

/** Number of leading dimensions of each head that are rotated (HF: int(head_size * rotary_pct)). */
export function rotaryDims(config: GPTNeoXConfig): number {
  return Math.floor(headSize(config) * config.rotaryPct);
}

/** Builds a config from partial fields (defaults: HF GPTNeoXConfig defaults) and validates it. */
export function gptNeoXConfig(fields: Partial<GPTNeoXConfig>, source = 'GPTNeoXConfig'): GPTNeoXConfig {
  const config = { ...PYTHIA_DEFAULTS, ...fields };
  validate(config, source);
  return config;
}

type Json = Record<string, unknown>;

/**
 * Reads a Hugging Face GPT-NeoX config.json object. Accepts both the older names (`rotary_pct`,
 * `rotary_emb_base`) and the newer ones (`partial_rotary_factor`, `rope_theta`, `rope_parameters`).
 */
export function parseGPTNeoXConfig(json: unknown, source = 'config.json'): GPTNeoXConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new Error(`${source}: expected a JSON object.`);
  }
  const j = json as Json;
  if (j.model_type !== undefined && j.model_type !== 'gpt_neox') {
    throw new Error(`${source}: model_type is ${JSON.stringify(j.model_type)}, but this loader reads GPT-NeoX ("gpt_neox") checkpoints.`);
  }
  const rope = (typeof j.rope_parameters === 'object' && j.rope_parameters !== null ? j.rope_parameters : {}) as Json;
  if (rope.rope_type !== undefined && rope.rope_type !== 'default') {
    throw new Error(`${source}: rope_parameters.rope_type ${JSON.stringify(rope.rope_type)} is not supported; only "default" rotary embeddings are.`);
  }
  if (j.rope_scaling !== undefined && j.rope_scaling !== null) {
    throw new Error(`${source}: rope_scaling is set, but scaled rotary embeddings are not supported; remove it or use an unscaled checkpoint.`);
  }
  const pick = (names: string[], fallback: unknown): unknown => {
    for (const name of names) {
      const value = name.startsWith('rope.') ? rope[name.slice(5)] : j[name];
      if (value !== undefined && value !== null) return value;
    }
    return fallback;
  };
  const d = PYTHIA_DEFAULTS;
  const config = {
    vocabSize: pick(['vocab_size'], d.vocabSize),
    hiddenSize: pick(['hidden_size'], d.hiddenSize),
    numHiddenLayers: pick(['num_hidden_layers'], d.numHiddenLayers),
    numAttentionHeads: pick(['num_attention_heads'], d.numAttentionHeads),
    intermediateSize: pick(['intermediate_size'], d.intermediateSize),
    rotaryPct: pick(['rotary_pct', 'partial_rotary_factor', 'rope.partial_rotary_factor'], d.rotaryPct),
    rotaryEmbBase: pick(['rotary_emb_base', 'rope_theta', 'rope.rope_theta'], d.rotaryEmbBase),
    maxPositionEmbeddings: pick(['max_position_embeddings'], d.maxPositionEmbeddings),
    layerNormEps: pick(['layer_norm_eps'], d.layerNormEps),
    useParallelResidual: pick(['use_parallel_residual'], d.useParallelResidual),
    hiddenAct: pick(['hidden_act'], d.hiddenAct),
    attentionBias: pick(['attention_bias'], d.attentionBias),
    tieWordEmbeddings: pick(['tie_word_embeddings'], d.tieWordEmbeddings),
    bosTokenId: pick(['bos_token_id'], null),
    eosTokenId: pick(['eos_token_id'], null),
  } as GPTNeoXConfig;
  validate(config, source);
  return config;
}

const SNAKE: Record<keyof GPTNeoXConfig, string> = {
  vocabSize: 'vocab_size',
  hiddenSize: 'hidden_size',
  numHiddenLayers: 'num_hidden_layers',
  numAttentionHeads: 'num_attention_heads',
  intermediateSize: 'intermediate_size',
  rotaryPct: 'rotary_pct',
  rotaryEmbBase: 'rotary_emb_base',
  maxPositionEmbeddings: 'max_position_embeddings',
  layerNormEps: 'layer_norm_eps',
  useParallelResidual: 'use_parallel_residual',
  hiddenAct: 'hidden_act',
  attentionBias: 'attention_bias',
  tieWordEmbeddings: 'tie_word_embeddings',
  bosTokenId: 'bos_token_id',
  eosTokenId: 'eos_token_id',
};

function validate(c: GPTNeoXConfig, source: string): void {
  const field = (k: keyof GPTNeoXConfig): string => `${source}: ${SNAKE[k]}`;
  for (const k of ['vocabSize', 'hiddenSize', 'numHiddenLayers', 'numAttentionHeads', 'intermediateSize', 'maxPositionEmbeddings'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new Error(`${field(k)} must be a positive integer, got ${JSON.stringify(c[k])}.`);
  }
  for (const k of ['rotaryEmbBase', 'layerNormEps'] as const) {
    if (typeof c[k] !== 'number' || !(c[k] > 0)) throw new Error(`${field(k)} must be a positive number, got ${JSON.stringify(c[k])}.`);
  }
  if (typeof c.rotaryPct !== 'number' || !(c.rotaryPct >= 0 && c.rotaryPct <= 1)) {
    throw new Error(`${field('rotaryPct')} must be a number in [0, 1], got ${JSON.stringify(c.rotaryPct)}.`);
  }
  for (const k of ['useParallelResidual', 'attentionBias', 'tieWordEmbeddings'] as const) {
    if (typeof c[k] !== 'boolean') throw new Error(`${field(k)} must be true or false, got ${JSON.stringify(c[k])}.`);
  }
  for (const k of ['bosTokenId', 'eosTokenId'] as const) {
    if (c[k] !== null && !Number.isInteger(c[k])) throw new Error(`${field(k)} must be an integer or null, got ${JSON.stringify(c[k])}.`);
  }
  if (!ACTIVATIONS.includes(c.hiddenAct)) {
    throw new Error(`${field('hiddenAct')} ${JSON.stringify(c.hiddenAct)} is not supported; use one of ${ACTIVATIONS.join(', ')}.`);
  }
  if (c.hiddenSize % c.numAttentionHeads !== 0) {
    throw new Error(`${source}: hidden_size ${c.hiddenSize} is not divisible by num_attention_heads ${c.numAttentionHeads}.`);
  }
  if (rotaryDims(c) % 2 !== 0) {
    throw new Error(`${source}: head size ${headSize(c)} × rotary_pct ${c.rotaryPct} gives ${rotaryDims(c)} rotary dimensions; it must be even.`);
  }
  if (c.tieWordEmbeddings) {
    throw new Error(`${source}: tie_word_embeddings is true, but GPT-NeoX keeps a separate embed_out; set it to false.`);
  }
}
