import type { DType, TensorData } from './dtype.js';
import type { Shape } from './shape.js';

/** Opaque handle to a buffer owned by a backend. */
export type DataId = object;

/** What a kernel sees of a tensor: its buffer, shape and dtype. */
export interface TensorInfo {
  readonly dataId: DataId;
  readonly shape: Shape;
  readonly dtype: DType;
}

export interface BackendMemory {
  /** Bytes held by live buffers. */
  liveBytes: number;
  /** Highest `liveBytes` since creation or the last `resetPeak()`. */
  peakBytes: number;
  /** Bytes the backend reserves beyond live buffers (e.g. a caching allocator's pool); 0 if none. */
  reservedBytes?: number;
}

/**
 * A place where tensor data lives and kernels run. Backends know no model: they implement kernels by name
 * (registered separately through `registerKernel`).
 */
export interface Backend {
  readonly name: string;
  /** Allocates a zero-filled buffer for `size` elements of `dtype`. */
  alloc(dtype: DType, size: number): DataId;
  /** Allocates a buffer holding a copy of `values`. */
  upload(values: TensorData, dtype: DType): DataId;
  free(dataId: DataId): void;
  read(dataId: DataId, dtype: DType, size: number): Promise<TensorData>;
  /** Present only where a synchronous read is possible (cpu, wasm); it also enables fallback to `cpu`. */
  readSync?(dataId: DataId, dtype: DType, size: number): TensorData;
  /** Resolves when all enqueued work is done. */
  sync(): Promise<void>;
  memory(): BackendMemory;
  resetPeak(): void;
  /** Called when the backend is being replaced or the engine is reset. */
  dispose?(): void;
  /** Overwrites the first `values.length` elements of a buffer in place (optional: `engine().write`). */
  write?(dataId: DataId, values: TensorData, dtype: DType): void;
  /** In-place copies, each of `size` elements of `dtype` from `src` over `dst` (optional: `engine().assign`). */
  copy?(pairs: readonly BufferCopy[]): void;
  /**
   * Optional: runs `record` while recording every kernel it launches into a graph, without executing them; the
   * graph's `replay()` executes them, with one call (CUDA graphs). Buffers allocated during the capture stay
   * reserved for the graph until it is disposed.
   */
  capture?(record: () => void): CapturedGraph;
}

export interface BufferCopy {
  dst: DataId;
  src: DataId;
  size: number;
  dtype: DType;
}

/** Work recorded once by `engine().capture`, re-run on the same buffers by `replay()`. */
export interface CapturedGraph {
  /** Enqueues the recorded kernels again: inputs are read anew, outputs overwritten. */
  replay(): void;
  /** Releases the graph and the memory reserved for it. */
  dispose(): void;
}

export type KernelFunc = (inputs: readonly TensorInfo[], attrs: Record<string, unknown>, backend: Backend) => TensorInfo[];

/** The parameter inputs of the fused gradient kernels, whose gradients `attrs.weightGrad` false leaves out. */
const PARAMETER_INPUTS = { causalConv1dGrad: ['weight', 'bias'], selectiveScanGrad: ['A', 'D', 'deltaBias'] } as const;
type FusedGradKernel = keyof typeof PARAMETER_INPUTS;

/**
 * The inputs (by `attrs.names`) whose gradients `causalConv1dGrad` or `selectiveScanGrad` returns, in order: every
 * input, or with `attrs.weightGrad` false (frozen parameters, as under LoRA) all but the kernel's parameters (the
 * conv's weight and bias; the scan's A, D and deltaBias).
 */
export function returnedGradNames(kernel: FusedGradKernel, attrs: Record<string, unknown>): string[] {
  const names = attrs.names as string[];
  const parameters: readonly string[] = PARAMETER_INPUTS[kernel];
  return attrs.weightGrad === false ? names.filter((name) => !parameters.includes(name)) : names;
}

/** returnedGradNames with each name's input (of `inputs`, named by `attrs.names`): what the gradients are shaped like. */
export function returnedGradInputs<I>(
  kernel: FusedGradKernel,
  inputs: readonly I[],
  attrs: Record<string, unknown>,
): { name: string; input: I }[] {
  const names = attrs.names as string[];
  return returnedGradNames(kernel, attrs).map((name) => ({ name, input: inputs[names.indexOf(name)] }));
}

/** Whether any of the kernel's parameter inputs needs a gradient (the `weightGrad` attr of its gradient kernel). */
export function parametersNeedGrad(
  kernel: FusedGradKernel,
  names: readonly string[],
  needsGrad: readonly boolean[],
): boolean {
  const parameters: readonly string[] = PARAMETER_INPUTS[kernel];
  return names.some((name, i) => parameters.includes(name) && needsGrad[i]);
}

/** The `split` kernel (parts of `attrs.sizes` along `attrs.axis`) made of a backend's own `slice` kernel. */
export function splitWithSlice(slice: KernelFunc): KernelFunc {
  return ([x], attrs, backend) => {
    const axis = attrs.axis as number;
    let start = 0;
    return (attrs.sizes as number[]).map((length) => {
      const begin = x.shape.map((_, i) => (i === axis ? start : 0));
      const size = x.shape.map((d, i) => (i === axis ? length : d));
      start += length;
      return slice([x], { begin, size }, backend)[0];
    });
  };
}
