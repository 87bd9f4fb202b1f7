import { LayerNorm, Linear, Module, add, addScalar, gelu, mul, mulScalar, relu, tanh, type Tensor } from '@mamba-ts/tensor';
import { GPTNeoXAttention, type CausalMasks, type LayerKV } from './attention.js';
import type { GPTNeoXActivation, GPTNeoXConfig } from './config.js';
import type { RotaryTables } from './rotary.js';

/** gelu(x) ≈ 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), the approximation behind gelu_new / gelu_fast. */
function geluTanh(x: Tensor): Tensor {
  const inner = mulScalar(add(x, mulScalar(mul(x, mul(x, x)), 0.044715)), Math.sqrt(2 / Math.PI));
  return mul(mulScalar(x, 0.5), addScalar(tanh(inner), 1));
}

export function activation(name: GPTNeoXActivation, x: Tensor): Tensor {
  if (name === 'gelu') return gelu(x);
  if (name === 'relu') return relu(x);
  return geluTanh(x);
}

export class GPTNeoXMLP extends Module {
  readonly dense_h_to_4h: Linear;
  readonly dense_4h_to_h: Linear;

  constructor(
    readonly config: GPTNeoXConfig,
    seed = 0,
  ) {
    super();
    this.dense_h_to_4h = this.registerModule('dense_h_to_4h', new Linear(config.hiddenSize, config.intermediateSize, { seed }));
    this.dense_4h_to_h = this.registerModule('dense_4h_to_h', new Linear(config.intermediateSize, config.hiddenSize, { seed: seed + 1 }));
  }

  forward(x: Tensor): Tensor {
    return this.dense_4h_to_h.forward(activation(this.config.hiddenAct, this.dense_h_to_4h.forward(x)));
  }
}

/**
 * One Transformer block. Parallel residual (Pythia): x + attn(ln₁(x)) + mlp(ln₂(x)).
 * Sequential: h = x + attn(ln₁(x)); h + mlp(ln₂(h)).
 */
export class GPTNeoXLayer extends Module {
  readonly input_layernorm: LayerNorm;
  readonly post_attention_layernorm: LayerNorm;
  readonly attention: GPTNeoXAttention;
  readonly mlp: GPTNeoXMLP;

  constructor(
    readonly config: GPTNeoXConfig,
    seed = 0,
  ) {
    super();
    this.input_layernorm = this.registerModule('input_layernorm', new LayerNorm(config.hiddenSize, config.layerNormEps));
    this.post_attention_layernorm = this.registerModule('post_attention_layernorm', new LayerNorm(config.hiddenSize, config.layerNormEps));
    this.attention = this.registerModule('attention', new GPTNeoXAttention(config, seed));
    this.mlp = this.registerModule('mlp', new GPTNeoXMLP(config, seed + 2));
  }

  forward(x: Tensor, rotary: RotaryTables, masks: CausalMasks, cache?: LayerKV): { y: Tensor; kv: LayerKV } {
    const { y: attn, kv } = this.attention.forward(this.input_layernorm.forward(x), rotary, masks, cache);
    if (this.config.useParallelResidual) {
      const mlp = this.mlp.forward(this.post_attention_layernorm.forward(x));
      return { y: add(add(mlp, attn), x), kv };
    }
    const h = add(attn, x);
    return { y: add(this.mlp.forward(this.post_attention_layernorm.forward(h)), h), kv };
  }
}
