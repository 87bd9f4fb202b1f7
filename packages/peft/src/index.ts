export * from './lora.js';
export * from './adapter.js';
export { Rng } from './rng.js';
