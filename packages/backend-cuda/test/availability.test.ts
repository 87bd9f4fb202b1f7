import { describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { cublasLtCandidates, cudaStatus, f32MatmulMode, isAvailable, registerCudaBackend, unavailableReason } from '../src/index.js';

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

  test('f32MatmulMode() names how f32 matmuls run, from the environment when no option was set', () => {
    const saved = { tf32: process.env.MAMBA_TS_CUDA_TF32, split: process.env.MAMBA_TS_CUDA_SPLIT_TF32 };
    try {
      delete process.env.MAMBA_TS_CUDA_TF32;
      delete process.env.MAMBA_TS_CUDA_SPLIT_TF32;
      expect(f32MatmulMode()).toBe('split TF32 where faster, else f32');
      process.env.MAMBA_TS_CUDA_SPLIT_TF32 = '0';
      expect(f32MatmulMode()).toBe('f32 (cuBLASLt)');
      process.env.MAMBA_TS_CUDA_TF32 = '1';
      expect(f32MatmulMode()).toBe('TF32');
    } finally {
      for (const [name, value] of [['MAMBA_TS_CUDA_TF32', saved.tf32], ['MAMBA_TS_CUDA_SPLIT_TF32', saved.split]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
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
