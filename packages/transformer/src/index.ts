export {
  gptNeoXConfig,
  parseGPTNeoXConfig,
  headSize,
  rotaryDims,
  PYTHIA_DEFAULTS,
  type GPTNeoXConfig,
  type GPTNeoXActivation,
} from './config.js';
export { RotaryTables, applyRotary, rotateHalf } from './rotary.js';
export { GPTNeoXAttention, CausalMasks, type LayerKV } from './attention.js';
export { GPTNeoXLayer, GPTNeoXMLP, activation } from './layer.js';
export { GPTNeoXBackbone, GPTNeoXModel, type ForwardOptions, type ForwardResult } from './model.js';
export { createSampler, argmaxOf, type SamplingOptions } from '@mamba-ts/tensor';
export { generateIds, type GenerateOptions } from './generate.js';
export { loadGPTNeoX, loadWeights, readGPTNeoXConfig, type LoadOptions } from './load.js';
export { loadTokenizer, Tokenizer } from './tokenizer.js';
export { TransformerLM, type GenerateResult } from './lm.js';

import { loadGPTNeoX } from './load.js';
/** Alias of loadGPTNeoX: config.json + model.safetensors → GPTNeoXModel. */
export const fromPretrained = loadGPTNeoX;
