import { readFile } from 'node:fs/promises';
import {
  compareResults, formatComparisonMarkdown, formatIclMarkdown, formatMarkdown, iclGains, knownTaskNames, runEval,
  type EvalProgress, type EvalResults, type IclReport, type IclSource,
} from '@mamba-ts/eval';
import { type CommandSpec, intOption, numberOption, parseCommand, required } from '../args.js';
import { useBackend } from '../backends.js';
import { UsageError } from '../cli-error.js';
import { loadModel } from '../models.js';
import { progressLine } from '../progress.js';
import { writeFileAtomic } from '@mamba-ts/peft';

export const evalSpec: CommandSpec = {
  name: 'eval',
  summary: 'in-context learning evaluation with lm-evaluation-harness v0.4.2 semantics',
  usage: 'eval --model DIR --tasks t1,t2 --shots 0,5 --data-dir DIR --out FILE.json [options]',
  options: {
    model: { type: 'string' }, tasks: { type: 'string' }, shots: { type: 'string' }, 'data-dir': { type: 'string' },
    limit: { type: 'string' }, 'batch-size': { type: 'string' }, backend: { type: 'string' }, dtype: { type: 'string' },
    adapter: { type: 'string' }, 'log-samples': { type: 'string' }, out: { type: 'string' }, 'max-length': { type: 'string' },
    'bootstrap-iters': { type: 'string' }, quiet: { type: 'boolean' },
  },
  help: [
    '--model DIR          checkpoint directory (Mamba or GPT-NeoX)',
    `--tasks LIST         comma-separated: ${['lambada_openai', 'hellaswag', 'piqa', 'arc_easy', 'arc_challenge', 'winogrande', 'openbookqa', 'mmlu'].join(', ')}`,
    '--shots LIST         few-shot counts, e.g. 0,1,3,5 (default 0)',
    '--data-dir DIR       holds <task>/<split>.jsonl in the Hugging Face schema',
    '--out FILE.json      results; with several shot counts also FILE.<k>shot.json per count',
    '--limit N            first N documents per task (a fraction < 1 takes that share)',
    '--batch-size B       context groups per batch (default 16)',
    '--max-length N       longest scored sequence, left-truncated beyond (default 2048 / the model\'s)',
    '--bootstrap-iters N  resamples for perplexity stderr (default 100000)',
    '--log-samples DIR    write every document\'s requests and responses, one JSONL file per task',
    '--backend B, --dtype D, --adapter DIR, --quiet',
  ],
};

function shotList(text: string | undefined): number[] {
  if (text === undefined) return [0];
  const shots = text.split(',').map((s) => Number(s.trim()));
  if (shots.some((k) => !Number.isInteger(k) || k < 0)) throw new UsageError(`--shots must be non-negative integers like 0,5, got "${text}".`);
  return [...new Set(shots)].sort((a, b) => a - b);
}

export async function evalCommand(argv: string[]): Promise<void> {
  const v = parseCommand(evalSpec, argv);
  if (!v) return;
  const dir = required(v, 'model', 'eval');
  const tasks = required(v, 'tasks', 'eval').split(',').map((t) => t.trim()).filter(Boolean);
  const unknown = tasks.filter((t) => !knownTaskNames().includes(t));
  if (unknown.length > 0) throw new UsageError(`Unknown task "${unknown[0]}"; known tasks: ${knownTaskNames().filter((t) => !t.startsWith('mmlu_')).join(', ')}, mmlu_<subject>.`);
  const shots = shotList(v.shots as string | undefined);
  const dataDir = required(v, 'data-dir', 'eval');
  const out = required(v, 'out', 'eval');
  const backend = await useBackend(v.backend as string | undefined);
  const model = await loadModel(dir, v.dtype as string | undefined, v.adapter as string | undefined);
  try {
    const lm = model.languageModel({
      batchSize: intOption(v, 'batch-size', 16, { min: 1 }),
      ...(v['max-length'] !== undefined ? { maxLength: intOption(v, 'max-length', 2048, { min: 1 }) } : {}),
    });
    const limit = v.limit === undefined ? undefined : numberOption(v, 'limit', 0);
    const byShot: Record<string, EvalResults> = {};
    for (const k of shots) {
      byShot[String(k)] = await runEval({
        model: lm, tasks, shots: k, dataDir,
        ...(limit !== undefined ? { limit } : {}),
        ...(v['log-samples'] ? { logSamplesDir: shots.length > 1 ? `${v['log-samples']}/${k}shot` : (v['log-samples'] as string) } : {}),
        bootstrapIters: intOption(v, 'bootstrap-iters', 100_000),
        modelInfo: { model: model.kind, modelArgs: `pretrained=${dir}`, batchSize: intOption(v, 'batch-size', 16, { min: 1 }), device: backend },
        ...(v.quiet ? {} : { onProgress: (p: EvalProgress) => progressLine(`${k}-shot ${p.stage}`, p.done, p.total) }),
      });
    }
    if (shots.length === 1) {
      await writeFileAtomic(out, `${JSON.stringify(byShot[String(shots[0])], null, 2)}\n`);
      console.log(formatMarkdown(byShot[String(shots[0])]));
      return;
    }
    const stem = out.replace(/\.json$/, '');
    for (const k of shots) await writeFileAtomic(`${stem}.${k}shot.json`, `${JSON.stringify(byShot[String(k)], null, 2)}\n`);
    const report: IclReport = { byShot, icl: iclGains(Object.values(byShot)) };
    await writeFileAtomic(out, `${JSON.stringify(report, null, 2)}\n`);
    for (const k of shots) console.log(`\n## ${k}-shot\n\n${formatMarkdown(byShot[String(k)])}`);
    console.log(`\n## In-context learning gain\n\n${formatIclMarkdown(report.icl)}`);
  } finally {
    model.dispose();
  }
}

export const evalCompareSpec: CommandSpec = {
  name: 'eval-compare',
  summary: 'ICL gain of A over its zero-shot, divided by B\'s (the paper\'s ratio)',
  usage: 'eval-compare A.json B.json   (each a multi-shot eval file, or comma-separated per-shot files)',
  options: {},
  help: [],
};

async function readSource(arg: string): Promise<IclSource> {
  const files = arg.split(',').filter(Boolean);
  // One file after the other, so that a bad file is reported in argument order (not whichever read failed first).
  const parsed: (EvalResults | IclReport)[] = [];
  for (const f of files) {
    try {
      parsed.push(JSON.parse(await readFile(f, 'utf8')) as EvalResults | IclReport);
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : `not valid JSON (${(e as Error).message})`;
      throw new UsageError(`${f}: ${why}.`);
    }
  }
  if (parsed.length === 1 && 'byShot' in parsed[0]) return parsed[0] as IclReport;
  for (const [i, p] of parsed.entries()) {
    if (!('results' in p)) throw new UsageError(`${files[i]}: not a results file of mamba-ts eval (no "results" or "byShot").`);
  }
  return parsed as EvalResults[];
}

export async function evalCompareCommand(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    console.log(`mamba-ts eval-compare — ${evalCompareSpec.summary}\n\nUsage: mamba-ts ${evalCompareSpec.usage}`);
    return;
  }
  if (argv.length !== 2) throw new UsageError('eval-compare: give exactly two results files, A and B (see mamba-ts eval-compare --help).');
  const a = await readSource(argv[0]);
  const b = await readSource(argv[1]);
  const cmp = compareResults(a, b);
  console.log(formatComparisonMarkdown(cmp, { a: argv[0], b: argv[1] }));
}
