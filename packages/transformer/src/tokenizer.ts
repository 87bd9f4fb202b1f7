import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

export { Tokenizer };

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message}).`);
  }
}

/**
 * Loads `tokenizer.json` (and `tokenizer_config.json` when present) from a checkpoint directory, or returns null
 * when the directory has no tokenizer.json.
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer | null> {
  const path = join(dir, 'tokenizer.json');
  const json = await readJson(path);
  if (json === undefined) return null;
  if (typeof json !== 'object' || json === null || !('model' in json)) {
    throw new Error(`${path}: not a Hugging Face tokenizers file (no "model" field).`);
  }
  const config = (await readJson(join(dir, 'tokenizer_config.json'))) ?? {};
  return new Tokenizer(json, config as object);
}
