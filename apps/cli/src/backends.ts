import { cpus, totalmem } from 'node:os';
import { engine, getBackend, setBackend } from '@mamba-ts/tensor';
import { UsageError } from './cli-error.js';

export const BACKENDS = ['cpu', 'wasm', 'cuda'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** Registers and activates a backend by name; `auto` picks cuda, then wasm, then cpu. */
export async function useBackend(requested: string | undefined): Promise<BackendName> {
  const name = requested ?? 'auto';
  if (name !== 'auto' && !BACKENDS.includes(name as BackendName)) {
    throw new UsageError(`Unknown backend "${name}"; valid backends: auto, ${BACKENDS.join(', ')}.`);
  }
  const order: BackendName[] = name === 'auto' ? ['cuda', 'wasm', 'cpu'] : [name as BackendName];
  const reasons: string[] = [];
  for (const candidate of order) {
    const reason = await activate(candidate);
    if (reason === null) return candidate;
    reasons.push(`${candidate}: ${reason}`);
  }
  throw new UsageError(`Backend "${name}" is not available (${reasons.join('; ')}).`);
}

/** Returns null when the backend is active, else why it is not available. */
async function activate(name: BackendName): Promise<string | null> {
  if (name === 'cpu') {
    setBackend('cpu');
    return null;
  }
  if (engine().backendNames().includes(name)) {
    setBackend(name);
    return null;
  }
  const loader = BACKEND_LOADERS[name];
  if (!loader) return 'not installed';
  try {
    return await loader();
  } catch (e) {
    return (e as Error).message;
  }
}

/** Each loader registers and activates its backend, or returns the reason it cannot. */
const BACKEND_LOADERS: Partial<Record<BackendName, () => Promise<string | null>>> = {
  wasm: async () => {
    await (await import('@mamba-ts/backend-wasm')).registerWasmBackend({ activate: true });
    return null;
  },
  cuda: async () => {
    const cuda = await import('@mamba-ts/backend-cuda');
    if (!cuda.isAvailable()) return cuda.unavailableReason();
    cuda.registerCudaBackend({ activate: true });
    return null;
  },
};

export function registerBackendLoader(name: BackendName, loader: () => Promise<string | null>): void {
  BACKEND_LOADERS[name] = loader;
}

/** The active backend's device in words and how many bytes it can hold. */
export async function describeBackend(): Promise<{ name: string; device: string; memoryBytes: number }> {
  const name = getBackend().name;
  if (name === 'cuda') {
    const cuda = await import('@mamba-ts/backend-cuda');
    const device = cuda.cudaStatus().device;
    if (device) {
      const described = `${device.name} (compute ${device.computeCapability}; f32 matmuls: ${cuda.f32MatmulMode()})`;
      return { name, device: described, memoryBytes: device.totalMemory };
    }
  }
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return { name, device: `${cpus().length} × ${cpu}`, memoryBytes: name === 'wasm' ? 4 * 2 ** 30 : totalmem() };
}
