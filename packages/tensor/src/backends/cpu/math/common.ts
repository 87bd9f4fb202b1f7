/**
 * Shared pieces of the reference math: the array type, the scalar activations and argument checks.
 * Every function here computes in JS doubles whatever the storage precision of its inputs.
 */

/** A flat, row-major numeric array. */
export type FArray = Float32Array | Float64Array;

export function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v));
}

/** softplus with PyTorch's threshold 20: above it softplus(v) = v (also avoids exp overflow). */
export function softplus(v: number): number {
  return v > 20 ? v : Math.log1p(Math.exp(v));
}

/** d softplus(v) / dv, consistent with the thresholded forward. */
export function softplusGrad(v: number): number {
  return v > 20 ? 1 : sigmoid(v);
}

export function silu(v: number): number {
  return v * sigmoid(v);
}

/** d silu(v) / dv = σ(v)·(1 + v·(1 − σ(v))). */
export function siluGrad(v: number): number {
  const s = sigmoid(v);
  return s * (1 + v * (1 - s));
}

/** Throws unless every named dimension is a non-negative integer. */
export function checkDims(where: string, dims: Record<string, number>): void {
  for (const [name, value] of Object.entries(dims)) {
    if (!Number.isInteger(value) || value < 0) {
      throw new Error(`${where}: dims.${name} must be a non-negative integer, got ${value}.`);
    }
  }
}

/** Throws when a given (non-null) array does not hold exactly `expected` elements. */
export function checkLength(
  where: string,
  name: string,
  array: ArrayLike<number> | null | undefined,
  expected: number,
  shape: string,
): void {
  if (array == null) return;
  if (array.length !== expected) {
    throw new Error(`${where}: ${name} has ${array.length} elements but its shape ${shape} needs ${expected}.`);
  }
}
