import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './cli-error.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  options: Options;
  /** Help lines for the options, in order. */
  help: string[];
}

export function helpText(spec: CommandSpec): string {
  return [`mamba-ts ${spec.name} — ${spec.summary}`, '', `Usage: mamba-ts ${spec.usage}`, '', 'Options:', ...spec.help.map((h) => `  ${h}`), '  --help              show this help'].join('\n');
}

/** Parses argv for a command; unknown flags and missing values become one clear sentence. */
export function parseCommand(spec: CommandSpec, argv: string[]): Record<string, string | boolean | undefined> | null {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...spec.options, help: { type: 'boolean' } }, allowPositionals: false, strict: true });
  } catch (e) {
    throw new UsageError(`${spec.name}: ${(e as Error).message.split('\n')[0]} (see mamba-ts ${spec.name} --help).`);
  }
  if (parsed.values.help) {
    console.log(helpText(spec));
    return null;
  }
  return parsed.values as Record<string, string | boolean | undefined>;
}

export function required(values: Record<string, unknown>, name: string, command: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`${command}: --${name} is required (see mamba-ts ${command} --help).`);
  return v;
}

export function intOption(values: Record<string, unknown>, name: string, fallback: number, { min = 0 } = {}): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${String(v)}".`);
  return n;
}

export function numberOption(values: Record<string, unknown>, name: string, fallback: number): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${String(v)}".`);
  return n;
}

/** "1,2,3" → [1, 2, 3]. */
export function idList(text: string, name = 'ids'): number[] {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new UsageError(`--${name} is empty: give comma-separated token ids like 1,2,3.`);
  return parts.map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name}: "${p}" is not a token id (a non-negative integer).`);
    return n;
  });
}
