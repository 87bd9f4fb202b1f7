import { describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { engine, registerBackend, registerKernel, CpuBackend, type KernelFunc } from '@mamba-ts/tensor';
import { DEFAULT_TOLERANCES, fallbackReport, mismatch, runBackendConformance, type TestApi } from '@mamba-ts/tensor/testing';

// The whole suite against the oracle itself: proves every case is well formed, runs, and leaks nothing.
runBackendConformance('cpu', { describe, test, expect });

/** A backend with no kernels of its own (everything falls back to cpu) except a deliberately wrong exp. */
class BrokenBackend extends CpuBackend {
  override readonly name = 'cpu-broken';
}
registerBackend(new BrokenBackend());
const wrongExp: KernelFunc = ([x], _attrs, backend) => {
  const data = backend.readSync!(x.dataId, x.dtype, T.sizeOf(x.shape));
  const values = Float32Array.from(T.asFloat32(data, x.dtype), (v) => Math.exp(v) * 1.001);
  const out = x.dtype === 'f32' ? values : T.encodeHalf(values, x.dtype as 'bf16' | 'f16');
  return [{ dataId: backend.upload(out, x.dtype), shape: x.shape, dtype: x.dtype }];
};
registerKernel('cpu-broken', 'exp', wrongExp);

/** Collects the suite's tests so they can be run here and their failures inspected. */
function collect(backend: string, options: Parameters<typeof runBackendConformance>[2]): Map<string, () => Promise<void> | void> {
  const tests = new Map<string, () => Promise<void> | void>();
  const api: TestApi = { describe: (_n, fn) => fn(), test: (name, fn) => void tests.set(name, fn), expect };
  runBackendConformance(backend, api, options);
  return tests;
}

async function failureOf(fn: () => Promise<void> | void): Promise<string | null> {
  try {
    await fn();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

describe('the conformance suite catches a wrong backend', () => {
  test('a wrong kernel fails with the kernel, variant and worst element named', async () => {
    const tests = collect('cpu-broken', { only: ['exp', 'add'], dtypes: ['f32'], skipGrad: false });
    const expFailure = await failureOf(tests.get('kernel exp (f32)')!);
    expect(expFailure).toMatch(/kernel exp \(f32\) differs from cpu/);
    expect(expFailure).toMatch(/\[3,5\] output 0 \[3, 5\] f32: \d+ of 15 elements out of tolerance/);
    expect(await failureOf(tests.get('grad() of exp (f32)')!)).toMatch(/grad 0/);
    // add falls back to cpu, so its results are right.
    expect(await failureOf(tests.get('kernel add (f32)')!)).toBeNull();
  });

  test('missing kernels are listed unless allowed', async () => {
    const strict = collect('cpu-broken', { only: ['none'] });
    expect(await failureOf(strict.get('implements every cpu kernel natively')!)).toMatch(/lacks \d+ cpu kernels .*: abs, adamw, add,/);
    const lenient = collect('cpu-broken', { only: ['none'], allowMissing: engine().kernelNames('cpu').filter((k) => k !== 'exp') });
    expect(await failureOf(lenient.get('implements every cpu kernel natively')!)).toBeNull();
  });

  test('fallbackReport counts the kernels that ran on cpu instead', () => {
    const report = fallbackReport(() => {
      T.setBackend('cpu-broken');
      try {
        T.tidy(() => T.exp(T.add(T.tensor([1, 2, 3]), T.tensor([1, 1, 1]))));
      } finally {
        T.setBackend('cpu');
      }
    });
    expect(report).toEqual({ 'cpu-broken:add': 1 });
    expect(fallbackReport(() => void T.tidy(() => T.add(T.tensor([1]), T.tensor([2]))))).toEqual({});
  });
});

describe('mismatch', () => {
  const f = (v: number[]) => Float32Array.from(v);
  test('accepts values within rtol/atol and reports the worst element otherwise', () => {
    expect(mismatch(f([1, 100]), f([1.00005, 100.005]), DEFAULT_TOLERANCES.f32)).toBeNull();
    expect(mismatch(f([1, 100]), f([1, 100.5]), DEFAULT_TOLERANCES.f32)).toMatch(/index 1: got 100, expected 100.5/);
  });
  test('NaN must meet NaN and infinities must match exactly', () => {
    expect(mismatch(f([NaN, Infinity]), f([NaN, Infinity]), DEFAULT_TOLERANCES.bf16)).toBeNull();
    expect(mismatch(f([1, Infinity]), f([NaN, Infinity]), DEFAULT_TOLERANCES.bf16)).toMatch(/index 0/);
    expect(mismatch(f([3e38]), f([Infinity]), DEFAULT_TOLERANCES.f32)).toMatch(/index 0/);
  });
});
