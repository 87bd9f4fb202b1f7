// GEMM algorithm choice on cuda for the GEMMs of a Mamba-130m training step at batch 8 × 1024 (M = 8192 tokens) and
// of greedy decoding (M = 1 and 64): for each shape, the time of the algorithm our cached plan uses (autotuned unless
// MAMBA_TS_CUDA_GEMM_TUNE=0), of every candidate cuBLASLt's heuristic offers (and the few-rows kernel and split TF32
// products where they fit), the best, and ours/best. A program, not a test: the readable table goes to stderr, the
// JSON to stdout.
//   node bench-gemm.mjs [f32] [bf16] [tf32] [--reps N]      (default: f32 bf16, 20 timed calls per candidate)
import { nativeAddon } from '../src/availability.js';
import { cudaStatus, isAvailable, unavailableReason } from '../src/index.js';
import type { NativeAddon } from '../src/native.js';

type GemmDType = 'f32' | 'f16' | 'bf16';
type CandidateKind = 'cublasLt' | 'fewRows' | 'splitTf32';
/** How the table marks candidates that are not cuBLASLt algorithms. */
const kindMark: Record<CandidateKind, string> = { cublasLt: '', fewRows: ' (few rows)', splitTf32: ' (split TF32)' };

/** Row-major C (M×N) = alpha·op(A)·op(B) + beta·C, as native/context.h's GemmSpec; A, B, C are device addresses. */
interface GemmCandidatesSpec {
  inType: GemmDType;
  outType?: GemmDType;
  transA?: boolean;
  transB?: boolean;
  M: number;
  N: number;
  K: number;
  beta?: number;
  A: number;
  B: number;
  C: number;
}

interface GemmCandidatesReport {
  /** The plan's profile label. */
  label: string;
  /** The plan's algorithm was chosen by timing (false: the heuristic's first). */
  tuned: boolean;
  /** Index in `candidates` of the plan's algorithm. */
  chosen: number;
  /** The heuristic's candidates in its order, then the few-rows kernel and split TF32 products where they fit; ms is
   *  Infinity where cuBLASLt refused one. */
  candidates: { kind: CandidateKind; ms: number; workspaceBytes: number; waves: number }[];
}

/** native/gemm_bench.cc's export (not part of NativeAddon: only this benchmark uses it). */
type BenchAddon = NativeAddon & {
  gemmCandidates(spec: GemmCandidatesSpec, options?: { warmup?: number; reps?: number }): GemmCandidatesReport;
};

interface GemmShape {
  name: string;
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  /** The LM head's GEMMs write f32 logits / gradients whatever the input dtype. */
  f32Out: boolean;
  beta: number;
  /** How many times one training step runs it. */
  perStep: number;
}

const tokens = 8 * 1024;
const [dModel, dInner, dtRank, dState, layers, vocab, vocabChunk] = [768, 1536, 48, 16, 24, 50280, 8192];

/** y = x·Wᵀ of nn.Linear (in → out) and its two gradients as the engine's matmul gradient computes them. */
function linearShapes(name: string, inF: number, outF: number): GemmShape[] {
  const base = { f32Out: false, beta: 0, perStep: layers };
  return [
    { ...base, name: `${name} fwd`, transA: false, transB: true, M: tokens, N: outF, K: inF },
    { ...base, name: `${name} dX`, transA: false, transB: false, M: tokens, N: inF, K: outF },
    { ...base, name: `${name} dW`, transA: true, transB: false, M: outF, N: inF, K: tokens },
  ];
}

/** linearCrossEntropy (native/kernels/loss.cu) per vocabulary chunk of width w: logits (forward, and again in the
 *  backward), dHidden += dLogits·W (accumulates: beta 1), dW = dLogitsᵀ·hidden. */
function lmHeadShapes(): GemmShape[] {
  const full = Math.floor(vocab / vocabChunk);
  const widths: [number, number][] = [[vocabChunk, full], [vocab - full * vocabChunk, 1]];
  return widths.flatMap(([w, count]) => [
    { name: `lm_head fwd w=${w}`, transA: false, transB: true, M: tokens, N: w, K: dModel, f32Out: true, beta: 0, perStep: 2 * count },
    { name: `lm_head dH w=${w}`, transA: false, transB: false, M: tokens, N: dModel, K: w, f32Out: true, beta: 1, perStep: count },
    { name: `lm_head dW w=${w}`, transA: true, transB: false, M: w, N: dModel, K: tokens, f32Out: true, beta: 0, perStep: count },
  ]);
}

