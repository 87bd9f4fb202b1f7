import { WASM_BASE64, WASM_BYTE_LENGTH } from './generated/kernels-wasm.js';

/** The raw-pointer kernels exported by the AssemblyScript module (assembly/index.ts). Pointers are byte offsets. */
export interface KernelExports {
  readonly memory: WebAssembly.Memory;
  heapBase(): number;
  toF32(kind: number, src: number, dst: number, n: number): void;
  fromF32(kind: number, src: number, dst: number, n: number): void;
  unary(op: number, x: number, y: number, n: number): void;
  binary(op: number, a: number, b: number, y: number, params: number): void;
  binaryI32(op: number, a: number, b: number, y: number, params: number): void;
  affine(x: number, y: number, n: number, scale: number, offset: number): void;
  fillF32(y: number, n: number, value: number): void;
  adamw(param: number, grad: number, m: number, v: number, n: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, stepSize: number, rsqrtBc2: number): void;
  reduce(kind: number, x: number, y: number, outer: number, red: number, inner: number): void;
  argmax(x: number, y: number, rows: number, cols: number): void;
  softmax(x: number, y: number, rows: number, cols: number): void;
  stridedCopy(src: number, dst: number, elemBytes: number, rank: number, params: number): void;
  gatherRows(table: number, ids: number, count: number, rowBytes: number, out: number): void;
  scatterAddRows(dout: number, ids: number, count: number, dim: number, dtable: number): void;
  gemm(M: number, N: number, K: number, a: number, sam: number, sak: number, b: number, sbk: number, sbn: number, c: number, ldc: number, accumulate: boolean | number, scratch: number): void;
  gemmScratchBytes(): number;
  rmsNormForward(x: number, w: number, y: number, rows: number, cols: number, eps: number): void;
  rmsNormBackward(x: number, w: number, dy: number, dx: number, dw: number, rows: number, cols: number, eps: number): void;
  layerNormForward(x: number, w: number, b: number, y: number, rows: number, cols: number, eps: number): void;
  layerNormBackward(x: number, w: number, dy: number, dx: number, dw: number, db: number, rows: number, cols: number, eps: number): void;
  transpose2d(src: number, dst: number, rows: number, cols: number): void;
  convPad(x: number, state: number, xpad: number, B: number, L: number, E: number, W: number): void;
  convUnpad(dxpad: number, dx: number, dstate: number, B: number, L: number, E: number, W: number): void;
  convForward(xpad: number, wT: number, bias: number, y: number, B: number, L: number, E4: number, W: number, silu: boolean | number): void;
  convBackward(xpad: number, wT: number, bias: number, dy: number, dxpad: number, dwT: number, dbias: number, B: number, L: number, E4: number, W: number, silu: boolean | number): void;
  scanForward(...args: number[]): void;
  scanBackward(...args: number[]): void;
  lseAbsorb(logits: number, rows: number, width: number, ld: number, runMax: number, runSum: number): void;
  softmaxXentGrad(logits: number, lse: number, targets: number, dloss: number, dlogits: number, rows: number, width: number, ld: number, col0: number, ignoreIndex: number): void;
}

/** The embedded module's bytes (decoded with atob, which Node ≥ 16 and every browser have). */
export function wasmBytes(): Uint8Array<ArrayBuffer> {
  const binary = atob(WASM_BASE64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  if (bytes.length !== WASM_BYTE_LENGTH) throw new Error('backend-wasm: the embedded module is truncated; rebuild the package.');
  return bytes;
}

function checkWebAssembly(): void {
  if (typeof WebAssembly !== 'object') throw new Error('backend-wasm: this JavaScript runtime has no WebAssembly; use the cpu backend.');
}

function compileError(e: unknown): Error {
  return new Error(
    'backend-wasm: this runtime cannot compile the kernels; they need WebAssembly SIMD (Node ≥ 16.4, Chrome ≥ 91, ' +
      `Firefox ≥ 89, Safari ≥ 16.4) — use the cpu backend otherwise. (${(e as Error).message})`,
  );
}

/** Compiles and instantiates the kernels asynchronously (works everywhere, required on browser main threads). */
export async function instantiateKernels(): Promise<KernelExports> {
  checkWebAssembly();
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(wasmBytes());
  } catch (e) {
    throw compileError(e);
  }
  const instance = await WebAssembly.instantiate(module, {});
  return instance.exports as unknown as KernelExports;
}

/** Synchronous instantiation (Node, workers; browsers refuse it on the main thread for modules this size). */
export function instantiateKernelsSync(): KernelExports {
  checkWebAssembly();
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(wasmBytes());
  } catch (e) {
    throw compileError(e);
  }
  return new WebAssembly.Instance(module, {}).exports as unknown as KernelExports;
}
