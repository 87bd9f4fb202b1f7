import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** `pnpm pack` of a workspace package (built dist inside, workspace ranges rewritten); returns the tarball path. */
function pack(dir: string, into: string): string {
  execFileSync('pnpm', ['pack', '--pack-destination', into], { cwd: `${root}packages/${dir}`, stdio: 'ignore' });
  const name = readdirSync(into).find((f) => f.startsWith(`mamba-ts-${dir}-`) && f.endsWith('.tgz'));
  if (!name) throw new Error(`pnpm pack wrote no tarball for packages/${dir}`);
  return `${into}/${name}`;
}

test('tensor, backend-wasm and ssm install from their tarballs alone and run a model outside the workspace', () => {
  const work = mkdtempSync(`${tmpdir()}/mamba-ts-pack-`);
  const tarballs = ['tensor', 'backend-wasm', 'ssm'].map((d) => pack(d, work));
  const app = `${work}/app`;
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(`${app}/package.json`, JSON.stringify({ name: 'app', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs], { cwd: app, stdio: 'pipe', timeout: 300_000 });
  writeFileSync(
    `${app}/main.js`,
    `import * as T from '@mamba-ts/tensor';
import { registerWasmBackend } from '@mamba-ts/backend-wasm';
import { MambaLM, presetConfig, generate } from '@mamba-ts/ssm';
await registerWasmBackend({ activate: true });
const model = new MambaLM(presetConfig('tiny'), { seed: 1 });
const [ids] = await generate(model, [[1, 2, 3]], { greedy: true, maxNewTokens: 4, stopTokens: [] });
const x = T.tensor([1, 2, 3]);
console.log(JSON.stringify({ backend: T.getBackend().name, ids, sum: T.sum(x).toFloat32Sync()[0] }));
`,
  );
  const out = JSON.parse(execFileSync('node', ['main.js'], { cwd: app, encoding: 'utf8' }));
  expect(out.backend).toBe('wasm');
  expect(out.ids).toHaveLength(4);
  expect(out.sum).toBe(6);
}, 400_000);
