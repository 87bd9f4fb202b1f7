/**
 * One AdamW step in place, as torch.optim.AdamW (amsgrad = false, maximize = false):
 *
 *   param ← param − lr·weightDecay·param                       (decoupled weight decay)
 *   m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
 *   param ← param − (lr / (1 − β1^step)) · m / (sqrt(v) / sqrt(1 − β2^step) + eps)
 *
 * `step` counts from 1 (the first update uses step = 1). The gradient is multiplied by `gradScale` first (rounded to
 * f32, as a separate scaling kernel would), e.g. gradient clipping and loss-scale unscaling folded in.
 */
import type { FArray } from './common.js';

export interface AdamwStepArgs {
  param: FArray;
  grad: FArray;
  /** First moment, updated in place. */
  m: FArray;
  /** Second moment, updated in place. */
  v: FArray;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
  gradScale?: number;
}

export function adamwStep(args: AdamwStepArgs): void {
  const { param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale = 1 } = args;
  if (!Number.isInteger(step) || step < 1) {
    throw new Error(`adamwStep: step must be an integer ≥ 1 (the first update is step 1), got ${step}.`);
  }
  for (const [name, array] of [['grad', grad], ['m', m], ['v', v]] as const) {
    if (array.length !== param.length) {
      throw new Error(`adamwStep: ${name} has ${array.length} elements but param has ${param.length}.`);
    }
  }

  const biasCorrection1 = 1 - beta1 ** step;
  const biasCorrection2 = 1 - beta2 ** step;
  const stepSize = lr / biasCorrection1;

  for (let i = 0; i < param.length; i++) {
    const g = gradScale === 1 ? grad[i] : Math.fround(grad[i] * gradScale);
    const p = param[i] * (1 - lr * weightDecay);
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    const denom = Math.sqrt(vi) / Math.sqrt(biasCorrection2) + eps;
    m[i] = mi;
    v[i] = vi;
    param[i] = p - stepSize * (mi / denom);
  }
}
