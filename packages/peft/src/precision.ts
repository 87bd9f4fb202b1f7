import type { DType, Module } from '@mamba-ts/tensor';

/**
 * Mixed-precision policy. Master weights are always f32; `bf16`/`f16` set the compute dtype of matmul inputs and
 * activations (`model.computeDType`). The scan state, A, D, the dt bias, norms, the residual stream, the loss and
 * the optimizer state stay f32 (the model and kernels guarantee that part).
 */
export type Precision = 'fp32' | 'bf16' | 'f16';

export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16', 'f16'];

export function parsePrecision(value: string, what = 'precision'): Precision {
  const v = value === 'fp16' ? 'f16' : value === 'f32' ? 'fp32' : value;
  if (!(PRECISIONS as readonly string[]).includes(v)) throw new Error(`${what} must be fp32, bf16 or f16, got "${value}".`);
  return v as Precision;
}

export function computeDTypeOf(p: Precision): DType {
  return p === 'fp32' ? 'f32' : p;
}

/** Sets the compute dtype; refuses a model whose weights are not f32 (low-precision master weights lose updates). */
export function applyPrecision(model: Module & { computeDType: DType }, precision: Precision): void {
  for (const [name, p] of model.namedParameters()) {
    if (p.value.dtype !== 'f32') {
      throw new Error(
        `precision ${precision}: parameter "${name}" is ${p.value.dtype}; load the model with dtype f32 (master weights stay f32, compute runs in ${precision}).`,
      );
    }
  }
  model.computeDType = computeDTypeOf(precision);
}

export interface LossScalerOptions {
  /** Initial scale (default 2^16, as torch.cuda.amp.GradScaler). */
  initScale?: number;
  /** Multiply the scale by this after `growthInterval` finite steps in a row (default 2). */
  growthFactor?: number;
  /** Multiply the scale by this after an overflow (default 0.5). */
  backoffFactor?: number;
  growthInterval?: number;
  /** Never go below this scale (default 1). */
  minScale?: number;
}

export interface LossScalerState {
  scale: number;
  goodSteps: number;
  skipped: number;
  growths: number;
  backoffs: number;
}

/**
 * Dynamic loss scaling for f16: the loss is multiplied by `scale` before the backward pass so small gradients
 * survive f16, gradients are divided by it before the update; a step whose gradients hold inf/NaN is skipped and
 * the scale backs off; after `growthInterval` good steps it grows.
 */
export class LossScaler {
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  readonly minScale: number;
  scale: number;
  goodSteps = 0;
  skipped = 0;
  growths = 0;
  backoffs = 0;

  constructor({ initScale = 2 ** 16, growthFactor = 2, backoffFactor = 0.5, growthInterval = 2000, minScale = 1 }: LossScalerOptions = {}) {
    if (!(initScale > 0) || !(growthFactor > 1) || !(backoffFactor > 0 && backoffFactor < 1) || !(growthInterval >= 1)) {
      throw new Error('LossScaler: need initScale > 0, growthFactor > 1, 0 < backoffFactor < 1 and growthInterval ≥ 1.');
    }
    this.scale = initScale;
    this.growthFactor = growthFactor;
    this.backoffFactor = backoffFactor;
    this.growthInterval = growthInterval;
    this.minScale = minScale;
  }

  /** Records the outcome of a step; returns whether the optimizer may apply it. */
  update(gradsFinite: boolean): boolean {
    if (!gradsFinite) {
      this.skipped++;
      this.backoffs++;
      this.goodSteps = 0;
      this.scale = Math.max(this.minScale, this.scale * this.backoffFactor);
      return false;
    }
    this.goodSteps++;
    if (this.goodSteps >= this.growthInterval) {
      this.scale *= this.growthFactor;
      this.growths++;
      this.goodSteps = 0;
    }
    return true;
  }

  state(): LossScalerState {
    return { scale: this.scale, goodSteps: this.goodSteps, skipped: this.skipped, growths: this.growths, backoffs: this.backoffs };
  }

  restore(s: LossScalerState): void {
    Object.assign(this, s);
  }
}
