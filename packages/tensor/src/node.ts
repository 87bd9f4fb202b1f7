// Node-only parts of the tensor package (file IO). The main entry stays browser-safe.
export { SafetensorsFile, openCheckpoint, writeSafetensorsFile, writeShardedCheckpoint } from './io/safetensors-node.js';
export type { SafetensorsCheckpoint, ShardedWriteOptions, ShardedWriteResult } from './io/safetensors-node.js';
