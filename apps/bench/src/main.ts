#!/usr/bin/env node
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BenchUsageError, HELP, parseBenchArgs } from './options.js';
import { renderHtml } from './report/html.js';
import { renderMarkdown } from './report/markdown.js';
import { runBench } from './run.js';

/** Writes report.json, report.md and report.html into `dir` (each file atomically). */
async function writeReports(dir: string, files: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    const tmp = join(dir, `.${name}.tmp-${process.pid}`);
    try {
      await writeFile(tmp, text);
      await rename(tmp, join(dir, name));
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  try {
    const opts = parseBenchArgs(argv);
    if (!opts) {
      console.log(HELP);
      return 0;
    }
    const report = await runBench(opts);
    const dir = opts.out ?? join('bench-results', report.createdAt.replace(/[:.]/g, '-'));
    const md = renderMarkdown(report);
    await writeReports(dir, { 'report.json': `${JSON.stringify(report, null, 2)}\n`, 'report.md': md, 'report.html': renderHtml(report) });
    if (opts.json) console.log(JSON.stringify(report, null, 2));
    else console.log(`${md}\nReports: ${join(dir, 'report.json')}, report.md, report.html (${report.seconds.toFixed(1)} s)`);
    return 0;
  } catch (e) {
    const err = e as Error;
    if (process.env.MAMBA_TS_DEBUG) console.error(err.stack);
    else console.error(`mamba-ts bench: ${err.message}`);
    return err instanceof BenchUsageError ? 2 : 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main(process.argv.slice(2));
