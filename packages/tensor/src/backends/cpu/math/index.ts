export * from './common.js';
export * from './scan.js';
export * from './conv.js';
export * from './norm.js';
export * from './cross-entropy.js';
export * from './embedding.js';
export * from './adamw.js';
export * from './decode.js';
