import { describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { cublasLtCandidates, cudaStatus, isAvailable, registerCudaBackend, unavailableReason } from '../src/index.js';

// Runs on every machine: with or without a GPU, loading this package must never break the rest of the toolkit.
describe('availability', () => {
  test('isAvailable() agrees with the reason', () => {
    const status = cudaStatus();
    expect(typeof isAvailable()).toBe('boolean');
    if (isAvailable()) {
      expect(unavailableReason()).toBeNull();
      expect(status.init?.cublasLt).toMatch(/cublasLt/);
    } else {
      expect(unavailableReason()).toMatch(/addon is not built|failed to load|driver|no GPU|no cuBLASLt|disabled|CUDA/);
    }
  });

  test('registerCudaBackend() throws the reason when CUDA is unavailable', () => {
    if (isAvailable()) return; // covered by the GPU tests
    expect(() => registerCudaBackend()).toThrow(`The cuda backend is unavailable: ${unavailableReason()}.`);
    expect(T.engine().backendNames()).not.toContain('cuda');
  });

  test('the cpu backend keeps working after loading this package', async () => {
    const y = T.tidy(() => T.add(T.tensor([1, 2, 3]), T.scalar(1)));
    expect(Array.from(await y.data())).toEqual([2, 3, 4]);
    y.dispose();
  });

  test('cuBLASLt is searched in CUDA_HOME, LD_LIBRARY_PATH and the standard paths, then by soname', () => {
    const list = cublasLtCandidates({ MAMBA_TS_CUBLASLT: '/opt/x/libcublasLt.so.13', LD_LIBRARY_PATH: '/nonexistent' });
    expect(list[0]).toBe('/opt/x/libcublasLt.so.13');
    expect(list.slice(-3)).toEqual(['libcublasLt.so.13', 'libcublasLt.so.12', 'libcublasLt.so']);
  });
});
