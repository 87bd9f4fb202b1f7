import type { KernelFunc, TensorInfo } from '@mamba-ts/tensor';
import { bytesPerElement, returnedGradInputs, returnedGradNames, sizeOf } from '@mamba-ts/tensor';
import { wasmKernel, type Call } from './call.js';

const lastDim = (t: TensorInfo): number => t.shape[t.shape.length - 1];

function named(inputs: readonly TensorInfo[], names: readonly string[]): Record<string, TensorInfo | undefined> {
  const out: Record<string, TensorInfo | undefined> = {};
  names.forEach((n, i) => (out[n] = inputs[i]));
  return out;
}

/** Checks integer ids/targets in wasm memory against [0, limit), as the cpu reference does. */
function checkIndices(call: Call, info: TensorInfo, limit: number, what: string, ignore?: number): void {
  const base = call.ptr(info) >> 2;
  const view = call.be.i32;
  for (let i = 0, n = sizeOf(info.shape); i < n; i++) {
    const v = view[base + i];
    if (v === ignore) continue;
    if (v < 0 || v >= limit) {
      if (ignore === undefined) throw new Error(`${what}: ids[${i}] = ${v} is outside the vocabulary [0, ${limit}) (vocabulary size ${limit}).`);
      throw new Error(`${what}: targets[${i}] = ${v} is outside the vocabulary [0, ${limit}) and is not ignoreIndex (${ignore}).`);
    }
  }
}

// ---- normalisation ----

const rmsNorm = wasmKernel((call, [x, w], attrs) => {
  const cols = lastDim(x);
  const rows = sizeOf(x.shape) / cols;
  const y = call.out(x.shape, x.dtype);
  call.k.rmsNormForward(call.f32(x), call.f32(w), y.ptr, rows, cols, attrs.eps as number);
  return [y.info()];
});

/** Where the kernel writes a weight's gradient: a new output, or with `attrs.weightGrad` false (frozen weights) scratch
 *  that nobody reads (the wasm kernels always compute it). */
function weightGradPtr(call: Call, w: TensorInfo, attrs: Record<string, unknown>): { ptr: number; info?: () => TensorInfo } {
  return attrs.weightGrad === false ? { ptr: call.tempF32(sizeOf(w.shape), true) } : call.out(w.shape, w.dtype, true);
}

const rmsNormGrad = wasmKernel((call, [dy, x, w], attrs) => {
  const cols = lastDim(x);
  const rows = sizeOf(x.shape) / cols;
  const dx = call.out(x.shape, x.dtype);
  const dw = weightGradPtr(call, w, attrs);
  call.k.rmsNormBackward(call.f32(x), call.f32(w), call.f32(dy), dx.ptr, dw.ptr, rows, cols, attrs.eps as number);
  return dw.info ? [dx.info(), dw.info()] : [dx.info()];
});

const layerNorm = wasmKernel((call, [x, w, b], attrs) => {
  const cols = lastDim(x);
  const y = call.out(x.shape, x.dtype);
  call.k.layerNormForward(call.f32(x), call.f32(w), call.f32(b), y.ptr, sizeOf(x.shape) / cols, cols, attrs.eps as number);
  return [y.info()];
});

const layerNormGrad = wasmKernel((call, [dy, x, w, b], attrs) => {
  const cols = lastDim(x);
  const dx = call.out(x.shape, x.dtype);
  const dw = weightGradPtr(call, w, attrs);
  const db = weightGradPtr(call, b, attrs);
  call.k.layerNormBackward(call.f32(x), call.f32(w), call.f32(dy), dx.ptr, dw.ptr, db.ptr, sizeOf(x.shape) / cols, cols, attrs.eps as number);
  return dw.info && db.info ? [dx.info(), dw.info(), db.info()] : [dx.info()];
});

// ---- embedding ----

const embedding = wasmKernel((call, [table, ids]) => {
  const [vocab, dim] = table.shape;
  checkIndices(call, ids, vocab, 'embeddingForward');
  const count = sizeOf(ids.shape);
  const out = call.raw([...ids.shape, dim], table.dtype);
  call.k.gatherRows(call.ptr(table), call.ptr(ids), count, dim * bytesPerElement(table.dtype), out.ptr);
  return [out.info];
});

const embeddingGrad = wasmKernel((call, [dout, ids], attrs) => {
  const vocab = attrs.vocab as number;
  const dim = lastDim(dout);
  checkIndices(call, ids, vocab, 'embeddingBackward');
  const dtable = call.out([vocab, dim], attrs.dtype as TensorInfo['dtype'], true);
  call.k.scatterAddRows(call.f32(dout), call.ptr(ids), sizeOf(ids.shape), dim, dtable.ptr);
  return [dtable.info()];
});

