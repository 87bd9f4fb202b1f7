import { engine } from '../engine.js';
import { zeros } from '../ops/core.js';
import { runMulti } from '../ops/core.js';
import type { Parameter } from '../nn/module.js';
import type { Tensor } from '../tensor.js';
import { formatShape, shapesEqual } from '../shape.js';

export interface AdamWOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters get weight decay (default: all). Mamba's A_log, D and norms usually get none. */
  decay?: (p: Parameter, index: number) => boolean;
}

/** AdamW with decoupled weight decay (as torch.optim.AdamW), one fused kernel per parameter; state in f32. */
export class AdamW {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  stepCount = 0;
  readonly m: Tensor[];
  readonly v: Tensor[];
  readonly #decays: boolean[];

  constructor(
    readonly params: readonly Parameter[],
    { lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01, decay }: AdamWOptions = {},
  ) {
    this.lr = lr;
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.m = params.map((p) => zeros(p.shape).keep());
    this.v = params.map((p) => zeros(p.shape).keep());
    this.#decays = params.map((p, i) => (decay ? decay(p, i) : true));
  }

  /**
   * Applies one update from `grads` (same order as the parameters), at learning rate `lr` (default: the initial one);
   * the gradients are multiplied by `gradScale` inside the update (clipping, loss-scale unscaling: no extra pass).
   */
  step(grads: readonly Tensor[], lr = this.lr, { gradScale = 1 }: { gradScale?: number } = {}): void {
    if (grads.length !== this.params.length) {
      throw new Error(`AdamW.step: ${grads.length} gradients for ${this.params.length} parameters.`);
    }
    this.stepCount++;
    engine().noGrad(() => {
      this.params.forEach((p, i) => {
        if (!shapesEqual(grads[i].shape, p.shape)) {
          throw new Error(`AdamW.step: gradient ${i} has shape ${formatShape(grads[i].shape)}, parameter ${formatShape(p.shape)}.`);
        }
        const [param, m, v] = runMulti('adamw', [p.value, grads[i], this.m[i], this.v[i]], {
          lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps,
          weightDecay: this.#decays[i] ? this.weightDecay : 0, step: this.stepCount, gradScale,
        });
        p.assign(param);
        this.m[i].dispose();
        this.v[i].dispose();
        this.m[i] = m.keep();
        this.v[i] = v.keep();
      });
    });
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}
