import type { KernelFunc } from '@mamba-ts/tensor';
import { sizeOf } from '@mamba-ts/tensor';
import { wasmKernel } from './call.js';

const KINDS = { sum: 0, max: 1, min: 2 } as const;

function reduceKernel(kind: keyof typeof KINDS): KernelFunc {
  return wasmKernel((call, [x], attrs) => {
    const axes = [...(attrs.axes as number[])].sort((p, q) => p - q);
    for (let i = 1; i < axes.length; i++) {
      if (axes[i] !== axes[i - 1] + 1) throw new Error(`${kind}: axes must be contiguous; transpose first.`);
    }
    const first = axes[0];
    const last = axes[axes.length - 1];
    const outer = sizeOf(x.shape.slice(0, first));
    const red = sizeOf(x.shape.slice(first, last + 1));
    const inner = sizeOf(x.shape.slice(last + 1));
    const keptShape = x.shape.map((d, i) => (i >= first && i <= last ? 1 : d));
    const shape = attrs.keepDims ? keptShape : keptShape.filter((_, i) => !axes.includes(i));
    const out = call.out(shape, x.dtype);
    if (red === 0) {
      call.k.fillF32(out.ptr, outer * inner, kind === 'sum' ? 0 : kind === 'max' ? -Infinity : Infinity);
    } else if (outer * inner > 0) {
      call.k.reduce(KINDS[kind], call.f32(x), out.ptr, outer, red, inner);
    }
    return [out.info()];
  });
}

const argmax = wasmKernel((call, [x]) => {
  const cols = x.shape[x.shape.length - 1];
  const rows = sizeOf(x.shape) / cols;
  const out = call.raw(x.shape.slice(0, -1), 'i32');
  if (rows > 0) call.k.argmax(call.f32(x), out.ptr, rows, cols);
  return [out.info];
});

const softmax = wasmKernel((call, [x]) => {
  const cols = x.shape[x.shape.length - 1];
  const out = call.out(x.shape, x.dtype);
  if (sizeOf(x.shape) > 0) call.k.softmax(call.f32(x), out.ptr, sizeOf(x.shape) / cols, cols);
  return [out.info()];
});

export function reduceKernels(): Record<string, KernelFunc> {
  return { sum: reduceKernel('sum'), max: reduceKernel('max'), min: reduceKernel('min'), argmax, softmax };
}
