import { readFile } from 'node:fs/promises';
import { Rng } from './rng.js';

/** One training record: plain text (loss on every token) or an instruction (loss on the response only). */
export type DataRecord =
  | { kind: 'text'; text: string }
  | { kind: 'instruction'; instruction: string; input: string; output: string };

export interface SourcedRecord {
  record: DataRecord;
  /** 1-based line number in the file. */
  line: number;
}

export type BadLinePolicy = 'stop' | 'skip';

export interface ReadDataOptions {
  /** What to do with a malformed line: stop with an error (default) or skip it with a warning naming the line. */
  onBadLine?: BadLinePolicy;
  warn?: (message: string) => void;
}

export interface DataFile {
  path: string;
  records: SourcedRecord[];
  /** Lines that were skipped (only with onBadLine 'skip'), with the reason. */
  skipped: { line: number; reason: string }[];
}

/** Checks one parsed JSONL value; returns the record or the reason it is not one. */
export function parseRecord(value: unknown): DataRecord | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'expected a JSON object';
  const o = value as Record<string, unknown>;
  if ('text' in o) {
    if (typeof o.text !== 'string') return `"text" must be a string, got ${typeof o.text}`;
    return { kind: 'text', text: o.text };
  }
  if ('instruction' in o || 'output' in o) {
    for (const field of ['instruction', 'output'] as const) {
      if (typeof o[field] !== 'string') return `"${field}" must be a string in an instruction record`;
    }
    if (o.input !== undefined && o.input !== null && typeof o.input !== 'string') return '"input" must be a string when present';
    return { kind: 'instruction', instruction: o.instruction as string, input: (o.input as string | null) ?? '', output: o.output as string };
  }
  return 'expected {"text": …} or {"instruction": …, "input": …, "output": …}';
}

/** Parses JSONL text (blank lines are ignored). */
export function parseJsonl(text: string, path: string, { onBadLine = 'stop', warn = console.warn }: ReadDataOptions = {}): DataFile {
  const records: SourcedRecord[] = [];
  const skipped: { line: number; reason: string }[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    let parsed: DataRecord | string;
    try {
      parsed = parseRecord(JSON.parse(raw));
    } catch (e) {
      parsed = `not valid JSON (${(e as Error).message})`;
    }
    if (typeof parsed !== 'string') {
      records.push({ record: parsed, line });
      return;
    }
    if (onBadLine === 'stop') {
      throw new Error(`${path}:${line}: ${parsed}; fix the line or skip bad lines (onBadLine "skip", --on-bad-line skip).`);
    }
    skipped.push({ line, reason: parsed });
    warn(`${path}:${line}: skipped: ${parsed}.`);
  });
  return { path, records, skipped };
}

export async function readJsonl(path: string, opts: ReadDataOptions = {}): Promise<DataFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read the data file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}).`);
  }
  return parseJsonl(text, path, opts);
}

/** The Alpaca prompt; the loss covers only what follows it (the response and the end-of-text token). */
export function instructionPrompt(instruction: string, input: string): string {
  return input.trim() !== ''
    ? 'Below is an instruction that describes a task, paired with an input that provides further context. ' +
        `Write a response that appropriately completes the request.\n\n### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:\n`
    : 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
        `### Instruction:\n${instruction}\n\n### Response:\n`;
}

export interface Encoder {
  encode(text: string): number[];
}

/** A tokenized example: `labels[t]` is the target of position t−1 (−100 = no loss), as HF causal-LM labels. */
export interface Example {
  ids: number[];
  labels: number[];
  line: number;
}

export const IGNORE = -100;

export function tokenizeRecord({ record, line }: SourcedRecord, tok: Encoder, eosId: number): Example {
  if (record.kind === 'text') {
    const ids = [...tok.encode(record.text), eosId];
    return { ids, labels: [...ids], line };
  }
  const prompt = tok.encode(instructionPrompt(record.instruction, record.input));
  const response = [...tok.encode(record.output), eosId];
  return { ids: [...prompt, ...response], labels: [...prompt.map(() => IGNORE), ...response], line };
}

/** A fixed-length training row. */
export interface Row {
  ids: Int32Array;
  labels: Int32Array;
  /** Positions that are real tokens (not padding). */
  tokens: number;
}

export interface BatchingOptions {
  seqLen: number;
  /** Pack examples end to end into rows of seqLen (default), or give each example its own padded row. */
  packing?: boolean;
  /** Without packing: cut over-long examples to seqLen instead of refusing them. */
  truncate?: boolean;
  padId: number;
  source?: string;
}

function padRow(ids: number[], labels: number[], length: number, padId: number): Row {
  const row: Row = { ids: new Int32Array(length).fill(padId), labels: new Int32Array(length).fill(IGNORE), tokens: ids.length };
  row.ids.set(ids);
  row.labels.set(labels);
  return row;
}

/**
 * Turns examples into rows. Packing concatenates every example (each ends with the end-of-text token) and cuts
 * the stream into rows of seqLen (the last one padded); padding gives each example a row padded to seqLen, and a
 * longer example is an error naming its line (or is cut with `truncate`).
 */
