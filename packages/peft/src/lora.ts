import {
  Embedding, Linear, Module, add, cast, embedding, greater, matmul, mul, mulScalar, noGrad, randomNormal, randomUniform,
  reshape, scalar, sub, transpose, zeros, type Parameter, type Tensor,
} from '@mamba-ts/tensor';
import type { Projection } from '@mamba-ts/ssm';
import type { Rng } from './rng.js';

/** How LoRA is applied (field names follow PEFT's `LoraConfig`, camel-cased). */
export interface LoraConfig {
  /** Rank r of the update B·A. */
  r: number;
  /** Scaling numerator: the update is multiplied by alpha / r (alpha / √r with rsLoRA). */
  alpha: number;
  /** Dropout probability on the adapter input while training (Linear only, as PEFT). Default 0. */
  dropout?: number;
  /** rsLoRA scaling alpha / √r. Default false. */
  useRslora?: boolean;
  /**
   * Which modules get an adapter. A list matches a module whose path equals an entry or ends with "." + entry
   * (PEFT's rule; entries may use `*` for one path segment, e.g. `layers.*.mixer.x_proj`). A single string is a
   * full-match regular expression over the path (PEFT's rule), and a RegExp is tested against the path.
   */
  targets: readonly string[] | string | RegExp;
  /** Per-module rank overrides: key is a regex matched against the end of the module path (PEFT `rank_pattern`). */
  rankPattern?: Readonly<Record<string, number>>;
  /** Per-module alpha overrides (PEFT `alpha_pattern`). */
  alphaPattern?: Readonly<Record<string, number>>;
  /** Only layers with these indices (`….layers.<i>.…`) get adapters (PEFT `layers_to_transform`). */
  layersToTransform?: readonly number[] | null;
  /** Modules never wrapped even if a target matches (PEFT `exclude_modules`: list rule or full-match regex). */
  excludeModules?: readonly string[] | string | null;
  /** Seed for the adapter initialisation (A kaiming-uniform, B zeros; embedding A zeros, B normal). */
  seed?: number;
}

/** LoRA scaling factor for one module. */
export function loraScaling(r: number, alpha: number, useRslora = false): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** Dropout that is active only while the wrapper is in training mode and has a generator. */
function dropout(x: Tensor, p: number, rng: Rng | null): Tensor {
  if (p <= 0 || rng === null) return x;
  const keep = cast(greater(randomUniform(x.shape, { seed: rng.nextSeed() }), scalar(p)), x.dtype);
  return mulScalar(mul(x, keep), 1 / (1 - p));
}

/** The low-rank factors of a Linear adapter: x ↦ x·Aᵀ (rank r), then ↦ ·Bᵀ. */
class LoraFactor extends Module {
  readonly weight: Parameter;

  constructor(value: Tensor) {
    super();
    this.weight = this.registerParameter('weight', value);
  }
}

/**
 * `base(x) + scaling · B·A·dropout(x)` around a frozen `Linear` (Hugging Face PEFT's `lora.Linear`). Parameter
 * paths are PEFT's without the adapter name: `<path>.base_layer.weight`, `<path>.lora_A.weight` (r, in),
 * `<path>.lora_B.weight` (out, r). It honours `{ bias: false }`, so Mamba's dt_proj keeps its bias for the scan.
 */
export class LoraLinear extends Module implements Projection {
  readonly base: Linear;
  readonly lora_A: LoraFactor;
  readonly lora_B: LoraFactor;
  readonly scaling: number;
  /** Dropout probability on the adapter input (only while `rng` is set). */
  readonly dropout: number;
  /** Dropout generator while training (null = evaluation: no dropout). */
  rng: Rng | null = null;
  #merged = false;

  constructor(
    base: Linear,
    readonly r: number,
    readonly alpha: number,
    { dropout: p = 0, useRslora = false, seed = 0 }: { dropout?: number; useRslora?: boolean; seed?: number } = {},
  ) {
    super();
    this.base = this.registerModule('base_layer', base);
    const bound = 1 / Math.sqrt(base.inFeatures); // kaiming-uniform with a = √5, as PEFT's default
    this.lora_A = this.registerModule('lora_A', new LoraFactor(randomUniform([r, base.inFeatures], { low: -bound, high: bound, seed })));
    this.lora_B = this.registerModule('lora_B', new LoraFactor(zeros([base.outFeatures, r])));
    this.scaling = loraScaling(r, alpha, useRslora);
    this.dropout = p;
  }

