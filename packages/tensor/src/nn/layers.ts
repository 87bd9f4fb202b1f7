import type { DType } from '../dtype.js';
import { randomNormal, randomUniform, ones, zeros } from '../ops/core.js';
import { embedding, layerNorm, rmsNorm } from '../ops/fused.js';
import { add, cast, matmul, reshape } from '../ops/math.js';
import type { Tensor } from '../tensor.js';
import { Module, type Parameter } from './module.js';

/** Casts a (master) weight to the activation dtype, so f32 weights serve bf16/f16 compute. */
export function asDType(t: Tensor, dtype: DType): Tensor {
  return t.dtype === dtype ? t : cast(t, dtype);
}

export interface LinearOptions {
  bias?: boolean;
  dtype?: DType;
  seed?: number;
}

/** y = x·Wᵀ + b with W of shape (out, in), as PyTorch and Hugging Face store it. */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    { bias = true, dtype = 'f32', seed = 0 }: LinearOptions = {},
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.registerParameter('weight', randomUniform([outFeatures, inFeatures], { low: -bound, high: bound, seed, dtype }));
    this.bias = bias ? this.registerParameter('bias', zeros([outFeatures], dtype)) : null;
  }

  /** `bias: false` leaves the bias out (e.g. Mamba's dt_proj, whose bias goes into the scan kernel in fp32). */
  forward(x: Tensor, { bias = true }: { bias?: boolean } = {}): Tensor {
    const lead = x.shape.slice(0, -1);
    const flat = reshape(x, [-1, this.inFeatures]);
    let y = matmul(flat, this.weight.as(x.dtype), { transB: true });
    if (this.bias && bias) y = add(y, this.bias.as(x.dtype));
    return reshape(y, [...lead, this.outFeatures]);
  }
}

export class Embedding extends Module {
  readonly weight: Parameter;

  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
    { dtype = 'f32', seed = 0, std = 0.02 }: { dtype?: DType; seed?: number; std?: number } = {},
  ) {
    super();
    this.weight = this.registerParameter('weight', randomNormal([numEmbeddings, dim], { std, seed, dtype }));
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight.value, ids);
  }
}

export class RMSNorm extends Module {
  readonly weight: Parameter;

  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.registerParameter('weight', ones([dim]));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight.value, this.eps);
  }
}

export class LayerNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;

  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.registerParameter('weight', ones([dim]));
    this.bias = this.registerParameter('bias', zeros([dim]));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight.value, this.bias.value, this.eps);
  }
}
