#!/usr/bin/env node
// Bundles apps/bench (with every workspace package it imports, from source) into one folder of plain ES modules
// that the carried node runs on a GPU host without node_modules.
//   node tools/gpu/bundle-bench.mjs <outDir>
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const outDir = resolve(process.argv[2] ?? join(root, '.device', 'bench'));
const require = createRequire(join(root, 'packages', 'backend-cuda', 'package.json'));
const { rolldown } = await import(require.resolve('rolldown'));

const bundle = await rolldown({
  input: { main: join(root, 'apps', 'bench', 'src', 'main.ts') },
  platform: 'node',
  cwd: join(root, 'apps', 'bench'),
  resolve: { conditionNames: ['@mamba-ts/source', 'node', 'import', 'default'] },
  treeshake: { moduleSideEffects: true },
  logLevel: 'warn',
});
await bundle.write({ dir: outDir, format: 'esm', entryFileNames: '[name].mjs', chunkFileNames: '[name]-[hash].mjs' });
await bundle.close();
console.log(`bundled apps/bench into ${outDir}`);
