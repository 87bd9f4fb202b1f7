export * from './lora.js';
export * from './adapter.js';
export * from './precision.js';
export * from './data.js';
export * from './checkpoint.js';
export * from './finetune.js';
export { ProgressBar, type ProgressInfo, type ProgressStream } from './progress.js';
export { writeDirAtomic, writeFileAtomic, sortedJson } from './fs-atomic.js';
export { Rng } from './rng.js';
