import { registerCpuBackend } from './backends/cpu/index.js';
import { engine, type Engine } from './engine.js';
import type { Backend, KernelFunc } from './backend.js';
import type { Tensor } from './tensor.js';

export type { Backend, BackendMemory, BufferCopy, CapturedGraph, DataId, KernelFunc, TensorInfo } from './backend.js';
export { returnedGradInputs, returnedGradNames, splitWithSlice } from './backend.js';
export { Engine, engine, type GradFunc, type GradContext, type GradSaves, type GradSavesRule, type MemoryInfo } from './engine.js';
export { Tensor, asFloat32, type Storage } from './tensor.js';
export * from './dtype.js';
export * from './shape.js';
export * from './half.js';
export { valueAndGrad, grad, noGrad, checkpoint } from './autograd.js';
export * from './ops/core.js';
export * from './ops/math.js';
export * from './ops/fused.js';
export * from './ops/decode.js';
export { Module, ModuleList, Parameter } from './nn/module.js';
export { Linear, Embedding, RMSNorm, LayerNorm, asDType, type LinearOptions } from './nn/layers.js';
export { AdamW, type AdamWOptions } from './optim/adamw.js';
export { SGD, type SGDOptions } from './optim/sgd.js';
export { clipGradNorm } from './optim/clip.js';
export { linearSchedule, cosineSchedule, constantSchedule, type ScheduleOptions } from './optim/schedule.js';
export { CpuBackend, registerCpuBackend } from './backends/cpu/index.js';
export * as cpuMath from './backends/cpu/math/index.js';
export { createSampler, checkSamplingOptions, isGreedy, argmax as argmaxOf, type SamplingOptions } from './sampling.js';
export * from './io/safetensors.js';
export { tensorFromSafetensors, safetensorsEntry } from './io/tensor-io.js';

registerCpuBackend();

export function registerBackend(backend: Backend, opts?: { activate?: boolean }): void {
  engine().registerBackend(backend, opts);
}
export function registerKernel(backendName: string, kernelName: string, fn: KernelFunc): void {
  engine().registerKernel(backendName, kernelName, fn);
}
export const setBackend = (name: string): void => engine().setBackend(name);
export const getBackend = (): Backend => engine().getBackend();
export const tidy = <T>(f: () => T): T => engine().tidy(f);
export const memory: Engine['memory'] = (name) => engine().memory(name);
export const resetPeak = (name?: string): void => engine().resetPeak(name);
export const sync = (): Promise<void> => engine().sync();

/** Disposes tensors found in a value (a tensor, an array, or an object of them). */
export function dispose(value: Tensor | readonly Tensor[] | Record<string, Tensor>): void {
  const list = Array.isArray(value) ? value : 'dispose' in value ? [value as Tensor] : Object.values(value);
  for (const t of list as Tensor[]) t.dispose();
}
