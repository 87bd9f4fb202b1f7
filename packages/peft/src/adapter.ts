import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatShape, safetensorsEntry, shapesEqual, tensorFromSafetensors, type Module } from '@mamba-ts/tensor';
import { SafetensorsFile, writeSafetensorsFile } from '@mamba-ts/tensor/node';
import { pathExists, sortedJson, writeDirAtomic, writeFileAtomic } from './fs-atomic.js';
import { appliedLora, applyLora, loraParameters, removeLora, type LoraConfig } from './lora.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** PEFT stores adapter tensors under the wrapped model's names, prefixed like this. */
export const PEFT_PREFIX = 'base_model.model.';

/** Our parameter path → PEFT tensor key (`….lora_A.weight` and `lora_embedding_A` are already PEFT's names). */
export function peftKey(path: string): string {
  return PEFT_PREFIX + path;
}

/** PEFT tensor key → our parameter path, or null when the key is not a LoRA tensor under the PEFT prefix. */
export function pathFromPeftKey(key: string): string | null {
  if (!key.startsWith(PEFT_PREFIX)) return null;
  return key.slice(PEFT_PREFIX.length).replace(/\.default(?=\.weight$|$)/, '');
}

export interface AdapterConfigFile {
  config: LoraConfig;
  /** The parsed JSON as written (unknown keys kept). */
  raw: Record<string, unknown>;
  path: string;
}

/** Reads and checks a PEFT `adapter_config.json`; unsupported LoRA variants are refused with the field named. */
export async function readAdapterConfig(dir: string): Promise<AdapterConfigFile> {
  const path = join(dir, ADAPTER_CONFIG);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new Error(`${path}: file not found; an adapter directory needs ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS}.`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message}).`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${path}: expected a JSON object.`);
  if (raw.peft_type !== 'LORA') throw new Error(`${path}: peft_type is ${JSON.stringify(raw.peft_type)}; only "LORA" adapters are supported.`);
  const refuse = (field: string, why: string): never => {
    throw new Error(`${path}: ${field} ${why} is not supported; re-save the adapter without it.`);
  };
  if (raw.use_dora === true) refuse('use_dora', 'true (DoRA)');
  if (raw.fan_in_fan_out === true) refuse('fan_in_fan_out', 'true');
  if (raw.bias !== undefined && raw.bias !== 'none') refuse('bias', JSON.stringify(raw.bias));
  if (raw.lora_bias === true) refuse('lora_bias', 'true');
  if (Array.isArray(raw.modules_to_save) && raw.modules_to_save.length > 0) refuse('modules_to_save', JSON.stringify(raw.modules_to_save));
  if (raw.target_parameters != null) refuse('target_parameters', JSON.stringify(raw.target_parameters));
  if (raw.layer_replication != null) refuse('layer_replication', JSON.stringify(raw.layer_replication));
  if (raw.use_qalora === true) refuse('use_qalora', 'true');
  const targets = raw.target_modules;
  const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
  if (!(typeof targets === 'string' || isStringList(targets))) {
    throw new Error(`${path}: target_modules must be a list of module names or a regex string, got ${JSON.stringify(targets)}.`);
  }
  const numberMap = (field: string): Record<string, number> | undefined => {
    const v = raw[field];
    if (v == null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'number')) {
      throw new Error(`${path}: ${field} must be an object of numbers, got ${JSON.stringify(v)}.`);
    }
    return v as Record<string, number>;
  };
  const layers = raw.layers_to_transform;
  const layersToTransform =
    layers == null ? null : typeof layers === 'number' ? [layers] : Array.isArray(layers) && layers.every(Number.isInteger) ? (layers as number[]) : undefined;
  if (layersToTransform === undefined) throw new Error(`${path}: layers_to_transform must be an integer or a list of integers.`);
  const exclude = raw.exclude_modules;
  if (!(exclude == null || typeof exclude === 'string' || isStringList(exclude))) {
    throw new Error(`${path}: exclude_modules must be a list of names or a regex string, got ${JSON.stringify(exclude)}.`);
  }
  const config: LoraConfig = {
    r: (raw.r ?? 8) as number,
    alpha: (raw.lora_alpha ?? 8) as number,
    dropout: (raw.lora_dropout ?? 0) as number,
    useRslora: raw.use_rslora === true,
    targets,
    rankPattern: numberMap('rank_pattern'),
    alphaPattern: numberMap('alpha_pattern'),
    layersToTransform,
    excludeModules: exclude ?? null,
  };
  return { config, raw, path };
}

