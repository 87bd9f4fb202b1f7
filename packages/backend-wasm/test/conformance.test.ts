import { describe, expect, test } from 'vitest';
import { runBackendConformance } from '@mamba-ts/tensor/testing';
import { registerWasmBackendSync } from '@mamba-ts/backend-wasm';

registerWasmBackendSync();
// The decode-step kernels (inference only) run on cpu through the fallback; the decoder uses them only where a
// backend has them natively.
runBackendConformance('wasm', { describe, test, expect }, { allowMissing: ['residualRmsNorm', 'convStep', 'ssmStep'] });
