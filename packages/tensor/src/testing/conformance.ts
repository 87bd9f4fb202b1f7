import { type DType } from '../dtype.js';
import { engine } from '../engine.js';
import { tensor } from '../ops/core.js';
import { formatShape, shapesEqual } from '../shape.js';
import { asFloat32, type Tensor } from '../tensor.js';
import { DEFAULT_TOLERANCES, mismatch, type Tolerance } from './compare.js';
import { Gen } from './gen.js';
import { GRAD_CASES } from './grad-cases.js';
import { kernelCases, type FloatDType, type KernelVariant } from './kernel-cases.js';

/** The parts of a test framework the suite needs (vitest's or jest's describe/test/expect fit). */
export interface TestApi {
  describe: (name: string, fn: () => void) => void;
  test: (name: string, fn: () => Promise<void> | void, timeout?: number) => void;
  expect: (actual: unknown) => { toEqual(expected: unknown): void };
}

export interface ConformanceOptions {
  /** cpu kernels the backend may lack (they fall back to cpu and are still compared). */
  allowMissing?: readonly string[];
  /** Float dtypes to run (default f32, bf16, f16). */
  dtypes?: readonly FloatDType[];
  /** Overrides of the per-dtype tolerances (see DEFAULT_TOLERANCES). */
  tolerances?: Partial<Record<DType, Tolerance>>;
  /** Restrict to these kernels (and gradient cases whose label starts with one of them). */
  only?: readonly string[];
  /** Skip the grad() cases. */
  skipGrad?: boolean;
  seed?: number;
  /** Per-test timeout in ms. */
  timeout?: number;
}

const ALL_DTYPES: readonly FloatDType[] = ['f32', 'bf16', 'f16'];

/**
 * Registers tests that compare backend `backendName` with the cpu oracle: every kernel the cpu backend registers,
 * forward and backward (the `…Grad` kernels, and `grad()` through the ops), on random inputs with odd sizes, in
 * f32/bf16/f16 where the kernel takes floats. Inputs are made on cpu and copied to the backend, results read back.
 * Also fails when the backend lacks a cpu kernel (unless allowed) and when a cpu kernel has no case here.
 */
export function runBackendConformance(backendName: string, api: TestApi, options: ConformanceOptions = {}): void {
  const { describe, test, expect } = api;
  const dtypes = options.dtypes ?? ALL_DTYPES;
  const tolerances = { ...DEFAULT_TOLERANCES, ...options.tolerances };
  const seed = options.seed ?? 1234;
  const cases = kernelCases();
  const selected = (name: string) => !options.only || options.only.some((o) => name === o || name.startsWith(o));

  describe(`backend "${backendName}" conforms to the cpu oracle`, () => {
    test('implements every cpu kernel natively', () => {
      const e = engine();
      e.findBackend(backendName);
      const allowed = new Set(options.allowMissing ?? []);
      const missing = e.kernelNames('cpu').filter((k) => !e.hasKernel(backendName, k) && !allowed.has(k));
      if (missing.length > 0) {
        throw new Error(
          `backend "${backendName}" lacks ${missing.length} cpu kernels (they would fall back to cpu): ${missing.join(', ')}; ` +
            'implement them or list them in options.allowMissing.',
        );
      }
      expect(missing).toEqual([]);
    });

    test('has a conformance case for every cpu kernel', () => {
      const uncovered = engine().kernelNames('cpu').filter((k) => !(k in cases));
      if (uncovered.length > 0) {
        throw new Error(`the conformance suite has no case for cpu kernels ${uncovered.join(', ')}; add them to testing/kernel-cases.ts.`);
      }
      expect(uncovered).toEqual([]);
    });

    for (const [kernel, kcase] of Object.entries(cases)) {
      if (!selected(kernel)) continue;
      const runs: FloatDType[] = kcase.dtypes === 'once' ? ['f32'] : [...dtypes];
      for (const dtype of runs) {
        const label = kcase.dtypes === 'once' ? `kernel ${kernel}` : `kernel ${kernel} (${dtype})`;
        test(
          label,
          () => withLeakCheck(backendName, async () => {
            const g = new Gen(seed + hashString(label));
            const variants = onBackend('cpu', () => kcase.variants(dtype, g));
            const failures: string[] = [];
            try {
              for (const variant of variants) failures.push(...(await compareKernel(kernel, variant, backendName, tolerances)));
            } finally {
              for (const variant of variants) for (const t of variant.inputs) t.dispose();
            }
            if (failures.length > 0) throw new Error(`${label} differs from cpu:\n${failures.join('\n')}`);
          }),
          options.timeout,
        );
      }
    }

    if (options.skipGrad) return;
    for (const dtype of dtypes) {
      for (const [index, makeCase] of GRAD_CASES.entries()) {
        const probe = onBackend('cpu', () => makeCase(dtype, new Gen(0)));
        disposeCase(probe);
        if (!selected(probe.label)) continue;
        const label = `grad() of ${probe.label} (${dtype})`;
        test(
          label,
          () => withLeakCheck(backendName, async () => {
            const c = onBackend('cpu', () => makeCase(dtype, new Gen(seed + 7919 * index + hashString(dtype))));
            try {
              const failures = await compareGrad(c.f, c.xs, c.consts, backendName, tolerances);
              if (failures.length > 0) throw new Error(`${label} differs from cpu:\n${failures.join('\n')}`);
            } finally {
              disposeCase(c);
            }
          }),
          options.timeout,
        );
      }
    }
  });
}