/** Greedy decoding, one token per sequence (batch 1 and 64): the projections' forward products and the LM head. They
 *  are not part of a training step (perStep 0). */
function decodeShapes(): GemmShape[] {
  const projections: [string, number, number][] = [['in_proj', dModel, 2 * dInner], ['x_proj', dInner, dtRank + 2 * dState],
    ['out_proj', dInner, dModel], ['lm_head', dModel, vocab]];
  return [1, 64].flatMap((M) => projections.map(([name, inF, outF]) =>
    ({ name: `decode b${M} ${name}`, transA: false, transB: true, M, N: outF, K: inF, f32Out: false, beta: 0, perStep: 0 })));
}

const shapes: GemmShape[] = [
  ...linearShapes('in_proj', dModel, 2 * dInner),
  ...linearShapes('x_proj', dInner, dtRank + 2 * dState),
  ...linearShapes('dt_proj', dtRank, dInner),
  ...linearShapes('out_proj', dInner, dModel),
  ...lmHeadShapes(),
  ...decodeShapes(),
];

/** A device buffer holding `elements` values of `dtype`, filled with a repeated block of uniform [-1, 1) values. */
async function randomBuffer(addon: NativeAddon, elements: number, dtype: 'f32' | 'bf16', seed: number): Promise<number> {
  const bytesPer = dtype === 'f32' ? 4 : 2;
  const address = addon.malloc(elements * bytesPer);
  const blockElements = 1 << 20;
  let state = seed >>> 0;
  const values = new Float32Array(blockElements).map(() => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
  const block = dtype === 'f32' ? new Uint8Array(values.buffer) : bf16Bytes(values);
  const total = elements * bytesPer;
  for (let offset = 0; offset < total; offset += block.byteLength) {
    addon.upload(address + offset, block.subarray(0, Math.min(block.byteLength, total - offset)));
  }
  return address;
}

/** bf16 bit patterns (f32 truncated to its top 16 bits) as bytes. */
function bf16Bytes(values: Float32Array): Uint8Array {
  const bits = new Uint32Array(values.buffer);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = bits[i] >>> 16;
  return new Uint8Array(out.buffer);
}

interface Row {
  mode: string;
  shape: string;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  inType: GemmDType;
  outType: GemmDType;
  perStep: number;
  label: string;
  tuned: boolean;
  chosen: number;
  oursMs: number;
  heuristicFirstMs: number;
  bestMs: number;
  best: number;
  oursOverBest: number;
  heuristicFirstOverBest: number;
  tflops: number;
  candidatesMs: (number | null)[];
  candidateKinds: CandidateKind[];
}

async function main(): Promise<void> {
  if (!isAvailable()) {
    console.log(JSON.stringify({ skipped: unavailableReason() }));
    return;
  }
  const args = process.argv.slice(2);
  const repsAt = args.indexOf('--reps');
  const reps = repsAt >= 0 ? Number(args[repsAt + 1]) : 20;
  if (!Number.isInteger(reps) || reps < 1) throw new Error(`bench/gemm: --reps must be a positive integer, got '${args[repsAt + 1]}'.`);
  const modeArgs = args.filter((a, i) => !a.startsWith('--') && !(repsAt >= 0 && i === repsAt + 1));
  for (const m of modeArgs) {
    if (!['f32', 'bf16', 'tf32'].includes(m)) throw new Error(`bench/gemm: unknown mode '${m}'; use f32, bf16 and/or tf32.`);
  }
  const modes = modeArgs.length > 0 ? modeArgs : ['f32', 'bf16'];
  const addon = nativeAddon() as BenchAddon;
  if (typeof addon.gemmCandidates !== 'function') {
    throw new Error('bench/gemm: this addon has no gemmCandidates(); rebuild it with native/gemm_bench.cc registered in addon.cc.');
  }

  const rows: Row[] = [];
  const elements = (pick: (s: GemmShape) => number) => Math.max(...shapes.map(pick));
  for (const mode of modes) {
    const inType = mode === 'bf16' ? 'bf16' : 'f32';
    addon.setOption('tf32', mode === 'tf32' ? 1 : 0);
    // C is f32: the LM head writes f32 even from bf16 inputs.
    const A = await randomBuffer(addon, elements((s) => s.M * s.K), inType, 1);
    const B = await randomBuffer(addon, elements((s) => s.K * s.N), inType, 2);
    const C = await randomBuffer(addon, elements((s) => s.M * s.N), 'f32', 3);
    await addon.sync();
    for (const s of shapes) {
      const outType: GemmDType = s.f32Out ? 'f32' : inType;
      const r = addon.gemmCandidates(
        { inType, outType, transA: s.transA, transB: s.transB, M: s.M, N: s.N, K: s.K, beta: s.beta, A, B, C },
        { warmup: 3, reps },
      );
      const ms = r.candidates.map((c) => c.ms);
      const best = ms.reduce((b, v, i) => (v < ms[b] ? i : b), 0);
      const ours = ms[r.chosen] ?? Number.NaN;
      rows.push({
        mode, shape: s.name, M: s.M, N: s.N, K: s.K, transA: s.transA, transB: s.transB, inType, outType, perStep: s.perStep,
        label: r.label, tuned: r.tuned, chosen: r.chosen, oursMs: ours, heuristicFirstMs: ms[0], bestMs: ms[best], best,
        oursOverBest: ours / ms[best], heuristicFirstOverBest: ms[0] / ms[best],
        tflops: (2 * s.M * s.N * s.K) / (ours * 1e9), candidatesMs: ms.map((v) => (Number.isFinite(v) ? v : null)),
        candidateKinds: r.candidates.map((c) => c.kind),
      });
    }
    for (const address of [A, B, C]) addon.free(address);
  }
  addon.setOption('tf32', 0);

  const summary = modes.map((mode) => {
    const own = rows.filter((r) => r.mode === mode);
    const perStep = (pick: (r: Row) => number) => +own.reduce((t, r) => t + r.perStep * pick(r), 0).toFixed(3);
    return {
      mode,
      worstOursOverBest: +Math.max(...own.map((r) => r.oursOverBest)).toFixed(3),
      shapesOver10Percent: own.filter((r) => r.oursOverBest > 1.1).map((r) => r.shape),
      stepGemmMs: { ours: perStep((r) => r.oursMs), heuristicFirst: perStep((r) => r.heuristicFirstMs), best: perStep((r) => r.bestMs) },
    };
  });
  console.error(formatTable(rows));
  console.error(summary.map((s) => `${s.mode}: GEMM ms per step ours ${s.stepGemmMs.ours}, heuristic #1 ${s.stepGemmMs.heuristicFirst}, ` +
    `best ${s.stepGemmMs.best}; worst ours/best ${s.worstOursOverBest}; over 10%: ${s.shapesOver10Percent.join(', ') || 'none'}`).join('\n'));
  const status = cudaStatus();
  const round = (v: number) => (Number.isFinite(v) ? +v.toFixed(4) : null);
  console.log(JSON.stringify({
    device: status.device?.name, cublasLt: status.init?.cublasLtVersion, tokens, reps,
    gemmTune: process.env.MAMBA_TS_CUDA_GEMM_TUNE ?? 'default (on)',
    summary,
    results: rows.map((r) => ({ ...r, oursMs: round(r.oursMs), heuristicFirstMs: round(r.heuristicFirstMs), bestMs: round(r.bestMs),
      oursOverBest: round(r.oursOverBest), heuristicFirstOverBest: round(r.heuristicFirstOverBest), tflops: round(r.tflops),
      candidatesMs: r.candidatesMs.map((v) => (v === null ? null : round(v))) })),
  }, null, 1));
}

function formatTable(rows: Row[]): string {
  const header = ['mode', 'shape', 'M×N×K', 'ours ms', 'heur#1 ms', 'best ms', 'ours/best', 'TFLOP/s', 'chosen', 'candidates ms'];
  const body = rows.map((r) => [
    r.mode, r.shape, `${r.M}×${r.N}×${r.K}${r.transA ? ' tA' : ''}${r.transB ? ' tB' : ''}`, r.oursMs.toFixed(4),
    r.heuristicFirstMs.toFixed(4), r.bestMs.toFixed(4), r.oursOverBest.toFixed(3), r.tflops.toFixed(1),
    `#${r.chosen}${kindMark[r.candidateKinds[r.chosen]] ?? ''}${r.tuned ? ' tuned' : ''}`,
    r.candidatesMs.map((v, i) => (v === null ? '-' : v.toFixed(3)) + kindMark[r.candidateKinds[i]]).join(' '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  return [header, ...body].map((cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ')).join('\n');
}

await main();
