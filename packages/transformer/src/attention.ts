import { Linear, Module, add, cast, concat, matmul, mulScalar, reshape, softmax, split, tensor, transpose, type Tensor } from '@mamba-ts/tensor';
import { headSize, rotaryDims, type GPTNeoXConfig } from './config.js';
import { applyRotary, type RotaryTables } from './rotary.js';

/** Keys and values of the positions seen so far, (B, H, P, headSize) each, with rotary already applied to keys. */
export interface LayerKV {
  keys: Tensor;
  values: Tensor;
}

/** The most negative finite f32, as HF uses for masked scores (finite, so softmax never sees inf − inf). */
const MASKED = -3.4028234663852886e38;

/**
 * Additive causal masks (Lq, Lk): query i (at absolute position Lk − Lq + i) may see keys j ≤ Lk − Lq + i. Built once
 * per (Lq, Lk) and kept, as attention at one length is computed again and again (every layer, training steps); only
 * the most recently used few are kept, so scoring many different lengths does not pile up L² buffers.
 */
export class CausalMasks {
  readonly #masks = new Map<string, Tensor>();

  constructor(readonly capacity = 8) {}

  get(queries: number, keys: number): Tensor {
    const key = `${queries}x${keys}`;
    let mask = this.#masks.get(key);
    if (mask !== undefined) {
      this.#masks.delete(key);
      this.#masks.set(key, mask);
    } else {
      if (this.#masks.size >= this.capacity) {
        const [oldest, stale] = this.#masks.entries().next().value as [string, Tensor];
        stale.dispose();
        this.#masks.delete(oldest);
      }
      const past = keys - queries;
      const values = new Float32Array(queries * keys);
      for (let i = 0; i < queries; i++) for (let j = past + i + 1; j < keys; j++) values[i * keys + j] = MASKED;
      mask = tensor(values, [queries, keys]).keep();
      this.#masks.set(key, mask);
    }
    return mask;
  }

  dispose(): void {
    for (const m of this.#masks.values()) m.dispose();
    this.#masks.clear();
  }
}

/**
 * Multi-head causal self-attention with partial rotary embeddings. The fused projection `query_key_value` maps
 * hidden → H × [q | k | v] × headSize: its output, viewed as (…, H, 3·headSize), holds each head's query, key
 * and value side by side.
 */
export class GPTNeoXAttention extends Module {
  readonly query_key_value: Linear;
  readonly dense: Linear;
  readonly heads: number;
  readonly headSize: number;
  readonly rotaryDims: number;

  constructor(config: GPTNeoXConfig, seed = 0) {
    super();
    this.heads = config.numAttentionHeads;
    this.headSize = headSize(config);
    this.rotaryDims = rotaryDims(config);
    const H = config.hiddenSize;
    this.query_key_value = this.registerModule('query_key_value', new Linear(H, 3 * H, { bias: config.attentionBias, seed }));
    this.dense = this.registerModule('dense', new Linear(H, H, { bias: config.attentionBias, seed: seed + 1 }));
  }

  /**
   * x (B, L, hidden) at positions past … past + L − 1 where past is the cached length. Returns the output and the
   * keys/values including this call's (the caller decides whether to keep them).
   */
  forward(x: Tensor, rotary: RotaryTables, masks: CausalMasks, cache?: LayerKV): { y: Tensor; kv: LayerKV } {
    const [B, L] = x.shape;
    const past = cache ? cache.keys.shape[2] : 0;
    const qkv = transpose(reshape(this.query_key_value.forward(x), [B, L, this.heads, 3 * this.headSize]), [0, 2, 1, 3]);
    const [q0, k0, v] = split(qkv, [this.headSize, this.headSize, this.headSize], -1);
    const { cos, sin } = rotary.at(past, L, x.dtype);
    const q = applyRotary(q0, cos, sin);
    const kNew = applyRotary(k0, cos, sin);
    const keys = cache ? concat([cache.keys, kNew], 2) : kNew;
    const values = cache ? concat([cache.values, v], 2) : v;

    // Scores and softmax in fp32 (as HF does for half-precision activations), probabilities back in x's dtype.
    let scores = cast(mulScalar(matmul(q, keys, { transB: true }), 1 / Math.sqrt(this.headSize)), 'f32');
    if (L > 1) scores = add(scores, masks.get(L, past + L));
    const probs = cast(softmax(scores), x.dtype);
    const heads = matmul(probs, values);
    const merged = reshape(transpose(heads, [0, 2, 1, 3]), [B, L, this.heads * this.headSize]);
    return { y: this.dense.forward(merged), kv: { keys, values } };
  }
}
