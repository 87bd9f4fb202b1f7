import { engine } from '../../engine.js';
import { CpuBackend } from './backend.js';
import { basicKernels } from './kernels-basic.js';
import { decodeKernels } from './kernels-decode.js';
import { fusedKernels } from './kernels-fused.js';

export { CpuBackend } from './backend.js';

/** Registers the reference backend "cpu" and all its kernels (idempotent). */
export function registerCpuBackend(): void {
  const e = engine();
  if (e.backendNames().includes('cpu')) return;
  e.registerBackend(new CpuBackend());
  for (const [name, fn] of Object.entries({ ...basicKernels(), ...fusedKernels(), ...decodeKernels() })) e.registerKernel('cpu', name, fn);
}
