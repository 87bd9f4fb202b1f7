// Test utilities shared by backend packages: the backend conformance suite (no test-framework dependency).
export { runBackendConformance, fallbackReport, type TestApi, type ConformanceOptions } from './conformance.js';
export { DEFAULT_TOLERANCES, mismatch, type Tolerance } from './compare.js';
export { kernelCases, UNARY_KERNELS, BINARY_KERNELS, type KernelCase, type KernelVariant, type FloatDType } from './kernel-cases.js';
export { GRAD_CASES, type GradCase } from './grad-cases.js';
export { Gen } from './gen.js';
