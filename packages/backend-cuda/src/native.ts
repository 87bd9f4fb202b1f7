import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What `probe()` of the addon reports (no CUDA context is created). */
export interface ProbeInfo {
  deviceCount: number;
  /** Why no device is usable; empty when one is. */
  error: string;
  name: string;
  computeCapability: string;
  totalMemory: number;
  driverVersion: number;
  runtimeVersion: number;
}

export interface InitInfo {
  device: string;
  cublasLt: string;
  cublasLtVersion: number;
}

export interface NativeMemory {
  liveBytes: number;
  peakBytes: number;
  /** Everything obtained from cudaMalloc for tensors: live blocks, rounding and the cache. */
  reservedBytes: number;
  cachedBytes: number;
  liveBuffers: number;
}

export type NativeOption =
  | 'scanForwardChunk' | 'scanBackwardChunk' | 'debugSync' | 'tf32' | 'gemmTune' | 'skinnyGemm' | 'splitTf32' | 'dependentLaunch'
  | 'profile';

export interface NativeProfileRow {
  label: string;
  calls: number;
  gpuMs: number;
}

/** The Node-API addon (native/addon.cc). Device addresses are plain numbers. */
export interface NativeAddon {
  probe(): ProbeInfo;
  init(cublasLtCandidates: string[]): InitInfo;
  opNames(): string[];
  malloc(bytes: number): number;
  free(address: number): void;
  upload(address: number, values: ArrayBufferView): void;
  read(address: number, bytes: number): Promise<ArrayBuffer>;
  sync(): Promise<void>;
  memory(): NativeMemory;
  resetPeak(): void;
  emptyCache(): void;
  /** Enqueues op `op` with args[0, count); `label` is an id from `label()`. */
  launch(op: number, args: Float64Array, count: number, label: number): void;
  /** The id of a launch label (interned once per name). */
  label(name: string): number;
  setOption(name: NativeOption, value: number): void;
  /** Waits for the device; per-label GPU times since the last report (profiling mode), slowest first. */
  profileReport(): NativeProfileRow[];
  /** Starts capturing the stream into a CUDA graph; allocations until captureEnd come from the graph's own pool. */
  captureBegin(): void;
  /** Ends the capture; returns the instantiated graph's id. */
  captureEnd(): number;
  /** Ends a capture without keeping it. */
  captureAbort(): void;
  graphLaunch(graph: number): void;
  graphDestroy(graph: number): void;
}

/** Where the addon is looked for: MAMBA_TS_CUDA_ADDON, else build/Release/mamba_cuda.node of this package. */
export function addonPath(): string {
  const fromEnv = process.env.MAMBA_TS_CUDA_ADDON;
  if (fromEnv) return fromEnv;
  // src/native.ts and dist/native.js are both one level below the package root.
  return fileURLToPath(new URL('../build/Release/mamba_cuda.node', import.meta.url));
}

export type LoadResult = { addon: NativeAddon; path: string } | { addon: null; path: string; reason: string };

export function loadAddon(): LoadResult {
  const path = addonPath();
  if (!existsSync(path)) {
    return {
      addon: null,
      path,
      reason:
        `the CUDA addon is not built (${path} does not exist); build it with ` +
        '`pnpm --filter @mamba-ts/backend-cuda build` on a machine with nvcc, or set MAMBA_TS_CUDA_ADDON',
    };
  }
  try {
    const require = createRequire(import.meta.url);
    return { addon: require(path) as NativeAddon, path };
  } catch (e) {
    return { addon: null, path, reason: `the CUDA addon ${path} failed to load: ${(e as Error).message}` };
  }
}

/**
 * Candidate cuBLASLt libraries, most specific first: MAMBA_TS_CUBLASLT (a file), then libcublasLt.so* in
 * CUDA_HOME / CUDA_PATH, LD_LIBRARY_PATH, /usr/local/cuda/lib64, /usr/lib/x86_64-linux-gnu, then the bare sonames
 * (the dynamic loader's own search).
 */
export function cublasLtCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const names = ['libcublasLt.so.13', 'libcublasLt.so.12', 'libcublasLt.so'];
  const dirs: string[] = [];
  for (const root of [env.CUDA_HOME, env.CUDA_PATH]) {
    if (root) dirs.push(join(root, 'lib64'), join(root, 'lib'), join(root, 'targets', 'x86_64-linux', 'lib'));
  }
  for (const dir of (env.LD_LIBRARY_PATH ?? '').split(delimiter)) if (dir) dirs.push(dir);
  dirs.push('/usr/local/cuda/lib64', '/usr/lib/x86_64-linux-gnu');
  const files: string[] = [];
  if (env.MAMBA_TS_CUBLASLT) files.push(env.MAMBA_TS_CUBLASLT);
  for (const dir of dirs) for (const name of names) if (existsSync(join(dir, name))) files.push(join(dir, name));
  return [...new Set([...files, ...names])];
}
