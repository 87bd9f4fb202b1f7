export { parseMambaConfig, mambaConfigToJson, presetConfig, MAMBA_PRESETS, ConfigError, type MambaConfig, type MambaPreset } from './config.js';
export { MambaMixer, DepthwiseConv1d, type Projection } from './mixer.js';
export { MambaLM, MambaBlock, MambaBackbone, RECOMPUTE_MODES, parseRecomputeMode, type ForwardOptions, type RecomputeMode } from './model.js';
export { MambaState, type LayerState } from './state.js';
export { TextTokenizer } from './tokenizer.js';
export { fromPretrained, readMambaConfig, keepsFp32, type LoadOptions } from './load.js';
export { generate, prefill, streamTokens, type GenerateOptions } from './generate.js';
export { Decoder, type DecoderOptions } from './decoder.js';
