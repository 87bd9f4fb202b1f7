import { engine } from './engine.js';
import type { Tensor } from './tensor.js';

/** Value of the scalar `f()` and its gradients with respect to `xs`. Intermediates are freed. */
export function valueAndGrad(f: () => Tensor, xs: readonly Tensor[]): { value: Tensor; grads: Tensor[] } {
  return engine().valueAndGrad(f, xs);
}

/** Gradients of the scalar `f()` with respect to `xs`. */
export function grad(f: () => Tensor, xs: readonly Tensor[]): Tensor[] {
  const { value, grads } = engine().valueAndGrad(f, xs);
  value.dispose();
  return grads;
}

export function noGrad<T>(f: () => T): T {
  return engine().noGrad(f);
}

/**
 * Activation checkpointing: `f(...inputs)` keeps no activations for backprop; the backward pass recomputes them.
 * Trades one extra forward of `f` for the memory of its intermediates.
 */
export function checkpoint(f: (...inputs: Tensor[]) => Tensor[], inputs: readonly Tensor[]): Tensor[] {
  return engine().checkpoint(f, inputs);
}
