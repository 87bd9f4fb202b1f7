// Shared by the kernel benchmarks: the device's peak bandwidth, per-call GPU times from the profiler, fingerprints.
import * as T from '@mamba-ts/tensor';
import { cudaStatus, isAvailable, registerCudaBackend, setCudaOption, takeProfile, unavailableReason } from '../src/index.js';

/** Vendor datasheet memory bandwidth (bytes/s) by device name; the addon does not report the memory clock. */
const PEAK_BANDWIDTH: [RegExp, number][] = [
  [/H200/, 4.8e12],
  [/H100.*(SXM|HBM3)/, 3.35e12],
  [/H100/, 2.0e12],
  [/A100.*80GB/, 2.039e12],
  [/A100/, 1.555e12],
  [/L40S|L40/, 0.864e12],
  [/RTX 4090/, 1.008e12],
];
const DEFAULT_PEAK = 4.8e12;

export function peakBandwidth(device: string): { bytesPerSecond: number; source: string } {
  for (const [pattern, bytes] of PEAK_BANDWIDTH) {
    if (pattern.test(device)) return { bytesPerSecond: bytes, source: `datasheet value for ${device}` };
  }
  return { bytesPerSecond: DEFAULT_PEAK, source: `unknown device "${device}": assumed the H200's 4.8 TB/s` };
}

export const bytesOf = (dtype: T.DType): number => (dtype === 'f32' || dtype === 'i32' ? 4 : 2);

/** FNV-1a over the bytes of the tensors' f32 values. */
export async function fingerprint(ts: readonly T.Tensor[]): Promise<string> {
  let h = 0x811c9dc5;
  for (const t of ts) {
    const bytes = new Uint8Array((await t.toFloat32()).buffer);
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  }
  return h.toString(16);
}

/** Median GPU time (ms) of one call of `kernel` over `iters` calls, each read from its own profile report. */
export async function medianGpuMs(kernel: string, inputs: T.Tensor[], attrs: Record<string, unknown>, iters: number): Promise<number> {
  const call = () => T.dispose(T.engine().runKernel(kernel, inputs, attrs));
  for (let i = 0; i < 3; i++) call();
  takeProfile();
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    call();
    const row = takeProfile().gpu.find((r) => r.name === kernel);
    if (!row) throw new Error(`no profile row named ${kernel}; is profiling on?`);
    times.push(row.ms / row.calls);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Activates cuda; where CUDA cannot run, prints {"skipped": reason} and returns false. */
export function startCuda(): boolean {
  if (!isAvailable()) {
    console.log(JSON.stringify({ skipped: unavailableReason() }));
    return false;
  }
  registerCudaBackend({ activate: true });
  return true;
}

/**
 * Activates cuda in profiling mode and returns the device's name and peak bandwidth; where CUDA cannot run, prints
 * {"skipped": reason} and returns null.
 */
export function startProfiledCuda(): { device: string; peak: ReturnType<typeof peakBandwidth> } | null {
  if (!startCuda()) return null;
  setCudaOption('profile', 1);
  const device = cudaStatus().device?.name ?? 'unknown';
  return { device, peak: peakBandwidth(device) };
}
