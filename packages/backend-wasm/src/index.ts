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

/** The registered wasm backend, if any (activating it when asked). */
function registered(activate: boolean): WasmBackend | null {
  const e = engine();
  if (!e.backendNames().includes('wasm')) return null;
  if (activate) e.setBackend('wasm');
  return e.findBackend('wasm') as WasmBackend;
}

function register(kernels: KernelExports, activate: boolean): WasmBackend {
  const e = engine();
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
  const existing = registered(activate);
  if (existing) return existing;
  // Concurrent first calls share one compilation and one backend.
  pending ??= instantiateKernels().then((kernels) => registered(false) ?? register(kernels, false));
  const backend = await pending;
  if (activate) engine().setBackend('wasm');
  return backend;
}

let pending: Promise<WasmBackend> | null = null;

/** The synchronous variant for Node and workers (browser main threads only allow the async one). */
export function registerWasmBackendSync({ activate = false }: RegisterWasmOptions = {}): WasmBackend {
  return registered(activate) ?? register(instantiateKernelsSync(), activate);
}
