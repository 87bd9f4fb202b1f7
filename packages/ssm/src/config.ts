/** Hyper-parameters of a Mamba-1 language model, as read from a Hugging Face `config.json`. */
export interface MambaConfig {
  /** d_model (D). */
  hiddenSize: number;
  numLayers: number;
  /** N. */
  stateSize: number;
  /** E = expand·D. */
  intermediateSize: number;
  /** W. */
  convKernel: number;
  /** R (dt rank). */
  timeStepRank: number;
  /** Bias on in_proj and out_proj. */
  useBias: boolean;
  useConvBias: boolean;
  layerNormEpsilon: number;
  residualInFp32: boolean;
  tieWordEmbeddings: boolean;
  /** Vocabulary rows of the embedding (padded to pad_vocab_size_multiple for original configs). */
  vocabSize: number;
  eosTokenId: number;
  padTokenId: number;
}

type Json = Record<string, unknown>;

/** Thrown for a config that cannot describe a Mamba model; the message names the file and the field. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Reads both schemas: `state-spaces/mamba-*-hf` (hidden_size, num_hidden_layers, …) and the original
 * `state-spaces/mamba-*` (d_model, n_layer, ssm_cfg, pad_vocab_size_multiple).
 */
export function parseMambaConfig(json: unknown, source = 'config.json'): MambaConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError(`${source}: expected a JSON object with the model's hyper-parameters.`);
  }
  const c = json as Json;
  const ssm = (c.ssm_cfg && typeof c.ssm_cfg === 'object' ? c.ssm_cfg : {}) as Json;
  if (c.model_type !== undefined && c.model_type !== 'mamba') {
    throw new ConfigError(`${source}: model_type is "${String(c.model_type)}", but this loader reads "mamba" checkpoints.`);
  }

  const int = (names: string[], fallback?: number, from: Json = c): number => {
    for (const name of names) {
      const v = from[name];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
        throw new ConfigError(`${source}: field "${name}" must be a positive integer, got ${JSON.stringify(v)}.`);
      }
      return v;
    }
    if (fallback === undefined) throw new ConfigError(`${source}: missing field "${names.join('" or "')}".`);
    return fallback;
  };
  const bool = (name: string, fallback: boolean, from: Json = c): boolean => {
    const v = from[name];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new ConfigError(`${source}: field "${name}" must be true or false, got ${JSON.stringify(v)}.`);
    return v;
  };

  const hiddenSize = int(['hidden_size', 'd_model']);
  const original = c.hidden_size === undefined && c.d_model !== undefined;
  const expand = int(['expand'], int(['expand'], 2, ssm));
  const stateSize = int(['state_size', 'd_state'], int(['d_state'], 16, ssm));
  const convKernel = int(['conv_kernel', 'd_conv'], int(['d_conv'], 4, ssm));
  const intermediateSize = int(['intermediate_size', 'd_inner'], expand * hiddenSize);

  const rank = c.time_step_rank ?? ssm.dt_rank ?? 'auto';
  let timeStepRank: number;
  if (rank === 'auto') timeStepRank = Math.ceil(hiddenSize / 16);
  else if (typeof rank === 'number' && Number.isInteger(rank) && rank > 0) timeStepRank = rank;
  else throw new ConfigError(`${source}: field "time_step_rank" must be a positive integer or "auto", got ${JSON.stringify(rank)}.`);

  let vocabSize = int(['vocab_size']);
  const multiple = int(['pad_vocab_size_multiple'], 1);
  // The original configs give the tokenizer's size; the embedding is padded (50277 → 50280).
  if (original && vocabSize % multiple !== 0) vocabSize += multiple - (vocabSize % multiple);

  const eps = c.layer_norm_epsilon ?? c.norm_epsilon ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) {
    throw new ConfigError(`${source}: field "layer_norm_epsilon" must be a positive number, got ${JSON.stringify(eps)}.`);
  }

  return {
    hiddenSize,
    numLayers: int(['num_hidden_layers', 'n_layer']),
    stateSize,
    intermediateSize,
    convKernel,
    timeStepRank,
    // Original checkpoints have no bias on in_proj/out_proj; HF's class default (True) never applies to a file.
    useBias: bool('use_bias', bool('bias', false, ssm)),
    useConvBias: bool('use_conv_bias', bool('conv_bias', true, ssm)),
    layerNormEpsilon: eps,
    residualInFp32: bool('residual_in_fp32', true),
    tieWordEmbeddings: bool('tie_word_embeddings', bool('tie_embeddings', true)),
    vocabSize,
    eosTokenId: typeof c.eos_token_id === 'number' ? c.eos_token_id : 0,
    padTokenId: typeof c.pad_token_id === 'number' ? c.pad_token_id : 0,
  };
}

/** A config.json body in the Hugging Face `-hf` schema (what `save_pretrained` writes). */
export function mambaConfigToJson(cfg: MambaConfig): Json {
  return {
    architectures: ['MambaForCausalLM'],
    model_type: 'mamba',
    hidden_size: cfg.hiddenSize,
    num_hidden_layers: cfg.numLayers,
    state_size: cfg.stateSize,
    intermediate_size: cfg.intermediateSize,
    expand: cfg.intermediateSize / cfg.hiddenSize,
    conv_kernel: cfg.convKernel,
    time_step_rank: cfg.timeStepRank,
    use_bias: cfg.useBias,
    use_conv_bias: cfg.useConvBias,
    layer_norm_epsilon: cfg.layerNormEpsilon,
    residual_in_fp32: cfg.residualInFp32,
    tie_word_embeddings: cfg.tieWordEmbeddings,
    vocab_size: cfg.vocabSize,
    eos_token_id: cfg.eosTokenId,
    pad_token_id: cfg.padTokenId,
    bos_token_id: cfg.eosTokenId,
    hidden_act: 'silu',
    torch_dtype: 'float32',
  };
}

/** Shapes of the published Mamba-1 models (d_model, layers); vocab 50280, N 16, W 4. */
export const MAMBA_PRESETS = {
  tiny: { hiddenSize: 64, numLayers: 2, vocabSize: 512 },
  '130m': { hiddenSize: 768, numLayers: 24, vocabSize: 50280 },
  '370m': { hiddenSize: 1024, numLayers: 48, vocabSize: 50280 },
  '790m': { hiddenSize: 1536, numLayers: 48, vocabSize: 50280 },
  '1.4b': { hiddenSize: 2048, numLayers: 48, vocabSize: 50280 },
  '2.8b': { hiddenSize: 2560, numLayers: 64, vocabSize: 50280 },
} as const;

export type MambaPreset = keyof typeof MAMBA_PRESETS;

export function presetConfig(name: MambaPreset): MambaConfig {
  const p = MAMBA_PRESETS[name];
  if (!p) throw new ConfigError(`Unknown preset "${name}"; valid presets: ${Object.keys(MAMBA_PRESETS).join(', ')}.`);
  return parseMambaConfig({ hidden_size: p.hiddenSize, num_hidden_layers: p.numLayers, vocab_size: p.vocabSize }, `preset ${name}`);
}
