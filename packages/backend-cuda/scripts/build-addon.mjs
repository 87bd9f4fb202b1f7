#!/usr/bin/env node
// Builds the CUDA addon (build/Release/mamba_cuda.node) with cmake-js where nvcc exists; elsewhere prints why it
// is skipped and exits 0, so `pnpm build` works on machines without the CUDA toolkit.
//   MAMBA_TS_CUDA_SKIP_BUILD=1   skip even where nvcc exists
//   MAMBA_TS_CUDA_ARCH=90-real;90-virtual   CMAKE_CUDA_ARCHITECTURES (default: sm_90 machine code + compute_90 PTX)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function findNvcc() {
  const roots = [process.env.CUDACXX && dirname(dirname(process.env.CUDACXX)), process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda'];
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'nvcc'))) return join(dir, 'nvcc');
  }
  for (const root of roots) {
    if (root && existsSync(join(root, 'bin', 'nvcc'))) return join(root, 'bin', 'nvcc');
  }
  return null;
}

function findCmake() {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'cmake'))) return join(dir, 'cmake');
  }
  return null;
}

if (process.env.MAMBA_TS_CUDA_SKIP_BUILD === '1') {
  console.log('backend-cuda: MAMBA_TS_CUDA_SKIP_BUILD=1, skipping the CUDA addon build.');
  process.exit(0);
}
const nvcc = findNvcc();
if (!nvcc) {
  console.log('backend-cuda: nvcc not found (PATH, CUDA_HOME, CUDA_PATH, /usr/local/cuda): skipping the CUDA addon build; the cuda backend will report "addon not built".');
  process.exit(0);
}
const cmake = findCmake();
if (!cmake) {
  console.error('backend-cuda: nvcc was found but cmake was not; install CMake ≥ 3.18 to build the CUDA addon (or set MAMBA_TS_CUDA_SKIP_BUILD=1).');
  process.exit(1);
}

const require = createRequire(import.meta.url);
const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const arch = process.env.MAMBA_TS_CUDA_ARCH ?? '90-real;90-virtual';
const args = [
  cmakeJs, 'compile', '--directory', packageDir, '--out', join(packageDir, 'build'), '--config', 'Release',
  '--prefer-make', '--parallel', String(Math.max(1, Math.min(8, (await import('node:os')).availableParallelism()))),
  `--CDCMAKE_CUDA_COMPILER=${nvcc}`, `--CDCMAKE_CUDA_ARCHITECTURES=${arch}`,
];
console.log(`backend-cuda: building the CUDA addon with ${nvcc} (architectures ${arch})…`);
const result = spawnSync(process.execPath, args, { cwd: packageDir, stdio: 'inherit' });
if (result.status !== 0) {
  console.error('backend-cuda: the CUDA addon build failed (see the output above).');
  process.exit(result.status ?? 1);
}
console.log(`backend-cuda: built ${join(packageDir, 'build', 'Release', 'mamba_cuda.node')}`);
