import type { KernelFunc } from '@mamba-ts/tensor';
import type { NativeAddon } from './native.js';

/*
 * Profiling mode (MAMBA_TS_CUDA_PROFILE=1, or setCudaOption('profile', 1)): the addon brackets every op and every
 * cuBLASLt call with CUDA events, and the backend times each kernel function on the host (argument packing,
 * output allocation and the native launch). `takeCudaProfile()` returns both tables and starts over; with the
 * environment variable set, the tables of the whole run are printed to stderr at exit.
 */

export interface ProfileRow {
  name: string;
  calls: number;
  ms: number;
}

export interface CudaProfile {
  /** GPU time per engine kernel; rows starting with two spaces are cuBLASLt calls inside one (not added twice). */
  gpu: ProfileRow[];
  /** Host time per engine kernel inside the cuda backend (not the engine's own bookkeeping around it). */
  host: ProfileRow[];
  gpuMs: number;
  hostMs: number;
}

const hostTimes = new Map<string, { calls: number; ms: number }>();
let enabled = process.env.MAMBA_TS_CUDA_PROFILE === '1';

export function profilingEnabled(): boolean {
  return enabled;
}

export function setProfiling(native: NativeAddon, on: boolean): void {
  enabled = on;
  native.setOption('profile', on ? 1 : 0);
}

/** `fn` with its host time recorded under `name` while profiling. */
export function timedKernel(name: string, fn: KernelFunc): KernelFunc {
  return (inputs, attrs, backend) => {
    if (!enabled) return fn(inputs, attrs, backend);
    const t0 = performance.now();
    try {
      return fn(inputs, attrs, backend);
    } finally {
      const row = hostTimes.get(name) ?? { calls: 0, ms: 0 };
      row.calls++;
      row.ms += performance.now() - t0;
      hostTimes.set(name, row);
    }
  };
}

/** Waits for the device and returns the times since the last call (or since profiling started). */
export function takeCudaProfile(native: NativeAddon): CudaProfile {
  const gpu = native.profileReport().map((r) => ({ name: r.label, calls: r.calls, ms: r.gpuMs }));
  const host = [...hostTimes].map(([name, r]) => ({ name, calls: r.calls, ms: r.ms })).sort((a, b) => b.ms - a.ms);
  hostTimes.clear();
  const total = (rows: ProfileRow[]) => rows.filter((r) => !r.name.startsWith(' ')).reduce((s, r) => s + r.ms, 0);
  return { gpu, host, gpuMs: total(gpu), hostMs: total(host) };
}

/** The two tables as text; `per` divides every count and time (e.g. by the number of steps profiled). */
export function formatCudaProfile(p: CudaProfile, { per = 1, limit = 40 }: { per?: number; limit?: number } = {}): string {
  const table = (title: string, rows: ProfileRow[], totalMs: number): string[] => {
    const lines = [`${title}: ${(totalMs / per).toFixed(3)} ms${per !== 1 ? ` per unit (÷${per})` : ''}`];
    lines.push(`  ${'ms'.padStart(10)} ${'%'.padStart(6)} ${'calls'.padStart(8)} ${'µs/call'.padStart(9)}  name`);
    for (const r of rows.slice(0, limit)) {
      const pct = totalMs > 0 ? (100 * r.ms) / totalMs : 0;
      lines.push(
        `  ${(r.ms / per).toFixed(3).padStart(10)} ${pct.toFixed(1).padStart(6)} ${(r.calls / per).toFixed(1).padStart(8)} ${((1000 * r.ms) / Math.max(1, r.calls)).toFixed(1).padStart(9)}  ${r.name}`,
      );
    }
    if (rows.length > limit) lines.push(`  … ${rows.length - limit} more`);
    return lines;
  };
  return [...table('GPU time (CUDA events)', p.gpu, p.gpuMs), ...table('host time in cuda kernels', p.host, p.hostMs)].join('\n');
}
