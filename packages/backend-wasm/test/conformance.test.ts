import { describe, expect, test } from 'vitest';
import { convStep, engine, tidy, zeros } from '@mamba-ts/tensor';
import { runBackendConformance } from '@mamba-ts/tensor/testing';
import { registerWasmBackendSync } from '@mamba-ts/backend-wasm';

registerWasmBackendSync();
// The decode-step kernels (inference only) run on cpu through the fallback; the decoder uses them only where a
// backend has them natively.
runBackendConformance('wasm', { describe, test, expect }, { allowMissing: ['residualRmsNorm', 'convStep', 'ssmStep'] });

describe('decode steps in place', () => {
  test('need the kernel on the backend itself: the cpu fallback would update a copy', () => {
    const previous = engine().getBackend().name;
    engine().setBackend('wasm');
    try {
      tidy(() => {
        const convState = zeros([2, 3, 3]);
        const step = () => convStep({ xz: zeros([2, 6]), convState, weight: zeros([3, 4]), inPlace: true });
        expect(step).toThrow(/^convStep inPlace: backend "wasm" has no convStep kernel of its own/);
        expect(() => convStep({ xz: zeros([2, 6]), convState, weight: zeros([3, 4]) })).not.toThrow();
      });
    } finally {
      engine().setBackend(previous);
    }
  });
});
