import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatShape, shapesEqual, tensorFromSafetensors, type DType } from '@mamba-ts/tensor';
import { openCheckpoint } from '@mamba-ts/tensor/node';
import { ConfigError, parseMambaConfig, type MambaConfig } from './config.js';
import { MambaLM } from './model.js';
import { TextTokenizer } from './tokenizer.js';

export interface LoadOptions {
  /** dtype of the weights and of the compute (default f32). A, D, dt bias and norms always stay f32. */
  dtype?: DType;
  /** Receives warnings such as unexpected extra tensors (default: console.warn). */
  warn?: (message: string) => void;
  /** Load tokenizer.json too (default true; a missing file then leaves `tokenizer` null). */
  tokenizer?: boolean;
}

/** Parameters that stay in fp32 whatever the load dtype (the numerics policy of the reference kernels). */
export function keepsFp32(name: string): boolean {
  return /(\.A_log|\.D|dt_proj\.bias|norm(_f)?\.weight)$/.test(name);
}

export async function readMambaConfig(dir: string): Promise<MambaConfig> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new ConfigError(`${path}: file not found; a model directory needs config.json.`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON (${(e as Error).message}).`);
  }
  return parseMambaConfig(json, path);
}

/**
 * Loads a Mamba checkpoint from a local directory: config.json, model.safetensors (or a sharded index) and
 * tokenizer.json. Reads both Hugging Face (`backbone.embeddings`) and original (`backbone.embedding`) names.
 */
export async function fromPretrained(
  dir: string,
  { dtype = 'f32', warn = console.warn, tokenizer = true }: LoadOptions = {},
): Promise<{ model: MambaLM; tokenizer: TextTokenizer | null; config: MambaConfig }> {
  const config = await readMambaConfig(dir);
  const checkpoint = await openCheckpoint(dir).catch((e: Error) => {
    throw new Error(`${dir}: cannot open the weights (${e.message})`);
  });
  const model = new MambaLM(config);
  model.computeDType = dtype;
  try {
    const used = new Set<string>();
    for (const [name, param] of model.namedParameters()) {
      const fileName = [name, name.replace('backbone.embeddings.', 'backbone.embedding.')].find((n) => checkpoint.has(n));
      if (!fileName) throw new Error(`${checkpoint.source}: missing tensor "${name}" (expected shape ${formatShape(param.shape)}).`);
      used.add(fileName);
      const entry = await checkpoint.get(fileName);
      if (!shapesEqual(entry.shape, param.shape)) {
        throw new Error(
          `${checkpoint.source}: tensor "${fileName}" has shape ${formatShape(entry.shape)}, expected ${formatShape(param.shape)} from config.json.`,
        );
      }
      param.assign(tensorFromSafetensors(entry, keepsFp32(name) ? 'f32' : dtype, checkpoint.source).keep());
    }
    // A tied head may still be stored (identical to the embedding); anything else is unexpected.
    const extra = checkpoint.names().filter((n) => !used.has(n) && !(config.tieWordEmbeddings && n === 'lm_head.weight'));
    if (extra.length > 0) warn(`${checkpoint.source}: ignoring ${extra.length} unexpected tensor(s): ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', …' : ''}.`);
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    await checkpoint.close();
  }
  const tok = tokenizer ? await TextTokenizer.fromDir(dir).catch((e: Error) => {
    if (/file not found/.test(e.message)) return null;
    throw e;
  }) : null;
  return { model, tokenizer: tok, config };
}