// ---- causal conv1d ----

/** Copies float32 rows of `cols` into rows of `stride` (zero padding on the right); the identity when equal. */
function padRows(call: Call, src: number, rows: number, cols: number, stride: number): number {
  if (cols === stride) return src;
  const dst = call.tempF32(rows * stride, true);
  call.k.stridedCopy(src, dst, 4, 2, call.params([rows, cols, cols, 1, stride, 1, 0, 0]));
  return dst;
}

function unpadRows(call: Call, src: number, dst: number, rows: number, cols: number, stride: number): void {
  if (rows * cols === 0) return;
  call.k.stridedCopy(src, dst, 4, 2, call.params([rows, cols, stride, 1, cols, 1, 0, 0]));
}

/** Prepared conv operands with channels padded to E4 (a multiple of 4). */
function convOperands(call: Call, inputs: readonly TensorInfo[], attrs: Record<string, unknown>) {
  const n = named(inputs, attrs.names as string[]);
  const x = n.x!;
  const [B, L, E] = x.shape;
  const W = n.weight!.shape[1];
  const E4 = Math.ceil(E / 4) * 4;
  const xp = padRows(call, call.f32(x), B * L, E, E4);
  let state = 0;
  if (n.initialState) {
    // (B, E, W−1) → (B, E4, W−1): whole rows of W−1 values per channel, padded channels are zero.
    const s = call.f32(n.initialState);
    state = call.tempF32(B * E4 * (W - 1), true);
    if (W > 1) call.k.stridedCopy(s, state, 4, 2, call.params([B, E * (W - 1), E * (W - 1), 1, E4 * (W - 1), 1, 0, 0]));
  }
  const xpad = call.tempF32(B * (L + W - 1) * E4);
  call.k.convPad(xp, state, xpad, B, L, E4, W);
  const wTight = call.tempF32(W * E);
  call.k.transpose2d(call.f32(n.weight!), wTight, E, W);
  const wT = padRows(call, wTight, W, E, E4);
  const bias = n.bias ? padRows(call, call.f32(n.bias), 1, E, E4) : 0;
  return { n, x, B, L, E, E4, W, xpad, wT, bias, silu: Boolean(attrs.silu) };
}

const causalConv1d = wasmKernel((call, inputs, attrs) => {
  const o = convOperands(call, inputs, attrs);
  const y = call.out(o.x.shape, o.x.dtype);
  const y4 = o.E === o.E4 ? y.ptr : call.tempF32(o.B * o.L * o.E4);
  call.k.convForward(o.xpad, o.wT, o.bias, y4, o.B, o.L, o.E4, o.W, o.silu);
  if (y4 !== y.ptr) unpadRows(call, y4, y.ptr, o.B * o.L, o.E, o.E4);
  return [y.info()];
});

const causalConv1dGrad = wasmKernel((call, [dy, ...inputs], attrs) => {
  const o = convOperands(call, inputs, attrs);
  const { B, L, E, E4, W } = o;
  const dy4 = padRows(call, call.f32(dy), B * L, E, E4);
  const dxpad = call.tempF32(B * (L + W - 1) * E4, true);
  const dwT = call.tempF32(W * E4, true);
  const dbias4 = o.bias ? call.tempF32(E4, true) : 0;
  call.k.convBackward(o.xpad, o.wT, o.bias, dy4, dxpad, dwT, dbias4, B, L, E4, W, o.silu);
  // Unpad: dx (B, L, E4) and the initial state's gradient (B, E4, W−1).
  const dx4 = call.tempF32(B * L * E4);
  const dstate4 = o.n.initialState ? call.tempF32(B * E4 * Math.max(W - 1, 1)) : 0;
  call.k.convUnpad(dxpad, dx4, dstate4, B, L, E4, W);
  const grads: Record<string, TensorInfo> = {};
  const dx = call.out(o.x.shape, o.x.dtype);
  unpadRows(call, dx4, dx.ptr, B * L, E, E4);
  grads.x = dx.info();
  const weight = o.n.weight!;
  if (attrs.weightGrad !== false) {
    const dw = call.out(weight.shape, weight.dtype);
    const dwTight = call.tempF32(W * E);
    unpadRows(call, dwT, dwTight, W, E, E4);
    call.k.transpose2d(dwTight, dw.ptr, W, E);
    grads.weight = dw.info();
  }
  if (o.n.bias && attrs.weightGrad !== false) {
    const db = call.out(o.n.bias.shape, o.n.bias.dtype);
    call.be.u8.copyWithin(db.ptr, dbias4, dbias4 + E * 4);
    grads.bias = db.info();
  }
  if (o.n.initialState) {
    const s = o.n.initialState;
    const ds = call.out(s.shape, s.dtype);
    if (W > 1) call.k.stridedCopy(dstate4, ds.ptr, 4, 2, call.params([B, E * (W - 1), E4 * (W - 1), 1, E * (W - 1), 1, 0, 0]));
    grads.initialState = ds.info();
  }
  return returnedGradNames('causalConv1dGrad', attrs).map((name) => grads[name]);
});

