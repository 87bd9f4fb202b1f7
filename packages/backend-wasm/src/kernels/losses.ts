import type { KernelFunc, TensorInfo } from '@mamba-ts/tensor';
import { wasmKernel, type Call } from './call.js';
import { checkIndices } from './fused.js';
import { gemm } from './matmul.js';

function checkChunkSize(what: string, chunkSize: number): void {
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Error(`${what}: chunkSize must be a positive integer, got ${chunkSize}.`);
}

/** loss[r] = lse[r] − logit[r, target[r]] (0 on ignored rows), reading target logits from a chunk. */
function pickTargetLogits(call: Call, logits: number, rows: number, width: number, col0: number, targets: TensorInfo, ignoreIndex: number, picked: number): void {
  const t = call.be.i32;
  const f = call.be.f32;
  const tb = call.ptr(targets) >> 2;
  for (let r = 0; r < rows; r++) {
    const target = t[tb + r];
    if (target !== ignoreIndex && target >= col0 && target < col0 + width) f[(picked >> 2) + r] = f[(logits >> 2) + r * width + (target - col0)];
  }
}

function finishLoss(call: Call, rows: number, runMax: number, runSum: number, picked: number, targets: TensorInfo, ignoreIndex: number, loss: number, lse: number): void {
  const f = call.be.f32;
  const t = call.be.i32;
  const tb = call.ptr(targets) >> 2;
  for (let r = 0; r < rows; r++) {
    const l = f[(runMax >> 2) + r] + Math.log(f[(runSum >> 2) + r]);
    f[(lse >> 2) + r] = l;
    f[(loss >> 2) + r] = t[tb + r] === ignoreIndex ? 0 : l - f[(picked >> 2) + r];
  }
}

function runningLse(call: Call, rows: number): { runMax: number; runSum: number; picked: number } {
  const runMax = call.tempF32(rows);
  call.k.fillF32(runMax, rows, -Infinity);
  return { runMax, runSum: call.tempF32(rows, true), picked: call.tempF32(rows, true) };
}

const crossEntropy = wasmKernel((call, [logits, targets], attrs) => {
  const [rows, vocab] = logits.shape;
  const ignoreIndex = attrs.ignoreIndex as number;
  checkChunkSize('crossEntropyForward', attrs.chunkSize as number);
  checkIndices(call, targets, vocab, 'crossEntropyForward', ignoreIndex);
  const x = call.f32(logits);
  const loss = call.out([rows], 'f32');
  const lse = call.out([rows], 'f32');
  const run = runningLse(call, rows);
  call.k.lseAbsorb(x, rows, vocab, vocab, run.runMax, run.runSum);
  pickTargetLogits(call, x, rows, vocab, 0, targets, ignoreIndex, run.picked);
  finishLoss(call, rows, run.runMax, run.runSum, run.picked, targets, ignoreIndex, loss.ptr, lse.ptr);
  return [loss.info(), lse.info()];
});

const crossEntropyGrad = wasmKernel((call, [dloss, logits, targets, lse], attrs) => {
  const [rows, vocab] = logits.shape;
  const ignoreIndex = attrs.ignoreIndex as number;
  checkIndices(call, targets, vocab, 'crossEntropyBackward', ignoreIndex);
  const dlogits = call.out(logits.shape, logits.dtype);
  call.k.softmaxXentGrad(call.f32(logits), call.f32(lse), call.ptr(targets), call.f32(dloss), dlogits.ptr, rows, vocab, vocab, 0, ignoreIndex);
  return [dlogits.info()];
});

/** logits of the vocabulary chunk [c0, c0 + width): hidden (rows × dim) · weight[c0 : c0 + width]ᵀ. */
function chunkLogits(call: Call, hidden: number, weight: number, rows: number, dim: number, c0: number, width: number, out: number): void {
  gemm(call, rows, width, dim, hidden, false, weight + c0 * dim * 4, true, out, width, false);
}

const linearCrossEntropy = wasmKernel((call, [hidden, weight, targets], attrs) => {
  const [rows, dim] = hidden.shape;
  const vocab = weight.shape[0];
  const ignoreIndex = attrs.ignoreIndex as number;
  const chunkSize = attrs.chunkSize as number;
  checkChunkSize('linearCrossEntropyForward', chunkSize);
  checkIndices(call, targets, vocab, 'linearCrossEntropyForward', ignoreIndex);
  const h = call.f32(hidden);
  const w = call.f32(weight);
  const loss = call.out([rows], 'f32');
  const lse = call.out([rows], 'f32');
  const run = runningLse(call, rows);
  const chunk = call.tempF32(rows * Math.min(chunkSize, vocab));
  for (let c0 = 0; c0 < vocab; c0 += chunkSize) {
    const width = Math.min(chunkSize, vocab - c0);
    chunkLogits(call, h, w, rows, dim, c0, width, chunk);
    call.k.lseAbsorb(chunk, rows, width, width, run.runMax, run.runSum);
    pickTargetLogits(call, chunk, rows, width, c0, targets, ignoreIndex, run.picked);
  }
  finishLoss(call, rows, run.runMax, run.runSum, run.picked, targets, ignoreIndex, loss.ptr, lse.ptr);
  return [loss.info(), lse.info()];
});

/** Per chunk: dlogits = (softmax − onehot)·dloss, dhidden += dlogits·W_chunk, dW_chunk = dlogitsᵀ·hidden. */
const linearCrossEntropyGrad = wasmKernel((call, [dloss, hidden, weight, targets, lse], attrs) => {
  const [rows, dim] = hidden.shape;
  const vocab = weight.shape[0];
  const ignoreIndex = attrs.ignoreIndex as number;
  const chunkSize = attrs.chunkSize as number;
  checkChunkSize('linearCrossEntropyBackward', chunkSize);
  checkIndices(call, targets, vocab, 'linearCrossEntropyBackward', ignoreIndex);
  const h = call.f32(hidden);
  const w = call.f32(weight);
  const lseP = call.f32(lse);
  const dl = call.f32(dloss);
  const dh = call.out(hidden.shape, hidden.dtype, true);
  const dw = attrs.weightGrad === false ? null : call.out(weight.shape, weight.dtype);
  const chunk = call.tempF32(rows * Math.min(chunkSize, vocab));
  for (let c0 = 0; c0 < vocab; c0 += chunkSize) {
    const width = Math.min(chunkSize, vocab - c0);
    chunkLogits(call, h, w, rows, dim, c0, width, chunk);
    call.k.softmaxXentGrad(chunk, lseP, call.ptr(targets), dl, chunk, rows, width, width, c0, ignoreIndex);
    gemm(call, rows, dim, width, chunk, false, w + c0 * dim * 4, false, dh.ptr, dim, true);
    if (dw) gemm(call, width, dim, rows, chunk, true, h, false, dw.ptr + c0 * dim * 4, dim, false);
  }
  return dw ? [dh.info(), dw.info()] : [dh.info()];
});

export function lossKernels(): Record<string, KernelFunc> {
  return { crossEntropy, crossEntropyGrad, linearCrossEntropy, linearCrossEntropyGrad };
}