/**
 * Applies the PEFT adapter in `dir` to `model` (in place): wraps the target modules, then loads
 * `adapter_model.safetensors` into the adapter parameters. Every expected tensor must be present with the shape
 * this base model implies; on any error the model is left without adapters.
 */
export async function loadAdapter(model: Module, dir: string): Promise<AdapterConfigFile> {
  const file = await readAdapterConfig(dir);
  const weightsPath = join(dir, ADAPTER_WEIGHTS);
  if (!(await pathExists(weightsPath))) {
    const legacy = (await pathExists(join(dir, 'adapter_model.bin'))) ? ' (only the legacy adapter_model.bin is there: re-save it with safe_serialization=True)' : '';
    throw new Error(`${weightsPath}: file not found${legacy}.`);
  }
  applyLora(model, file.config, file.path);
  const st = await SafetensorsFile.open(weightsPath);
  try {
    const params = new Map(loraParameters(model));
    const byPath = new Map<string, string>();
    for (const key of st.names()) {
      const path = pathFromPeftKey(key);
      if (path === null || !params.has(path)) {
        throw new Error(
          `${weightsPath}: tensor "${key}" has no matching adapter parameter in this model (targets ${JSON.stringify(file.config.targets)}); the adapter was made for a different base model or config.`,
        );
      }
      byPath.set(path, key);
    }
    for (const [path, param] of params) {
      const key = byPath.get(path);
      if (key === undefined) throw new Error(`${weightsPath}: missing tensor "${peftKey(path)}" (shape ${formatShape(param.shape)}).`);
      const entry = await st.get(key);
      if (!shapesEqual(entry.shape, param.shape)) {
        throw new Error(
          `${weightsPath}: tensor "${key}" has shape ${formatShape(entry.shape)} but this base model needs ${formatShape(param.shape)}; the adapter was made for a different base model (or r differs from adapter_config.json).`,
        );
      }
      param.assign(tensorFromSafetensors(entry, 'f32', weightsPath));
    }
  } catch (e) {
    removeLora(model);
    throw e;
  } finally {
    await st.close();
  }
  return file;
}

/** Alias used by the CLI (`--adapter DIR`). */
export const applyAdapterFromDir = loadAdapter;

export interface SaveAdapterOptions {
  /** Written as `base_model_name_or_path` (e.g. the model directory or hub id). */
  baseModelNameOrPath?: string | null;
  /** Replace an existing directory (atomically). Default false: an existing directory is an error. */
  replace?: boolean;
}

/** The `adapter_config.json` object PEFT would write for the adapters on `model`. */
export function adapterConfigJson(model: Module, { baseModelNameOrPath = null }: SaveAdapterOptions = {}): Record<string, unknown> {
  const applied = appliedLora(model);
  if (!applied) throw new Error('saveAdapter: the model has no LoRA adapters; apply or load one first.');
  const { config, paths } = applied;
  const targets = config.targets;
  return {
    alpha_pattern: config.alphaPattern ?? {},
    auto_mapping: null,
    base_model_name_or_path: baseModelNameOrPath,
    bias: 'none',
    exclude_modules: config.excludeModules ?? null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: config.layersToTransform ?? null,
    loftq_config: {},
    lora_alpha: config.alpha,
    lora_bias: false,
    lora_dropout: config.dropout ?? 0,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: config.r,
    rank_pattern: config.rankPattern ?? {},
    revision: null,
    // A RegExp has no PEFT spelling: the exact wrapped paths are (each matches only itself under the list rule).
    target_modules: targets instanceof RegExp ? [...paths].sort() : typeof targets === 'string' ? targets : [...targets].sort(),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: config.useRslora ?? false,
  };
}

/** Writes `adapter_config.json` + `adapter_model.safetensors` (PEFT layout, f32) into `dir`, atomically. */
export async function saveAdapter(model: Module, dir: string, opts: SaveAdapterOptions = {}): Promise<void> {
  const config = adapterConfigJson(model, opts);
  const entries: [string, Awaited<ReturnType<typeof safetensorsEntry>>][] = [];
  for (const [path, p] of loraParameters(model)) entries.push([peftKey(path), await safetensorsEntry(p.value)]);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  await writeDirAtomic(
    dir,
    async (tmp) => {
      await writeSafetensorsFile(join(tmp, ADAPTER_WEIGHTS), entries, { format: 'pt' });
      await writeFileAtomic(join(tmp, ADAPTER_CONFIG), sortedJson(config));
    },
    { replace: opts.replace ?? false },
  );
}
