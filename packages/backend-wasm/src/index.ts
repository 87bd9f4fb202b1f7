import { engine, type KernelFunc } from '@mamba-ts/tensor';
import { WasmBackend } from './backend.js';
import { elementwiseKernels } from './kernels/elementwise.js';
import { fusedKernels } from './kernels/fused.js';
import { lossKernels } from './kernels/losses.js';
import { matmulKernels } from './kernels/matmul.js';
import { reduceKernels } from './kernels/reduce.js';
import { shapeKernels } from './kernels/shape.js';
import { instantiateKernels, instantiateKernelsSync, type KernelExports } from './wasm-module.js';

export { WasmBackend, WasmBuffer } from './backend.js';
export { HeapAllocator } from './allocator.js';
export { instantiateKernels, instantiateKernelsSync, wasmBytes, type KernelExports } from './wasm-module.js';

export interface RegisterWasmOptions {
  /** Make `wasm` the active backend (default false: cpu stays active). */
  activate?: boolean;
}

/** Every kernel this backend implements natively, by name. */
export function wasmKernels(): Record<string, KernelFunc> {
  return { ...elementwiseKernels(), ...matmulKernels(), ...shapeKernels(), ...reduceKernels(), ...fusedKernels(), ...lossKernels() };
}

function register(kernels: KernelExports, activate: boolean): WasmBackend {
  const e = engine();
  if (e.backendNames().includes('wasm')) {
    const existing = e.findBackend('wasm');
    if (activate) e.setBackend('wasm');
    return existing as WasmBackend;
  }
  const backend = new WasmBackend(kernels);
  e.registerBackend(backend, { activate });
  for (const [name, fn] of Object.entries(wasmKernels())) e.registerKernel('wasm', name, fn);
  return backend;
}

/**
 * Compiles the embedded module and registers backend `wasm` with its kernels (idempotent). Works in Node and
 * browsers. `await registerWasmBackend({ activate: true })` makes it the default backend.
 */
export async function registerWasmBackend({ activate = false }: RegisterWasmOptions = {}): Promise<WasmBackend> {
  if (engine().backendNames().includes('wasm')) return register(null as never, activate);
  return register(await instantiateKernels(), activate);
}

/** The synchronous variant for Node and workers (browser main threads only allow the async one). */
export function registerWasmBackendSync({ activate = false }: RegisterWasmOptions = {}): WasmBackend {
  if (engine().backendNames().includes('wasm')) return register(null as never, activate);
  return register(instantiateKernelsSync(), activate);
}
