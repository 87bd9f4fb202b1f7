import { engine } from '../engine.js';
import { zeros } from '../ops/core.js';
import { add, affine, mulScalar, sub } from '../ops/math.js';
import type { Parameter } from '../nn/module.js';
import type { Tensor } from '../tensor.js';

export interface SGDOptions {
  lr?: number;
  momentum?: number;
  weightDecay?: number;
}

/** SGD with optional momentum (PyTorch convention: buf = μ·buf + g; p −= lr·buf) and L2 weight decay. */
export class SGD {
  readonly #buffers: (Tensor | null)[];

  constructor(
    readonly params: readonly Parameter[],
    readonly options: Required<SGDOptions> = { lr: 1e-2, momentum: 0, weightDecay: 0 },
  ) {
    this.#buffers = params.map(() => null);
  }

  step(grads: readonly Tensor[], lr = this.options.lr): void {
    const { momentum, weightDecay } = this.options;
    engine().noGrad(() =>
      engine().tidy(() => {
        this.params.forEach((p, i) => {
          let g = grads[i];
          if (weightDecay) g = add(g, mulScalar(p.value, weightDecay));
          if (momentum) {
            const prev = this.#buffers[i];
            const buf = prev ? add(affine(prev, momentum), g) : add(zeros(p.shape), g);
            prev?.dispose();
            this.#buffers[i] = buf.keep();
            g = buf;
          }
          p.assign(sub(p.value, mulScalar(g, lr)));
        });
      }),
    );
  }

  dispose(): void {
    for (const b of this.#buffers) b?.dispose();
  }
}