/**
 * Runs `fn` and returns how many times each `backend:kernel` fell back to cpu meanwhile (empty when none did).
 * Returns a Promise when `fn` does.
 */
export function fallbackReport(fn: () => void): Record<string, number>;
export function fallbackReport(fn: () => Promise<void>): Promise<Record<string, number>>;
export function fallbackReport(fn: () => void | Promise<void>): Record<string, number> | Promise<Record<string, number>> {
  const before = engine().fallbacks();
  const diff = (): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const [key, count] of Object.entries(engine().fallbacks())) {
      const added = count - (before[key] ?? 0);
      if (added > 0) out[key] = added;
    }
    return out;
  };
  const result = fn();
  return result instanceof Promise ? result.then(diff) : diff();
}

// ---- internals ----

async function compareKernel(kernel: string, variant: KernelVariant, target: string, tolerances: Record<DType, Tolerance>): Promise<string[]> {
  const where = `  ${variant.label}`;
  let expected: Tensor[] = [];
  let actual: Tensor[] = [];
  try {
    expected = onBackend('cpu', () => engine().runKernel(kernel, variant.inputs, variant.attrs));
    actual = onBackend(target, () => {
      const copies = variant.inputs.map((t) => copyTo(t, target));
      try {
        return engine().runKernel(kernel, copies, variant.attrs);
      } finally {
        for (const c of copies) c.dispose();
      }
    });
    return await compareOutputs(where, actual, expected, tolerances);
  } catch (e) {
    return [`${where}: threw ${(e as Error).message}`];
  } finally {
    for (const t of [...expected, ...actual]) t.dispose();
  }
}

async function compareGrad(
  f: (xs: Tensor[], consts: Tensor[]) => Tensor,
  xs: Tensor[],
  consts: Tensor[],
  target: string,
  tolerances: Record<DType, Tolerance>,
): Promise<string[]> {
  const evaluate = (backend: string): Tensor[] =>
    onBackend(backend, () => {
      const xc = xs.map((t) => copyTo(t, backend));
      const cc = consts.map((t) => copyTo(t, backend));
      try {
        const { value, grads } = engine().valueAndGrad(() => f(xc, cc), xc);
        return [value, ...grads];
      } finally {
        for (const t of [...xc, ...cc]) t.dispose();
      }
    });
  let expected: Tensor[] = [];
  let actual: Tensor[] = [];
  try {
    expected = evaluate('cpu');
    actual = evaluate(target);
    const labels = expected.map((_, i) => (i === 0 ? 'value' : `grad ${i - 1}`));
    return await compareOutputs('  ', actual, expected, tolerances, labels);
  } catch (e) {
    return [`  threw ${(e as Error).message}`];
  } finally {
    for (const t of [...expected, ...actual]) t.dispose();
  }
}

async function compareOutputs(
  where: string,
  actual: Tensor[],
  expected: Tensor[],
  tolerances: Record<DType, Tolerance>,
  labels: string[] = expected.map((_, i) => `output ${i}`),
): Promise<string[]> {
  if (actual.length !== expected.length) return [`${where}: ${actual.length} outputs, expected ${expected.length}`];
  const failures: string[] = [];
  for (const [i, e] of expected.entries()) {
    const a = actual[i];
    const what = `${where} ${labels[i]}`;
    if (a.dtype !== e.dtype) failures.push(`${what}: dtype ${a.dtype}, expected ${e.dtype}`);
    else if (!shapesEqual(a.shape, e.shape)) failures.push(`${what}: shape ${formatShape(a.shape)}, expected ${formatShape(e.shape)}`);
    else {
      const bad = mismatch(await readFloat32(a), await readFloat32(e), tolerances[e.dtype]);
      if (bad) failures.push(`${what} ${formatShape(e.shape)} ${e.dtype}: ${bad}`);
    }
  }
  return failures;
}

/** Async, so backends without synchronous reads (GPU) can run the suite too. */
async function readFloat32(t: Tensor): Promise<Float32Array> {
  return asFloat32(await t.data(), t.dtype);
}

function copyTo(t: Tensor, backend: string): Tensor {
  return onBackend(backend, () => tensor(t.dataSync(), t.shape, t.dtype));
}

function onBackend<T>(name: string, fn: () => T): T {
  const e = engine();
  const previous = e.getBackend().name;
  e.setBackend(name);
  try {
    return fn();
  } finally {
    e.setBackend(previous);
  }
}

async function withLeakCheck(backend: string, fn: () => Promise<void>): Promise<void> {
  const before = engine().memory(backend);
  await fn();
  const after = engine().memory(backend);
  if (after.liveTensors !== before.liveTensors || after.liveBytes !== before.liveBytes) {
    throw new Error(
      `leak on backend "${backend}": live tensors ${before.liveTensors} → ${after.liveTensors}, live bytes ${before.liveBytes} → ${after.liveBytes}.`,
    );
  }
}

function disposeCase(c: { xs: Tensor[]; consts: Tensor[] }): void {
  for (const t of [...c.xs, ...c.consts]) t.dispose();
}

function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0) % 1_000_000;
}
