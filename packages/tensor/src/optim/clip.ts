import { engine } from '../engine.js';
import { scalar } from '../ops/core.js';
import { addScalar, cast, div, minimum, mul, sqrt, sumSquares } from '../ops/math.js';
import type { Tensor } from '../tensor.js';

/**
 * Scales gradients so that their global L2 norm is at most `maxNorm` (as torch.nn.utils.clip_grad_norm_).
 * Stays on the device: returns the clipped gradients and the norm before clipping, both as tensors.
 */
export function clipGradNorm(grads: readonly Tensor[], maxNorm: number): { grads: Tensor[]; norm: Tensor } {
  return engine().noGrad(() =>
    engine().tidy(() => {
      const norm = sqrt(sumSquares(grads));
      const factor = minimum(scalar(1), div(scalar(maxNorm), addScalar(norm, 1e-6)));
      return { grads: grads.map((g) => mul(g, cast(factor, g.dtype))), norm };
    }),
  );
}
