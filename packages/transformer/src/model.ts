import {
  Embedding,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  asDType,
  cast,
  formatShape,
  linearCrossEntropy,
  narrow,
  reshape,
  type DType,
  type Tensor,
} from '@mamba-ts/tensor';
import { CausalMasks, type LayerKV } from './attention.js';
import { rotaryDims, type GPTNeoXConfig } from './config.js';
import { GPTNeoXLayer } from './layer.js';
import { RotaryTables } from './rotary.js';

export interface ForwardOptions {
  /** Keys/values of earlier positions, one entry per layer (from a previous call). */
  cache?: readonly LayerKV[];
  /** Activation dtype (default: the embedding table's dtype). Weights are cast to it where they are used. */
  dtype?: DType;
}

export interface ForwardResult {
  /** (B, L, hidden) after the final layer norm. */
  hidden: Tensor;
  /** Keys/values for all positions so far, one entry per layer. */
  cache: LayerKV[];
}

/** Embedding → N GPT-NeoX layers → final LayerNorm (HF `gpt_neox`). */
export class GPTNeoXBackbone extends Module {
  readonly embed_in: Embedding;
  readonly layers: ModuleList<GPTNeoXLayer>;
  readonly final_layer_norm: LayerNorm;
  readonly rotary: RotaryTables;
  readonly masks = new CausalMasks();

  constructor(
    readonly config: GPTNeoXConfig,
    seed = 0,
  ) {
    super();
    this.embed_in = this.registerModule('embed_in', new Embedding(config.vocabSize, config.hiddenSize, { seed }));
    this.layers = this.registerModule(
      'layers',
      new ModuleList(Array.from({ length: config.numHiddenLayers }, (_, i) => new GPTNeoXLayer(config, seed + 10 * (i + 1)))),
    );
    this.final_layer_norm = this.registerModule('final_layer_norm', new LayerNorm(config.hiddenSize, config.layerNormEps));
    this.rotary = new RotaryTables(rotaryDims(config), config.rotaryEmbBase, config.maxPositionEmbeddings);
  }

  forward(ids: Tensor, { cache, dtype }: ForwardOptions = {}): ForwardResult {
    checkIds(ids);
    if (cache !== undefined && cache.length !== this.layers.items.length) {
      throw new Error(`GPTNeoX forward: cache has ${cache.length} layers, the model ${this.layers.items.length}; pass the cache returned by this model.`);
    }
    let x = this.embed_in.forward(ids);
    if (dtype !== undefined && x.dtype !== dtype) x = cast(x, dtype);
    const next: LayerKV[] = [];
    this.layers.items.forEach((layer, i) => {
      const out = layer.forward(x, this.rotary, this.masks, cache?.[i]);
      x = out.y;
      next.push(out.kv);
    });
    return { hidden: this.final_layer_norm.forward(x), cache: next };
  }

  override dispose(): void {
    super.dispose();
    this.rotary.dispose();
    this.masks.dispose();
  }
}

/**
 * GPT-NeoX causal language model (HF `GPTNeoXForCausalLM`): parameter paths are the Hugging Face names
 * (`gpt_neox.layers.0.attention.query_key_value.weight`, `embed_out.weight`, …).
 */
export class GPTNeoXModel extends Module {
  readonly gpt_neox: GPTNeoXBackbone;
  readonly embed_out: Linear;

  constructor(
    readonly config: GPTNeoXConfig,
    { seed = 0 }: { seed?: number } = {},
  ) {
    super();
    this.gpt_neox = this.registerModule('gpt_neox', new GPTNeoXBackbone(config, seed));
    this.embed_out = this.registerModule('embed_out', new Linear(config.hiddenSize, config.vocabSize, { bias: false, seed: seed + 1 }));
  }

  /** ids (B, L) i32 → logits (B, L, vocab). */
  forward(ids: Tensor, opts: ForwardOptions = {}): Tensor {
    return this.forwardWithCache(ids, opts).logits;
  }

  /** Logits plus the keys/values of every position, to continue with `cache` one token at a time. */
  forwardWithCache(ids: Tensor, opts: ForwardOptions = {}): { logits: Tensor; cache: LayerKV[] } {
    const { hidden, cache } = this.gpt_neox.forward(ids, opts);
    return { logits: this.embed_out.forward(hidden), cache };
  }

  /**
   * Mean next-token cross-entropy (HF causal-LM loss with labels = ids): position t predicts ids[t + 1]. Computed
   * from the hidden states with the vocabulary in chunks, so the (B, L, vocab) logits are never stored.
   */
  loss(ids: Tensor, opts: Omit<ForwardOptions, 'cache'> & { ignoreIndex?: number; labels?: Tensor } = {}): Tensor {
    const [B, L] = ids.shape;
    if (L < 2) throw new Error(`GPTNeoX loss: ids ${formatShape(ids.shape)} need at least 2 positions (one input and one target).`);
    const labels = opts.labels ?? ids;
    if (labels.dtype !== 'i32' || labels.shape.join() !== ids.shape.join()) {
      throw new Error(`GPTNeoX loss: labels must be i32 with the shape of ids ${formatShape(ids.shape)}, got ${labels.dtype} ${formatShape(labels.shape)}.`);
    }
    const { hidden } = this.gpt_neox.forward(ids, opts);
    const H = this.config.hiddenSize;
    const inputs = reshape(narrow(hidden, 1, 0, L - 1), [B * (L - 1), H]);
    const targets = reshape(narrow(labels, 1, 1, L - 1), [B * (L - 1)]);
    const weight = asDType(this.embed_out.weight.value, inputs.dtype);
    return linearCrossEntropy(inputs, weight, targets, opts.ignoreIndex === undefined ? {} : { ignoreIndex: opts.ignoreIndex });
  }
}

function checkIds(ids: Tensor): void {
  if (ids.dtype !== 'i32' || ids.rank !== 2) {
    throw new Error(`GPTNeoX forward: ids must be an i32 tensor of shape (batch, length), got ${ids.dtype} ${formatShape(ids.shape)}.`);
  }
  if (ids.shape[1] === 0) throw new Error('GPTNeoX forward: ids have length 0; pass at least one token.');
}
