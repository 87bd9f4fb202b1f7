// Loads the package in headless Chromium (sources transpiled on the fly, the wasm embedded as built) and runs
// kernels there, proving the loading path uses no Node-only API.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, expect, test } from 'vitest';

const packages = join(dirname(fileURLToPath(import.meta.url)), '../..');
const ROOTS: Record<string, string> = { tensor: join(packages, 'tensor/src'), wasm: join(packages, 'backend-wasm/src') };

const PAGE = `<!doctype html><html><head><script type="importmap">
{ "imports": { "@mamba-ts/tensor": "/tensor/index.js", "@mamba-ts/backend-wasm": "/wasm/index.js" } }
</script></head><body><script type="module">
const report = (body) => fetch('/result', { method: 'POST', body: JSON.stringify(body) });
try {
  const T = await import('@mamba-ts/tensor');
  const { registerWasmBackend } = await import('@mamba-ts/backend-wasm');
  await registerWasmBackend({ activate: true });
  const a = T.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = T.tensor([1, 0, -1, 2, 0.5, 1], [3, 2]);
  const c = T.matmul(a, b);
  const s = T.silu(T.tensor([-1, 0, 1, 2, 3]));
  await report({ backend: c.backend, matmul: Array.from(await c.data()), silu: Array.from(await s.data()), fallbacks: T.engine().fallbacks() });
} catch (e) {
  await report({ error: String(e && e.stack || e) });
}
</script></body></html>`;

function findChromium(): string | null {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    const found = spawnSync('which', [name], { encoding: 'utf8' });
    if (found.status === 0) return found.stdout.trim();
  }
  return null;
}

/** Installs Debian's chromium when missing and we are root with apt-get; returns the reason when impossible. */
function ensureChromium(): { path: string } | { reason: string } {
  const existing = findChromium();
  if (existing) return { path: existing };
  if (process.getuid?.() !== 0 || spawnSync('which', ['apt-get']).status !== 0) return { reason: 'chromium is not installed and apt-get is unavailable (not root)' };
  spawnSync('apt-get', ['update'], { stdio: 'ignore', timeout: 240_000 });
  const install = spawnSync('apt-get', ['install', '-y', 'chromium'], { stdio: 'ignore', timeout: 400_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const path = findChromium();
  return path ? { path } : { reason: `apt-get install -y chromium failed (exit ${install.status})` };
}

function transpiled(root: string, path: string): string | null {
  const file = normalize(join(root, path.replace(/\.js$/, '.ts')));
  if (!file.startsWith(root)) return null;
  try {
    const source = readFileSync(file, 'utf8');
    return ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true } }).outputText;
  } catch {
    return null;
  }
}

let chromium: { path: string } | { reason: string };
let server: Server;
let browser: ChildProcess | undefined;
let profileDir: string | undefined;
let resolveResult: (body: string) => void;
const result = new Promise<string>((resolve) => (resolveResult = resolve));

beforeAll(async () => {
  chromium = ensureChromium();
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'POST' && url.pathname === '/result') {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        res.end('ok');
        resolveResult(body);
      });
      return;
    }
    if (url.pathname === '/') {
      res.setHeader('content-type', 'text/html');
      res.end(PAGE);
      return;
    }
    const [, pkg, ...rest] = url.pathname.split('/');
    const js = ROOTS[pkg] ? transpiled(ROOTS[pkg], rest.join('/')) : null;
    if (js === null) {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.setHeader('content-type', 'text/javascript');
    res.end(js);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
}, 600_000);

afterAll(async () => {
  // Chromium forks helpers into its own process group (detached below): end the whole group we started.
  if (browser?.pid && browser.exitCode === null) {
    const exited = new Promise((resolve) => browser!.once('exit', resolve));
    try {
      process.kill(-browser.pid, 'SIGKILL');
    } catch {
      browser.kill('SIGKILL');
    }
    await exited;
  }
  server?.close();
  if (profileDir) rmSync(profileDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
});

test('the wasm backend loads and runs kernels in headless Chromium', async (ctx) => {
  if ('reason' in chromium) {
    ctx.skip(`skipped: ${chromium.reason}`);
    return;
  }
  profileDir = mkdtempSync(join(tmpdir(), 'mamba-ts-chromium-'));
  const { port } = server.address() as AddressInfo;
  browser = spawn(chromium.path, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--no-first-run', '--disable-dev-shm-usage', `--user-data-dir=${profileDir}`, `http://127.0.0.1:${port}/`,
  ], { stdio: 'ignore', detached: true });
  const timeout = new Promise<string>((_, reject) => setTimeout(() => reject(new Error('no result from the page within 60 s')), 60_000));
  const body = JSON.parse(await Promise.race([result, timeout]));
  expect(body.error).toBeUndefined();
  expect(body.backend).toBe('wasm');
  expect(body.matmul).toEqual([0.5, 7, 2, 16]);
  const silu = [-1, 0, 1, 2, 3].map((x) => x / (1 + Math.exp(-x)));
  body.silu.forEach((v: number, i: number) => expect(v).toBeCloseTo(silu[i], 5));
  expect(body.fallbacks).toEqual({});
}, 90_000);