  get weight(): Parameter {
    return this.base.weight;
  }
  get bias(): Parameter | null {
    return this.base.bias;
  }
  get inFeatures(): number {
    return this.base.inFeatures;
  }
  get outFeatures(): number {
    return this.base.outFeatures;
  }
  get merged(): boolean {
    return this.#merged;
  }

  forward(x: Tensor, { bias = true }: { bias?: boolean } = {}): Tensor {
    const y = this.base.forward(x, { bias });
    if (this.#merged) return y;
    const lead = x.shape.slice(0, -1);
    const flat = reshape(dropout(x, this.dropout, this.rng), [-1, this.inFeatures]);
    // Scaling the rank-r activation rather than the output saves one output-sized tensor per adapter.
    const down = mulScalar(matmul(flat, asDType(this.lora_A.weight.value, x.dtype), { transB: true }), this.scaling);
    const up = matmul(down, asDType(this.lora_B.weight.value, x.dtype), { transB: true });
    return add(y, reshape(up, [...lead, this.outFeatures]));
  }

  /** scaling · B·A, the update to W (out, in), in f32. */
  delta(): Tensor {
    return mulScalar(matmul(this.lora_B.weight.value, this.lora_A.weight.value), this.scaling);
  }

  /** W ← W + scaling·B·A; the forward then skips the adapter. */
  merge(): void {
    if (this.#merged) return;
    noGrad(() => this.base.weight.assign(addDelta(this.base.weight.value, this.delta(), +1)));
    this.#merged = true;
  }

  /** W ← W − scaling·B·A (undoes `merge`, up to rounding). */
  unmerge(): void {
    if (!this.#merged) return;
    noGrad(() => this.base.weight.assign(addDelta(this.base.weight.value, this.delta(), -1)));
    this.#merged = false;
  }
}

/**
 * `base(ids) + scaling · Aᵀ[ids]·Bᵀ` around a frozen `Embedding` (PEFT's `lora.Embedding`): `lora_embedding_A`
 * is (r, V) and `lora_embedding_B` is (D, r), plain parameters (no `.weight`). `weight` is the base table, so a
 * tied LM head keeps using the unadapted matrix, as in PEFT.
 */
export class LoraEmbedding extends Module {
  readonly base: Embedding;
  readonly lora_embedding_A: Parameter;
  readonly lora_embedding_B: Parameter;
  readonly scaling: number;
  /** True when the same matrix is the model's LM head (then merging keeps a separate lookup table). */
  readonly tiedHead: boolean;
  #merged = false;
  /** For a tied head, merging must not touch the shared matrix: the merged lookup table lives here instead. */
  #mergedTable: Tensor | null = null;

  constructor(
    base: Embedding,
    readonly r: number,
    readonly alpha: number,
    { useRslora = false, seed = 0, tiedHead = false }: { useRslora?: boolean; seed?: number; tiedHead?: boolean } = {},
  ) {
    super();
    this.base = this.registerModule('base_layer', base);
    const [V, D] = base.weight.shape;
    this.lora_embedding_A = this.registerParameter('lora_embedding_A', zeros([r, V]));
    this.lora_embedding_B = this.registerParameter('lora_embedding_B', randomNormal([D, r], { seed }));
    this.scaling = loraScaling(r, alpha, useRslora);
    this.tiedHead = tiedHead;
  }

  get weight(): Parameter {
    return this.base.weight;
  }
  get merged(): boolean {
    return this.#merged;
  }

  forward(ids: Tensor): Tensor {
    if (this.#mergedTable) return embedding(this.#mergedTable, ids);
    const y = this.base.forward(ids);
    if (this.#merged) return y;
    const rows = embedding(transpose(this.lora_embedding_A.value), ids); // (..., r)
    const out = matmul(reshape(rows, [-1, this.r]), this.lora_embedding_B.value, { transB: true });
    return add(y, asDType(reshape(mulScalar(out, this.scaling), y.shape), y.dtype));
  }

  /** scaling · (B·A)ᵀ, the update to the (V, D) table, in f32. */
  delta(): Tensor {
    return mulScalar(matmul(this.lora_embedding_A.value, this.lora_embedding_B.value, { transA: true, transB: true }), this.scaling);
  }

  merge(): void {
    if (this.#merged) return;
    noGrad(() => {
      const merged = addDelta(this.base.weight.value, this.delta(), +1);
      if (this.tiedHead) this.#mergedTable = merged.keep();
      else this.base.weight.assign(merged);
    });
    this.#merged = true;
  }

  unmerge(): void {
    if (!this.#merged) return;
    if (this.#mergedTable) {
      this.#mergedTable.dispose();
      this.#mergedTable = null;
    } else {
      noGrad(() => this.base.weight.assign(addDelta(this.base.weight.value, this.delta(), -1)));
    }
    this.#merged = false;
  }

  /** The lookup table as merged (W + scaling·(B·A)ᵀ), whether or not `merge` was called. Caller disposes it. */
  mergedTable(): Tensor {
    return noGrad(() => {
      if (this.#mergedTable) return cast(this.#mergedTable, this.#mergedTable.dtype);
      if (this.#merged) return cast(this.base.weight.value, this.base.weight.value.dtype);
      return addDelta(this.base.weight.value, this.delta(), +1);
    });
  }

  override dispose(): void {
    this.#mergedTable?.dispose();
    super.dispose();
  }
}

export type LoraLayer = LoraLinear | LoraEmbedding;

function asDType(t: Tensor, dtype: Tensor['dtype']): Tensor {
  return t.dtype === dtype ? t : cast(t, dtype);
}

function addDelta(w: Tensor, delta: Tensor, sign: 1 | -1): Tensor {
  const d = asDType(delta, w.dtype);
  return sign > 0 ? add(w, d) : sub(w, d);
}

// ---- applying adapters to a model ----

/** Modules LoRA can wrap, by path (the LM head is excluded: it is applied as a raw weight by the fused loss). */
export function targetableModules(model: Module): Map<string, Linear | Embedding> {
  const out = new Map<string, Linear | Embedding>();
  for (const [path, m] of model.namedModules()) {
    if (path === 'lm_head' || /(^|\.)(base_layer|lora_A|lora_B)(\.|$)/.test(path)) continue;
    if (m instanceof Linear || m instanceof Embedding) out.set(path, m);
  }
  return out;
}

/** One line describing the available module paths, digits folded: `backbone.layers.{0..23}.mixer.in_proj, …`. */
export function describeModulePaths(paths: Iterable<string>): string {
  const groups = new Map<string, Set<number>>();
  for (const p of paths) {
    const m = /^(.*\.)(\d+)(\..*)$/.exec(p);
    const key = m ? `${m[1]}{i}${m[3]}` : p;
    const set = groups.get(key) ?? new Set<number>();
    if (m) set.add(Number(m[2]));
    groups.set(key, set);
  }
  return [...groups]
    .map(([key, idx]) => (idx.size ? key.replace('{i}', `{${Math.min(...idx)}..${Math.max(...idx)}}`) : key))
    .join(', ');
}

function globToRegExp(entry: string): RegExp {
  const body = entry.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^.]+');
  return new RegExp(`(^|\\.)${body}$`);
}

/** PEFT's list rule (equal, or ends with "." + entry), with `*` for a path segment. */
function entryMatches(entry: string, path: string): boolean {
  if (entry.includes('*')) return globToRegExp(entry).test(path);
  return path === entry || path.endsWith(`.${entry}`);
}

/** PEFT's pattern lookup for rank_pattern / alpha_pattern: `(.*\.)?key$` against the module path. */
function patternValue(patterns: Readonly<Record<string, number>> | undefined, path: string): number | undefined {
  if (!patterns) return undefined;
  for (const [key, value] of Object.entries(patterns)) {
    if (new RegExp(`^(.*\\.)?(${key})$`).test(path)) return value;
  }
  return undefined;
}

function layerIndex(path: string): number | null {
  const m = /(^|\.)layers\.(\d+)\./.exec(path);
  return m ? Number(m[2]) : null;
}

/** Checks r, alpha, dropout; throws one sentence naming the field. */
export function checkLoraConfig(cfg: LoraConfig, source = 'LoRA config'): void {
  const positiveInt = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0;
  if (!positiveInt(cfg.r)) throw new Error(`${source}: rank r must be a positive integer, got ${cfg.r}.`);
  if (!Number.isFinite(cfg.alpha) || cfg.alpha <= 0) throw new Error(`${source}: lora_alpha must be a positive number, got ${cfg.alpha}.`);
  const p = cfg.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw new Error(`${source}: lora_dropout must be in [0, 1), got ${p}.`);
  for (const [key, r] of Object.entries(cfg.rankPattern ?? {})) {
    if (!positiveInt(r)) throw new Error(`${source}: rank_pattern["${key}"] must be a positive integer, got ${r}.`);
  }
  for (const [key, a] of Object.entries(cfg.alphaPattern ?? {})) {
    if (!Number.isFinite(a) || a <= 0) throw new Error(`${source}: alpha_pattern["${key}"] must be a positive number, got ${a}.`);
  }
  if (Array.isArray(cfg.targets) && cfg.targets.length === 0) {
    throw new Error(`${source}: target_modules is empty; name at least one module (e.g. x_proj).`);
  }
}

/** The module paths `cfg.targets` selects; unknown names or non-Linear/Embedding matches are errors. */
export function resolveTargets(model: Module, cfg: LoraConfig, source = 'LoRA config'): string[] {
  const candidates = targetableModules(model);
  const allModules = new Map(model.namedModules());
  const available = (): string => describeModulePaths(candidates.keys());
  const inLayers = (path: string): boolean => {
    if (!cfg.layersToTransform) return true;
    const i = layerIndex(path);
    return i !== null && cfg.layersToTransform.includes(i);
  };
  const ex = cfg.excludeModules;
  const excluded = (path: string): boolean =>
    ex == null ? false : typeof ex === 'string' ? new RegExp(`^(?:${ex})$`).test(path) : ex.some((e) => entryMatches(e, path));
  const keep = (path: string): boolean => inLayers(path) && !excluded(path);
  const chosen = new Set<string>();
  const { targets } = cfg;
  if (typeof targets === 'string' || targets instanceof RegExp) {
    const re = typeof targets === 'string' ? new RegExp(`^(?:${targets})$`) : targets;
    for (const path of candidates.keys()) if (re.test(path) && keep(path)) chosen.add(path);
    if (chosen.size === 0) throw new Error(`${source}: target pattern ${String(re)} matches no module; available: ${available()}.`);
    return [...chosen];
  }
  for (const entry of targets) {
    const hits = [...allModules.keys()].filter((p) => p !== '' && entryMatches(entry, p));
    if (hits.length === 0) throw new Error(`${source}: unknown LoRA target "${entry}"; available module paths: ${available()}.`);
    const wrong = hits.find((p) => !candidates.has(p));
    if (wrong !== undefined) {
      const kind = allModules.get(wrong)!.constructor.name;
      throw new Error(
        `${source}: LoRA target "${entry}" matches ${wrong}, a ${kind}; LoRA wraps only Linear and Embedding modules (available: ${available()}).`,
      );
    }
    for (const p of hits) if (keep(p)) chosen.add(p);
  }
  if (chosen.size === 0) throw new Error(`${source}: layers_to_transform / exclude_modules leave no target module.`);
  return [...chosen];
}

function isTiedHead(model: Module, path: string): boolean {
  const cfg = (model as { config?: { tieWordEmbeddings?: boolean } }).config;
  return path === 'backbone.embeddings' && cfg?.tieWordEmbeddings === true;
}

/**
 * Wraps the selected modules of `model` in LoRA adapters (in place) and freezes every other parameter, so only
 * adapter parameters are trainable. Returns the wrapped paths.
 */
export function applyLora(model: Module, cfg: LoraConfig, source = 'LoRA config'): string[] {
  checkLoraConfig(cfg, source);
  if (loraLayers(model).size > 0) throw new Error(`${source}: the model already has LoRA adapters; call removeLora first.`);
  const paths = resolveTargets(model, cfg, source);
  const candidates = targetableModules(model);
  const seed = cfg.seed ?? 0;
  paths.forEach((path, i) => {
    const base = candidates.get(path)!;
    const r = patternValue(cfg.rankPattern, path) ?? cfg.r;
    const alpha = patternValue(cfg.alphaPattern, path) ?? cfg.alpha;
    const wrapper =
      base instanceof Linear
        ? new LoraLinear(base, r, alpha, { dropout: cfg.dropout ?? 0, useRslora: cfg.useRslora, seed: seed + 7919 * (i + 1) })
        : new LoraEmbedding(base, r, alpha, { useRslora: cfg.useRslora, seed: seed + 7919 * (i + 1), tiedHead: isTiedHead(model, path) });
    const dot = path.lastIndexOf('.');
    model.getModule(dot < 0 ? '' : path.slice(0, dot))!.replaceChild(path.slice(dot + 1), wrapper);
  });
  for (const [name, p] of model.namedParameters()) p.requiresGrad = isLoraParameterName(name);
  APPLIED.set(model, { config: { ...cfg }, paths });
  return paths;
}

const APPLIED = new WeakMap<Module, { config: LoraConfig; paths: string[] }>();

/** The config `applyLora` used on this model and the paths it wrapped (null without adapters). */
export function appliedLora(model: Module): { config: LoraConfig; paths: string[] } | null {
  return APPLIED.get(model) ?? null;
}

export function isLoraParameterName(name: string): boolean {
  return /(^|\.)(lora_A|lora_B)\.weight$|(^|\.)lora_embedding_[AB]$/.test(name);
}

/** The LoRA wrappers of a model by path. */
export function loraLayers(model: Module): Map<string, LoraLayer> {
  const out = new Map<string, LoraLayer>();
  for (const [path, m] of model.namedModules()) if (m instanceof LoraLinear || m instanceof LoraEmbedding) out.set(path, m);
  return out;
}

/** Adapter parameters by path (`….x_proj.lora_A.weight`, `backbone.embeddings.lora_embedding_A`, …). */
export function loraParameters(model: Module): [string, Parameter][] {
  return [...model.namedParameters()].filter(([name]) => isLoraParameterName(name));
}

export function mergeLora(model: Module): void {
  for (const layer of loraLayers(model).values()) layer.merge();
}

export function unmergeLora(model: Module): void {
  for (const layer of loraLayers(model).values()) layer.unmerge();
}

/** Puts the unmerged base modules back (adapter parameters are disposed) and makes every parameter trainable again. */
export function removeLora(model: Module): void {
  for (const [path, layer] of loraLayers(model)) {
    layer.unmerge();
    const dot = path.lastIndexOf('.');
    model.getModule(dot < 0 ? '' : path.slice(0, dot))!.replaceChild(path.slice(dot + 1), layer.base);
    for (const [name, p] of layer.namedParameters()) if (isLoraParameterName(name)) p.dispose();
  }
  APPLIED.delete(model);
  for (const p of model.parameters()) p.requiresGrad = true;
}

/** Training mode turns LoRA dropout on, drawing masks from `rng`; `null` turns it off. */
export function setLoraDropoutRng(model: Module, rng: Rng | null): void {
  for (const layer of loraLayers(model).values()) if (layer instanceof LoraLinear) layer.rng = rng;
}

export interface TrainableReport {
  trainable: number;
  total: number;
  /** 100 · trainable / total. */
  percent: number;
  /** PEFT's wording: `trainable params: … || all params: … || trainable%: …`. */
  summary: string;
}

export function trainableReport(model: Module): TrainableReport {
  const total = model.parameterCount();
  const trainable = model.parameterCount({ trainableOnly: true });
  const percent = total === 0 ? 0 : (100 * trainable) / total;
  const fmt = (n: number): string => n.toLocaleString('en-US');
  return { trainable, total, percent, summary: `trainable params: ${fmt(trainable)} || all params: ${fmt(total)} || trainable%: ${percent.toFixed(4)}` };
}

/**
 * The model's weights under their plain names (`base_layer` removed), with every adapter folded in — what a
 * merged Hugging Face checkpoint holds. A tied model with an embedding adapter gets an explicit `lm_head.weight`
 * (the unadapted matrix) so that the head stays as it was; `untied` tells the caller to write
 * `tie_word_embeddings: false`. Returned tensors are new; the caller disposes them.
 */
export function mergedStateDict(model: Module): { tensors: Map<string, Tensor>; untied: boolean } {
  return noGrad(() => {
    const layers = loraLayers(model);
    const tensors = new Map<string, Tensor>();
    let untied = false;
    for (const [name, p] of model.namedParameters()) {
      if (isLoraParameterName(name)) continue;
      const plain = name.replace('.base_layer.', '.');
      const owner = plain.slice(0, plain.lastIndexOf('.'));
      const layer = layers.get(owner);
      if (layer && plain.endsWith('.weight')) {
        if (layer instanceof LoraEmbedding) {
          tensors.set(plain, layer.mergedTable().keep());
          if (layer.tiedHead) {
            tensors.set('lm_head.weight', cast(p.value, p.value.dtype).keep());
            untied = true;
          }
        } else {
          tensors.set(plain, (layer.merged ? cast(p.value, p.value.dtype) : addDelta(p.value, layer.delta(), +1)).keep());
        }
        continue;
      }
      tensors.set(plain, cast(p.value, p.value.dtype).keep());
    }
    return { tensors, untied };
  });
}