export function makeRows(examples: readonly Example[], { seqLen, packing = true, truncate = false, padId, source = 'data' }: BatchingOptions): Row[] {
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new Error(`seq-len must be an integer ≥ 2, got ${seqLen}.`);
  const rows: Row[] = [];
  if (packing) {
    const ids = examples.flatMap((e) => e.ids);
    const labels = examples.flatMap((e) => e.labels);
    for (let start = 0; start < ids.length; start += seqLen) {
      rows.push(padRow(ids.slice(start, start + seqLen), labels.slice(start, start + seqLen), seqLen, padId));
    }
    return rows.filter((r) => hasTarget(r));
  }
  for (const e of examples) {
    if (e.ids.length > seqLen && !truncate) {
      throw new Error(
        `${source}:${e.line}: the example is ${e.ids.length} tokens, longer than seq-len ${seqLen}; raise --seq-len, use packing, or allow --truncate.`,
      );
    }
    const row = padRow(e.ids.slice(0, seqLen), e.labels.slice(0, seqLen), seqLen, padId);
    if (hasTarget(row)) rows.push(row);
  }
  return rows;
}

/** A row contributes to the loss if some position t ≥ 1 has a label (position 0 is never predicted). */
function hasTarget(row: Row): boolean {
  for (let t = 1; t < row.labels.length; t++) if (row.labels[t] !== IGNORE) return true;
  return false;
}

/** Positions with a loss in a row (labels[1..] that are not ignored), for token-weighted means. */
export function targetCount(row: Row): number {
  let n = 0;
  for (let t = 1; t < row.labels.length; t++) if (row.labels[t] !== IGNORE) n++;
  return n;
}

export interface Batch {
  ids: Int32Array;
  labels: Int32Array;
  batch: number;
  length: number;
  /** Real (non-padding) tokens. */
  tokens: number;
}

/** Stacks rows into one (B, L) batch, L = the longest row's real length (right padding trimmed). */
export function stackRows(rows: readonly Row[], padId: number): Batch {
  const length = Math.max(2, ...rows.map((r) => r.tokens));
  const ids = new Int32Array(rows.length * length).fill(padId);
  const labels = new Int32Array(rows.length * length).fill(IGNORE);
  rows.forEach((r, b) => {
    ids.set(r.ids.subarray(0, length), b * length);
    labels.set(r.labels.subarray(0, length), b * length);
  });
  return { ids, labels, batch: rows.length, length, tokens: rows.reduce((n, r) => n + r.tokens, 0) };
}

export interface Cursor {
  epoch: number;
  /** Position in the epoch's shuffled order of the next row. */
  position: number;
}

/**
 * Deterministic batches: each epoch visits every row once in an order shuffled from (seed, epoch), so a saved
 * cursor is all it takes to continue exactly where a run stopped.
 */
export class BatchStream {
  cursor: Cursor;
  #order: number[];
  #orderEpoch: number;

  constructor(
    readonly rows: readonly Row[],
    readonly batchSize: number,
    readonly seed: number,
    readonly padId: number,
    cursor: Cursor = { epoch: 0, position: 0 },
  ) {
    if (rows.length === 0) throw new Error('BatchStream: no rows.');
    this.cursor = { ...cursor };
    this.#orderEpoch = cursor.epoch;
    this.#order = this.#orderFor(cursor.epoch);
  }

  #orderFor(epoch: number): number[] {
    return new Rng((this.seed * 1_000_003 + epoch * 7919 + 1) >>> 0).permutation(this.rows.length);
  }

  next(): Batch {
    if (this.cursor.position >= this.rows.length) this.cursor = { epoch: this.cursor.epoch + 1, position: 0 };
    if (this.#orderEpoch !== this.cursor.epoch) {
      this.#order = this.#orderFor(this.cursor.epoch);
      this.#orderEpoch = this.cursor.epoch;
    }
    const { position } = this.cursor;
    const picked = this.#order.slice(position, position + this.batchSize).map((i) => this.rows[i]);
    this.cursor = { epoch: this.cursor.epoch, position: position + picked.length };
    return stackRows(picked, this.padId);
  }
}

/** Splits records into train and held-out eval sets: a deterministic `fraction` of them (at least one) goes to eval. */
export function splitRecords(records: readonly SourcedRecord[], fraction: number, seed: number): { train: SourcedRecord[]; evaluation: SourcedRecord[] } {
  if (!(fraction >= 0 && fraction < 1)) throw new Error(`eval fraction must be in [0, 1), got ${fraction}.`);
  if (fraction === 0 || records.length < 2) return { train: [...records], evaluation: [] };
  const count = Math.min(records.length - 1, Math.max(1, Math.round(fraction * records.length)));
  const order = new Rng(seed ^ 0x5eed).permutation(records.length);
  const held = new Set(order.slice(0, count));
  return { train: records.filter((_, i) => !held.has(i)), evaluation: records.filter((_, i) => held.has(i)) };
}
