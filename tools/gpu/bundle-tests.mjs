#!/usr/bin/env node
// Bundles packages/backend-cuda/test/*.test.ts (with the tensor and backend-cuda sources they import) into plain
// ES modules runnable by `node --test` without node_modules: `vitest` is replaced by ./vitest-shim.mjs.
//   node tools/gpu/bundle-tests.mjs <outDir>
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const pkg = join(root, 'packages', 'backend-cuda');
const outDir = resolve(process.argv[2] ?? join(root, '.device', 'tests'));
const require = createRequire(join(pkg, 'package.json'));
const { rolldown } = await import(require.resolve('rolldown'));

const testDir = join(pkg, 'test');
const input = Object.fromEntries(
  readdirSync(testDir)
    .filter((f) => f.endsWith('.test.ts') && !(process.env.TEST_FILTER && !f.includes(process.env.TEST_FILTER)))
    .map((f) => [basename(f, '.ts'), join(testDir, f)]),
);
input['bench-mixer'] = join(pkg, 'bench', 'mixer.ts');
input['bench-scan'] = join(pkg, 'bench', 'scan.ts');
input['bench-gemm'] = join(pkg, 'bench', 'gemm.ts');
input['bench-conv-norm'] = join(pkg, 'bench', 'conv-norm.ts');
input['bench-elementwise'] = join(pkg, 'bench', 'elementwise.ts');
input['bench-decode'] = join(pkg, 'bench', 'decode.ts');
const bundle = await rolldown({
  input,
  platform: 'node',
  cwd: pkg,
  resolve: {
    conditionNames: ['@mamba-ts/source', 'node', 'import', 'default'],
    alias: { vitest: join(here, 'vitest-shim.mjs') },
  },
  // @mamba-ts/tensor registers the cpu backend when its index is imported, though its package.json says
  // "sideEffects": false: keep every module's side effects.
  treeshake: { moduleSideEffects: true },
  logLevel: 'warn',
});
await bundle.write({ dir: outDir, format: 'esm', entryFileNames: '[name].mjs', chunkFileNames: '[name]-[hash].mjs' });
await bundle.close();
console.log(`bundled ${Object.keys(input).length - 1} test files and the mixer benchmark into ${outDir}`);
