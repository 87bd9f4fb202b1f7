#!/usr/bin/env node
// Bundles tools/gpu/profile.ts (with the workspace packages it imports, from source) into one folder of plain ES
// modules that the carried node runs on a GPU host (or here, with --null-device).
//   node tools/gpu/bundle-profile.mjs <outDir>
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const outDir = resolve(process.argv[2] ?? join(root, '.device', 'profile'));
const require = createRequire(join(root, 'packages', 'backend-cuda', 'package.json'));
const { rolldown } = await import(require.resolve('rolldown'));
const source = (pkg) => join(root, 'packages', pkg, 'src', 'index.ts');

const bundle = await rolldown({
  input: { profile: join(here, 'profile.ts') },
  platform: 'node',
  cwd: join(root, 'apps', 'bench'),
  resolve: {
    conditionNames: ['@mamba-ts/source', 'node', 'import', 'default'],
    alias: {
      '@mamba-ts/tensor': source('tensor'),
      '@mamba-ts/ssm': source('ssm'),
      '@mamba-ts/peft': source('peft'),
      '@mamba-ts/backend-cuda': source('backend-cuda'),
    },
  },
  treeshake: { moduleSideEffects: true },
  logLevel: 'warn',
});
await bundle.write({ dir: outDir, format: 'esm', entryFileNames: '[name].mjs', chunkFileNames: '[name]-[hash].mjs' });
await bundle.close();
console.log(`bundled tools/gpu/profile.ts into ${outDir}`);
