#!/usr/bin/env node
// Bundles one entry module (with every workspace package it imports, from source) into a folder of plain ES modules
// that the carried node runs on a GPU host without node_modules.
//   node tools/gpu/bundle-app.mjs <entry.ts> <outDir>      e.g. apps/bench/src/main.ts .device/bench
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const [entryArg, outArg] = process.argv.slice(2);
if (!entryArg || !outArg) throw new Error('usage: node tools/gpu/bundle-app.mjs <entry.ts> <outDir>');
const entry = resolve(entryArg);
const require = createRequire(join(root, 'packages', 'backend-cuda', 'package.json'));
const { rolldown } = await import(require.resolve('rolldown'));
// Entries outside a package (tools/gpu/*.ts) cannot resolve workspace packages by name: point them at the sources.
const source = (pkg) => join(root, 'packages', pkg, 'src', 'index.ts');
const alias = Object.fromEntries(['tensor', 'ssm', 'peft', 'backend-cuda'].map((p) => [`@mamba-ts/${p}`, source(p)]));

const bundle = await rolldown({
  input: { [basename(entry).replace(/\.ts$/, '')]: entry },
  platform: 'node',
  cwd: join(root, 'apps', 'bench'),
  resolve: { conditionNames: ['@mamba-ts/source', 'node', 'import', 'default'], ...(entry.startsWith(join(root, 'tools')) ? { alias } : {}) },
  // @mamba-ts/tensor registers the cpu backend when imported: keep every module's side effects.
  treeshake: { moduleSideEffects: true },
  logLevel: 'warn',
});
await bundle.write({ dir: resolve(outArg), format: 'esm', entryFileNames: '[name].mjs', chunkFileNames: '[name]-[hash].mjs' });
await bundle.close();
console.log(`bundled ${entryArg} into ${outArg}`);
