import { engine, type KernelFunc } from '@mamba-ts/tensor';
import { nativeAddon } from './availability.js';
import { CudaBackend } from './backend.js';
import { basicKernels } from './kernels/basic.js';
import { decodeKernels } from './kernels/decode.js';
import { fusedKernels } from './kernels/fused.js';
import { formatCudaProfile, profilingEnabled, setProfiling, takeCudaProfile, timedKernel, type CudaProfile } from './profile.js';
import type { NativeOption } from './native.js';

export { cudaStatus, isAvailable, unavailableReason, type CudaStatus } from './availability.js';
export { CudaBackend, CudaBuffer } from './backend.js';
export { formatCudaProfile, type CudaProfile, type ProfileRow } from './profile.js';
export { addonPath, cublasLtCandidates, type NativeAddon, type NativeOption, type ProbeInfo, type InitInfo } from './native.js';

export interface RegisterCudaOptions {
  /** Make `cuda` the active backend (default false). */
  activate?: boolean;
}

/** Every kernel the cuda backend implements natively. */
export function cudaKernels(): Record<string, KernelFunc> {
  return { ...basicKernels(), ...fusedKernels(), ...decodeKernels() } as Record<string, KernelFunc>;
}

/**
 * Registers the backend `cuda` and all its kernels with the engine (idempotent) and returns it. Throws with the
 * reason (addon not built, no driver, no GPU, no cuBLASLt) when CUDA cannot be used here; check `isAvailable()`
 * first to fall back quietly.
 */
export function registerCudaBackend({ activate = false }: RegisterCudaOptions = {}): CudaBackend {
  const e = engine();
  if (e.backendNames().includes('cuda')) {
    const existing = e.findBackend('cuda') as CudaBackend;
    if (activate) e.setBackend('cuda');
    return existing;
  }
  const native = nativeAddon();
  const backend = new CudaBackend(native);
  e.registerBackend(backend, { activate });
  for (const [name, fn] of Object.entries(cudaKernels())) e.registerKernel('cuda', name, timedKernel(name, fn));
  if (profilingEnabled()) {
    setProfiling(native, true);
    process.once('exit', () => console.error(`mamba-ts cuda profile (whole run)\n${formatCudaProfile(takeCudaProfile(native))}`));
  }
  return backend;
}

/**
 * Test and tuning knobs of the native code: the selective scan's chunk lengths along the sequence (0 = automatic;
 * the backward chunk is capped at 32) and `debugSync` (synchronise after every kernel, so a failing kernel is named
 * exactly; also set by MAMBA_TS_CUDA_SYNC=1), `tf32` (f32 matmuls on tensor cores with TF32 inputs: faster, about
 * three significant digits per product, so off by default; also MAMBA_TS_CUDA_TF32=1), `gemmTune` (1, the default:
 * the first time a GEMM shape runs, time cuBLASLt's candidate algorithms and keep the fastest; 0: take the heuristic's
 * first choice; also MAMBA_TS_CUDA_GEMM_TUNE=0), `skinnyGemm` (the few-rows kernel for x·Wᵀ with M ≤ 64, as in
 * decoding: -1, the default, where timing the shape found it faster than cuBLASLt; 1 wherever it fits; 0 never),
 * `splitTf32` (f32 matmuls as three TF32 tensor-core products of operands split into high and low parts, with f32
 * accuracy: -1, the default, where timing the shape found it faster than cuBLASLt's f32 algorithms, unless
 * MAMBA_TS_CUDA_SPLIT_TF32=0; 1 always; 0 never),
 * `dependentLaunch` (the decode step's kernels start their blocks while the kernel before them finishes, with
 * programmatic dependent launch: 1 on, 0 off, -1 the default: on unless MAMBA_TS_CUDA_PDL=0) and `profile` (see
 * takeProfile; also MAMBA_TS_CUDA_PROFILE=1).
 */
export function setCudaOption(
  name: NativeOption,
  value: number,
): void {
  if (name === 'profile') setProfiling(nativeAddon(), value !== 0);
  else nativeAddon().setOption(name, value);
  optionsSet.set(name, value);
}

const optionsSet = new Map<NativeOption, number>();

/**
 * How f32 matmuls are computed, in words, for reports: 'TF32' (setCudaOption('tf32', 1) or MAMBA_TS_CUDA_TF32=1),
 * 'split TF32' (splitTf32 1), 'f32 (cuBLASLt)' (splitTf32 0 or MAMBA_TS_CUDA_SPLIT_TF32=0), else 'split TF32 where
 * faster, else f32' (the default: chosen per shape by timing).
 */
export function f32MatmulMode(): string {
  const tf32 = optionsSet.get('tf32') ?? (process.env.MAMBA_TS_CUDA_TF32 === '1' ? 1 : 0);
  if (tf32 !== 0) return 'TF32';
  const split = optionsSet.get('splitTf32') ?? (process.env.MAMBA_TS_CUDA_SPLIT_TF32 === '0' ? 0 : -1);
  if (split === 1) return 'split TF32';
  return split === 0 ? 'f32 (cuBLASLt)' : 'split TF32 where faster, else f32';
}

/** Profiling mode's tables since the last call (waits for the device). See setCudaOption('profile', 1). */
export function takeProfile(): CudaProfile {
  return takeCudaProfile(nativeAddon());
}