// ---- selective scan ----

function scanOperands(call: Call, inputs: readonly TensorInfo[], attrs: Record<string, unknown>) {
  const n = named(inputs, attrs.names as string[]);
  const [B, L, E] = n.u!.shape;
  const N = n.A!.shape[1];
  return {
    n, B, L, E, N,
    ptrs: [
      call.f32(n.u!), call.f32(n.delta!), call.f32(n.A!), call.f32(n.B!), call.f32(n.C!),
      call.optF32(n.D), call.optF32(n.z), call.optF32(n.deltaBias), call.optF32(n.h0),
    ],
    softplus: attrs.deltaSoftplus ? 1 : 0,
  };
}

const selectiveScan = wasmKernel((call, inputs, attrs) => {
  const s = scanOperands(call, inputs, attrs);
  const y = call.out(s.n.u!.shape, s.n.u!.dtype);
  const hLast = call.out([s.B, s.E, s.N], 'f32');
  const scratch = call.temp(2 * s.N * 16);
  call.k.scanForward(...s.ptrs, y.ptr, hLast.ptr, s.B, s.L, s.E, s.N, s.softplus, scratch);
  return [y.info(), hLast.info()];
});

const selectiveScanGrad = wasmKernel((call, allInputs, attrs) => {
  const hasDhLast = Boolean(attrs.hasDhLast);
  const dy = allInputs[0];
  const dhLast = hasDhLast ? allInputs[1] : undefined;
  const inputs = allInputs.slice(hasDhLast ? 2 : 1);
  const s = scanOperands(call, inputs, attrs);
  const { B, L, E, N, n } = s;
  const ble = B * L * E;
  const du = call.tempF32(ble);
  const ddelta = call.tempF32(ble);
  const dA = call.tempF32(E * N, true);
  const dB = call.tempF32(B * L * N, true);
  const dC = call.tempF32(B * L * N, true);
  const dD = n.D ? call.tempF32(E, true) : 0;
  const dz = n.z ? call.tempF32(ble) : 0;
  const dbias = n.deltaBias ? call.tempF32(E, true) : 0;
  const dh0 = n.h0 ? call.tempF32(B * E * N) : 0;
  const scratch = call.temp((L + 4) * N * 16);
  call.k.scanBackward(
    ...s.ptrs, call.f32(dy), dhLast ? call.f32(dhLast) : 0, du, ddelta, dA, dB, dC, dD, dz, dbias, dh0, B, L, E, N, s.softplus, scratch,
  );
  const byName: Record<string, number> = { u: du, delta: ddelta, A: dA, B: dB, C: dC, D: dD, z: dz, deltaBias: dbias, h0: dh0 };
  return returnedGradInputs('selectiveScanGrad', inputs, attrs).map(({ name, input }) => {
    const out = call.out(input.shape, input.dtype);
    const src = byName[name];
    call.be.u8.copyWithin(out.ptr, src, src + sizeOf(input.shape) * 4);
    return out.info();
  });
});

/** One recurrent step: the scan with L = 1, the state as h0 and the new state as hLast. */
const selectiveStateUpdate = wasmKernel((call, inputs, attrs) => {
  const n = named(inputs, attrs.names as string[]);
  const [B, E, N] = n.state!.shape;
  const y = call.out(n.x!.shape, n.x!.dtype);
  const stateOut = call.out(n.state!.shape, 'f32');
  const scratch = call.temp(2 * N * 16);
  call.k.scanForward(
    call.f32(n.x!), call.f32(n.delta!), call.f32(n.A!), call.f32(n.B!), call.f32(n.C!), call.optF32(n.D), call.optF32(n.z),
    call.optF32(n.deltaBias), call.f32(n.state!), y.ptr, stateOut.ptr, B, 1, E, N, attrs.deltaSoftplus ? 1 : 0, scratch,
  );
  return [y.info(), stateOut.info()];
});

export function fusedKernels(): Record<string, KernelFunc> {
  return {
    rmsNorm, rmsNormGrad, layerNorm, layerNormGrad, embedding, embeddingGrad, causalConv1d, causalConv1dGrad,
    selectiveScan, selectiveScanGrad, selectiveStateUpdate,
  };
}

export { checkIndices };
