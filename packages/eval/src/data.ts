import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Doc, FieldSpec, TaskDefinition } from './tasks/task.js';

/** `<dataDir>/<task>/<split>.jsonl`. */
export function dataFilePath(dataDir: string, task: TaskDefinition, split: string): string {
  return join(dataDir, task.name, `${split}.jsonl`);
}

export function describeSchema(schema: readonly FieldSpec[]): string {
  return schema.map((f) => `${f.name} (${typeName(f)}${f.note ? `, ${f.note}` : ''})`).join(', ');
}

function typeName(field: FieldSpec): string {
  switch (field.type) {
    case 'string':
      return 'string';
    case 'integer':
      return 'integer';
    case 'string[]':
      return 'list of strings';
    case 'labeled-choices':
      return '{"text": list of strings, "label": list of strings}';
    case 'digit-string':
      return 'string of digits';
  }
}

function withArticle(noun: string): string {
  return /^[aeiou]/i.test(noun) ? `an ${noun}` : noun.startsWith('{') ? noun : `a ${noun}`;
}

function hasType(value: unknown, field: FieldSpec): boolean {
  switch (field.type) {
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'string[]':
      return Array.isArray(value) && value.every((v) => typeof v === 'string');
    case 'labeled-choices': {
      if (typeof value !== 'object' || value === null) return false;
      const { text, label } = value as { text?: unknown; label?: unknown };
      return (
        Array.isArray(text) &&
        Array.isArray(label) &&
        text.length === label.length &&
        text.every((v) => typeof v === 'string') &&
        label.every((v) => typeof v === 'string')
      );
    }
    case 'digit-string':
      return (typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value)) || (typeof value === 'number' && Number.isInteger(value));
  }
}

/**
 * Reads one split of a task, in file order, checks every row against the task's schema and applies the task's
 * `process_docs`. Errors name the file, the split, the line and the expected schema.
 */
export function loadSplit(dataDir: string, task: TaskDefinition, split: string): Doc[] {
  const path = dataFilePath(dataDir, task, split);
  const schema = describeSchema(task.schema);
  if (!existsSync(path)) {
    throw new Error(
      `${task.name}: data file ${path} for split "${split}" does not exist; expected JSON Lines in the Hugging Face ` +
        `schema of ${task.datasetPath}${task.datasetName ? ` (${task.datasetName})` : ''}, one object per line with ${schema}.`,
    );
  }
  const lines = readFileSync(path, 'utf8').split('\n');
  const docs: Doc[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${path} line ${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where} is not valid JSON (${(e as Error).message}); each line must be one JSON object.`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      throw new Error(`${where} is not a JSON object; each line must be one object with ${schema}.`);
    }
    const doc = row as Doc;
    for (const field of task.schema) {
      if (!(field.name in doc)) {
        throw new Error(`${where}: field "${field.name}" is missing; each row needs ${schema}.`);
      }
      if (!hasType(doc[field.name], field)) {
        throw new Error(
          `${where}: field "${field.name}" must be ${withArticle(typeName(field))}${field.note ? ` (${field.note})` : ''}, ` +
            `got ${JSON.stringify(doc[field.name])}.`,
        );
      }
    }
    const problem = task.checkRow?.(doc);
    if (problem !== undefined) throw new Error(`${where}: ${problem}`);
    docs.push(task.processDoc ? task.processDoc(doc) : doc);
  });
  if (docs.length === 0) throw new Error(`${path} (split "${split}" of ${task.name}) has no rows.`);
  return docs;
}

/** `--limit`: the first N documents, or a fraction (< 1) of them rounded up. */
export function applyLimit<T>(docs: readonly T[], limit: number | undefined): T[] {
  if (limit === undefined) return docs.slice();
  if (!(limit > 0)) throw new Error(`limit must be a positive number (a count, or a fraction below 1), got ${limit}.`);
  const n = limit < 1 ? Math.ceil(docs.length * limit) : Math.floor(limit);
  return docs.slice(0, n);
}
