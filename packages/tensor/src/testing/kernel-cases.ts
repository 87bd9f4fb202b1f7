import type { DType } from '../dtype.js';
import { engine } from '../engine.js';
import { tensor } from '../ops/core.js';
import type { Tensor } from '../tensor.js';
import type { Gen } from './gen.js';

export type FloatDType = 'f32' | 'bf16' | 'f16';

/** One call of a kernel: inputs (on cpu) and attrs. */
export interface KernelVariant {
  label: string;
  inputs: Tensor[];
  attrs: Record<string, unknown>;
}

/**
 * How to exercise one kernel. `float` cases run once per float dtype (inputs that the contract keeps in f32, such
 * as scan states, stay f32); `once` cases cover their own dtypes.
 */
export interface KernelCase {
  dtypes: 'float' | 'once';
  variants(dtype: FloatDType, g: Gen): KernelVariant[];
}

const v = (label: string, inputs: Tensor[], attrs: Record<string, unknown> = {}): KernelVariant => ({ label, inputs, attrs });

/** Shapes with odd sizes (not multiples of 4) and size-1 dims. */
const SHAPES: number[][] = [[7], [3, 5], [2, 1, 9], [1, 13], [5, 3, 3]];

/** Positive inputs away from 0 for log, sqrt, reciprocal…; wider ranges for the rest. */
const UNARY_DOMAIN: Record<string, [number, number]> = {
  log: [0.2, 3], sqrt: [0.2, 3], rsqrt: [0.2, 3], reciprocal: [0.3, 3],
  exp: [-4, 4], softplus: [-25, 25], sigmoid: [-9, 9], silu: [-9, 9], tanh: [-4, 4], gelu: [-5, 5], normalCdf: [-5, 5],
};

export const UNARY_KERNELS = [
  'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'square', 'reciprocal', 'sigmoid', 'silu', 'softplus', 'tanh', 'gelu',
  'relu', 'normalCdf', 'step', 'sign',
];

export const BINARY_KERNELS = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow', 'greater', 'equal'];

function unaryCase(name: string): KernelCase {
  const [lo, hi] = UNARY_DOMAIN[name] ?? [-3, 3];
  return {
    dtypes: 'float',
    variants: (dtype, g) => [...SHAPES, [3, 40]].map((s) => v(`[${s}]`, [g.uniform(s, dtype, lo, hi)])),
  };
}

/** Pairs of broadcastable shapes. */
const BINARY_SHAPES: [number[], number[]][] = [
  [[3, 5], [3, 5]],
  [[2, 1, 9], [7, 1]],
  [[3, 1, 5], [1, 6, 5]],
  [[], [3, 7]],
  [[5, 3], []],
  [[13], [1]],
  [[2, 3, 1], [3, 5]],
  // Longer runs: whole 8-element packs, a ragged tail (111), a bias row of 24, a column spread over 16.
  [[3, 37], [3, 37]],
  [[4, 24], [24]],
  [[6, 1], [6, 16]],
];

function binaryCase(name: string): KernelCase {
  const positive = name === 'pow' || name === 'div';
  return {
    dtypes: 'float',
    variants: (dtype, g) => {
      const out = BINARY_SHAPES.map(([sa, sb]) => {
        if (name === 'equal' || name === 'greater') return v(`[${sa}]·[${sb}]`, [g.ints(sa, -2, 3, dtype), g.ints(sb, -2, 3, dtype)]);
        const a = positive ? g.uniform(sa, dtype, 0.5, 2) : g.normal(sa, dtype);
        const b = name === 'pow' ? g.uniform(sb, dtype, -1.5, 1.5) : positive ? g.uniform(sb, dtype, 0.5, 2) : g.normal(sb, dtype);
        return v(`[${sa}]·[${sb}]`, [a, b]);
      });
      // Integer inputs: the loss uses equal(targets, ignoreIndex) on i32, and add/mul must keep i32.
      if (dtype === 'f32' && ['add', 'sub', 'mul', 'equal', 'greater', 'maximum', 'minimum'].includes(name)) {
        out.push(v('i32 [3,5]·[5]', [g.ints([3, 5], -3, 4), g.ints([5], -3, 4)]));
      }
      return out;
    },
  };
}

function reduceCase(): KernelCase {
  const plans: [number[], number[], boolean][] = [
    [[7], [0], false],
    [[3, 5], [1], false],
    [[3, 5], [0], true],
    [[2, 3, 5], [1, 2], false],
    [[2, 3, 5], [0, 1], true],
    [[5, 1, 3], [1], false],
    [[3, 9, 5], [0, 1, 2], false],
  ];
  return {
    dtypes: 'float',
    variants: (dtype, g) => plans.map(([s, axes, keepDims]) => v(`[${s}] axes [${axes}]${keepDims ? ' keep' : ''}`, [g.normal(s, dtype)], { axes, keepDims })),
  };
}

function matmulCase(): KernelCase {
  const plans: [string, number[], number[], boolean, boolean][] = [
    ['5x7·7x9', [5, 7], [7, 9], false, false],
    ['transA', [7, 5], [7, 9], true, false],
    ['transB', [5, 7], [9, 7], false, true],
    ['transA transB', [7, 5], [9, 7], true, true],
    ['1x1·1x1', [1, 1], [1, 1], false, false],
    ['1xK·KxN', [1, 11], [11, 6], false, false],
    ['batched broadcast', [2, 3, 5, 7], [3, 7, 6], false, false],
    ['batch-1 broadcast transB', [1, 5, 7], [3, 9, 7], false, true],
    // Larger shapes cross the blocking sizes of fast GEMMs (k blocks of 256 or 512, m blocks of 64 or 128, n > 1024).
    ['blocked 67x261·261x19', [67, 261], [261, 19], false, false],
    ['k-blocked transB 9x601·(13x601)ᵀ', [9, 601], [13, 601], false, true],
    ['k-blocked transA (601x21)ᵀ·601x35', [601, 21], [601, 35], true, false],
    ['n-blocked 5x9·9x1031', [5, 9], [9, 1031], false, false],
  ];
  return {
    dtypes: 'float',
    variants: (dtype, g) => plans.map(([label, sa, sb, transA, transB]) => v(label, [g.normal(sa, dtype), g.normal(sb, dtype)], { transA, transB })),
  };
}

function castCase(): KernelCase {
  const special = [0, -0, 1, -1, 0.1, 65504, 65519, 65520, 1e5, -1e5, 6e-8, 3e-8, 1e-40, 3.3895314e38, 3.4e38, NaN, Infinity, -Infinity, 1.00390625, 1.01171875];
  return {
    dtypes: 'once',
    variants: (_, g) => {
      const out: KernelVariant[] = [];
      const floats: DType[] = ['f32', 'bf16', 'f16'];
      for (const from of floats) {
        for (const to of [...floats, 'i32'] as DType[]) {
          if (from === to) continue;
          out.push(v(`${from}→${to} random`, [g.normal([3, 7], from, 50)], { dtype: to }));
        }
      }
      out.push(v('f32→bf16 special values', [tensor(special, [special.length], 'f32')], { dtype: 'bf16' }));
      out.push(v('f32→f16 special values', [tensor(special, [special.length], 'f32')], { dtype: 'f16' }));
      out.push(v('f32→bf16 [5,40]', [g.normal([5, 40], 'f32', 50)], { dtype: 'bf16' }));
      out.push(v('bf16→f32 [5,40]', [g.normal([5, 40], 'bf16', 50)], { dtype: 'f32' }));
      out.push(v('i32→f32', [g.ints([2, 7], -1000, 1000)], { dtype: 'f32' }));
      out.push(v('i32→bf16', [g.ints([2, 7], -1000, 1000)], { dtype: 'bf16' }));
      out.push(v('i32→i32', [g.ints([2, 7], -1000, 1000)], { dtype: 'i32' }));
      return out;
    },
  };
}

/**
 * RMSNorm rows for the cuda kernels' paths: teams of 32–256 threads per row holding it in 16-byte packs (cols a
 * multiple of 4 for f32, of 8 for halves; up to 8192 columns), several teams per block (row counts that leave some
 * teams idle), a generic kernel for other widths; 5000 rows make each team walk several rows.
 */
const RMS_NORM_WIDE: [number, number][] = [[5000, 12], [37, 768], [5, 768], [9, 1030], [7, 1536], [6, 2048], [3, 4099], [3, 8192]];
/** layerNorm shares the rmsNorm kernels. */
const LAYER_NORM_WIDE: readonly (readonly [number, number])[] = [[37, 768], [5, 768], [9, 1030], [2, 1024], [3, 8192]];

/** Each variant, then the same with `weightGrad: false` (frozen weights: only the other inputs' gradients). */
function withoutWeightGrad(variants: KernelVariant[]): KernelVariant[] {
  return variants.flatMap((variant) => [
    variant,
    { ...variant, label: `${variant.label}, no weight gradient`, attrs: { ...variant.attrs, weightGrad: false } },
  ]);
}

function convVariants(dtype: FloatDType, g: Gen, withDy: boolean): KernelVariant[] {
  const plans: [string, number, number, number, number, boolean, boolean, boolean][] = [
    // label, B, L, E, W, bias, initialState, silu
    ['plain', 1, 7, 5, 4, false, false, false],
    ['bias silu', 2, 9, 3, 4, true, false, true],
    ['bias state silu', 2, 5, 7, 4, true, true, true],
    ['state W3 L2 < W', 1, 2, 6, 3, false, true, false],
    ['W1', 2, 3, 5, 1, true, false, true],
    // The cuda kernels walk time in chunks of 4–8 steps (spans of whole chunks, 4 spans a block) and give a thread 1,
    // 2 or 4 channels (32 threads across): several spans and channel blocks, L not a multiple of the chunk, odd E (one
    // channel a thread), W < 4 (padded taps), W > 4 (the per-element kernels).
    ['tiles E70 bias state silu', 2, 150, 70, 4, true, true, true],
    ['tiles odd E W2 state', 1, 37, 9, 2, false, true, false],
    ['W3 L33 E66 bias silu', 3, 33, 66, 3, true, false, true],
    ['W6 bias state silu', 2, 11, 5, 6, true, true, true],
    // E a multiple of 4: the vector forms (forward 4 channels a thread, backward 2), several channel blocks (E136),
    // the span's tail chunk cut short (L45), padded taps with vectors (W2, W1).
    ['vector E136 bias state silu', 2, 45, 136, 4, true, true, true],
    ['vector E8 W2 state', 3, 21, 8, 2, false, true, false],
    ['vector E12 W1 bias silu', 1, 10, 12, 1, true, false, true],
    // The vector forms keep the next 7–16 steps' loads in flight (a ring): L below, at and just under multiples of
    // the ring's depth, with and without an initial state.
    ['ring E16 L30 bias state silu', 2, 30, 16, 4, true, true, true],
    ['ring E32 L14 state', 1, 14, 32, 4, false, true, false],
    ['ring E64 L63 W3 bias', 2, 63, 64, 3, true, false, true],
    ['ring E8 L47 W4 state', 1, 47, 8, 4, false, true, true],
  ];
  return plans.map(([label, B, L, E, W, bias, state, silu]) => {
    const names = ['x', 'weight'];
    const inputs = [g.normal([B, L, E], dtype), g.normal([E, W], dtype, 0.5)];
    if (bias) (names.push('bias'), inputs.push(g.normal([E], dtype, 0.5)));
    if (state) (names.push('initialState'), inputs.push(g.normal([B, E, W - 1], dtype)));
    if (withDy) inputs.unshift(g.normal([B, L, E], dtype));
    return v(label, inputs, { silu, names });
  });
}

interface ScanPlan {
  label: string;
  dims: [number, number, number, number];
  optional: ('D' | 'z' | 'deltaBias' | 'h0')[];
  deltaSoftplus: boolean;
}

const SCAN_PLANS: ScanPlan[] = [
  { label: 'minimal', dims: [1, 5, 3, 2], optional: [], deltaSoftplus: true },
  { label: 'all inputs', dims: [2, 7, 5, 3], optional: ['D', 'z', 'deltaBias', 'h0'], deltaSoftplus: true },
  { label: 'D z no softplus', dims: [1, 9, 6, 5], optional: ['D', 'z'], deltaSoftplus: false },
  { label: 'N16 E9 bias', dims: [1, 6, 9, 16], optional: ['D', 'deltaBias', 'z'], deltaSoftplus: true },
  { label: 'L1 h0', dims: [2, 1, 3, 1], optional: ['h0', 'D'], deltaSoftplus: true },
];

/** Scan inputs in kernel order; u, delta, B, C, z in `dtype`, A, D, deltaBias, h0 in f32 (the precision policy). */
function scanInputs(dtype: FloatDType, g: Gen, plan: ScanPlan): { inputs: Tensor[]; names: string[] } {
  const [Bt, L, E, N] = plan.dims;
  const names = ['u', 'delta', 'A', 'B', 'C'];
  const delta = plan.deltaSoftplus ? g.uniform([Bt, L, E], dtype, -3, 1) : g.uniform([Bt, L, E], dtype, 0.01, 0.6);
  const inputs = [g.normal([Bt, L, E], dtype), delta, g.uniform([E, N], 'f32', -2, -0.1), g.normal([Bt, L, N], dtype), g.normal([Bt, L, N], dtype)];
  const make: Record<string, () => Tensor> = {
    D: () => g.normal([E], 'f32'),
    z: () => g.normal([Bt, L, E], dtype),
    deltaBias: () => g.uniform([E], 'f32', -1, 0.5),
    h0: () => g.normal([Bt, E, N], 'f32'),
  };
  for (const name of plan.optional) (names.push(name), inputs.push(make[name]()));
  return { inputs, names };
}

function selectiveScanCase(grad: boolean): KernelCase {
  return {
    dtypes: 'float',
    variants: (dtype, g) =>
      SCAN_PLANS.flatMap((plan) => {
        const { inputs, names } = scanInputs(dtype, g, plan);
        const attrs = { names, deltaSoftplus: plan.deltaSoftplus };
        if (!grad) return [v(plan.label, inputs, attrs)];
        const [Bt, L, E, N] = plan.dims;
        const dy = g.normal([Bt, L, E], dtype);
        const withState = v(`${plan.label} with dhLast`, [dy, g.normal([Bt, E, N], 'f32'), ...inputs], { ...attrs, hasDhLast: true });
        return withoutWeightGrad([v(plan.label, [dy, ...inputs], { ...attrs, hasDhLast: false }), withState]);
      }),
  };
}

function stateUpdateCase(): KernelCase {
  const plans: [string, number, number, number, string[], boolean][] = [
    ['minimal', 1, 5, 3, [], true],
    ['all', 2, 7, 16, ['D', 'z', 'deltaBias'], true],
    ['no softplus', 3, 3, 5, ['D'], false],
  ];
  return {
    dtypes: 'float',
    variants: (dtype, g) =>
      plans.map(([label, Bt, E, N, optional, deltaSoftplus]) => {
        const names = ['state', 'x', 'delta', 'A', 'B', 'C'];
        const delta = deltaSoftplus ? g.uniform([Bt, E], dtype, -3, 1) : g.uniform([Bt, E], dtype, 0.01, 0.6);
        const inputs = [g.normal([Bt, E, N], 'f32'), g.normal([Bt, E], dtype), delta, g.uniform([E, N], 'f32', -2, -0.1), g.normal([Bt, N], dtype), g.normal([Bt, N], dtype)];
        const make: Record<string, () => Tensor> = { D: () => g.normal([E], 'f32'), z: () => g.normal([Bt, E], dtype), deltaBias: () => g.uniform([E], 'f32', -1, 0.5) };
        for (const name of optional) (names.push(name), inputs.push(make[name]()));
        return v(label, inputs, { names, deltaSoftplus });
      }),
  };
}

/** The decode-step kernels (inference only: no grad cases). Odd sizes; optional inputs present and absent. */
function residualRmsNormCase(): KernelCase {
  // label, shape, residual dtype ('*' = the run's dtype), update dtype (null = absent), weight dtype, outDtype
  const plans: [string, number[], string, string | null, string, string][] = [
    ['f32 stream, update and output in dtype', [3, 37], 'f32', '*', 'f32', '*'],
    ['all in dtype, leading dims', [2, 3, 13], '*', '*', '*', '*'],
    ['no update, f32 output', [1, 29], '*', null, 'f32', 'f32'],
    ['f32 update into a dtype stream', [5, 7], '*', 'f32', '*', 'f32'],
    ['rows wider than one pass of a block', [2, 4100], 'f32', '*', 'f32', '*'],
  ];
  return {
    dtypes: 'float',
    variants: (dtype, g) =>
      plans.map(([label, shape, resType, updType, wType, outType]) => {
        const dt = (t: string): DType => (t === '*' ? dtype : (t as DType));
        const D = shape[shape.length - 1];
        const names = ['residual'];
        const inputs = [g.normal(shape, dt(resType), 2)];
        if (updType) (names.push('update'), inputs.push(g.normal(shape, dt(updType))));
        names.push('weight');
        inputs.push(g.uniform([D], dt(wType), 0.5, 1.5));
        return v(label, inputs, { names, eps: 1e-5, outDtype: dt(outType) });
      }),
  };
}

function convStepCase(): KernelCase {
  // label, B, E, C (xz columns), W, bias, silu, convState and weight/bias in f32 (else in the run's dtype)
  const plans: [string, number, number, number, number, boolean, boolean, boolean][] = [
    ['W4 bias silu, C > 2E', 2, 7, 17, 4, true, true, false],
    ['W2 no bias no silu, C = E', 3, 5, 5, 2, false, false, false],
    ['W4 f32 state and weights', 1, 9, 19, 4, true, true, true],
    ['W3 no bias silu', 2, 6, 13, 3, false, true, false],
    ['W1 (empty state)', 2, 3, 6, 1, true, true, false],
    ['E130 (channels past one block)', 3, 130, 261, 4, true, true, true],
  ];
  return {
    dtypes: 'float',
    variants: (dtype, g) =>
      plans.map(([label, B, E, C, W, bias, silu, f32Params]) => {
        const pt: DType = f32Params ? 'f32' : dtype;
        const names = ['xz', 'convState', 'weight'];
        const inputs = [g.normal([B, C], dtype), g.normal([B, E, W - 1], pt), g.normal([E, W], pt, 0.5)];
        if (bias) (names.push('bias'), inputs.push(g.normal([E], pt, 0.5)));
        return v(label, inputs, { names, silu });
      }),
  };
}

interface SsmStepPlan {
  label: string;
  /** B, E, N, R, extra xz columns past 2E */
  dims: [number, number, number, number, number];
  optional: ('dtBias' | 'D')[];
  deltaSoftplus: boolean;
  /** dtWeight, dtBias, ALog and D in f32 (the precision policy) rather than the run's dtype. */
  f32Params: boolean;
  /** Range of dtBias (large values cross softplus's threshold of 20). */
  biasRange?: [number, number];
}

const SSM_STEP_PLANS: SsmStepPlan[] = [
  { label: 'minimal, C = 2E', dims: [1, 5, 3, 2, 0], optional: [], deltaSoftplus: true, f32Params: true },
  { label: 'all inputs N16 R5', dims: [2, 7, 16, 5, 3], optional: ['dtBias', 'D'], deltaSoftplus: true, f32Params: true },
  { label: 'params in dtype', dims: [3, 6, 5, 3, 1], optional: ['dtBias', 'D'], deltaSoftplus: true, f32Params: false },
  { label: 'no softplus', dims: [2, 4, 4, 7, 2], optional: ['D', 'dtBias'], deltaSoftplus: false, f32Params: true, biasRange: [0.2, 0.6] },
  { label: 'large delta crosses the softplus threshold', dims: [1, 6, 2, 3, 1], optional: ['dtBias'], deltaSoftplus: true, f32Params: true, biasRange: [17, 23] },
  { label: 'N33 (more states than a warp)', dims: [2, 3, 33, 6, 5], optional: ['D'], deltaSoftplus: true, f32Params: true },
  // Batches of 4 or more take the rows-per-block path of fast backends: a partial last block, N ≤ 8, N past the registers.
  { label: 'B6 N12', dims: [6, 5, 12, 5, 1], optional: ['dtBias', 'D'], deltaSoftplus: true, f32Params: true },
  { label: 'B4 N5 params in dtype', dims: [4, 9, 5, 2, 0], optional: ['dtBias'], deltaSoftplus: true, f32Params: false },
  { label: 'B9 N70', dims: [9, 3, 70, 4, 2], optional: ['dtBias', 'D'], deltaSoftplus: true, f32Params: true },
  // Four states per lane where N is a multiple of 4: 16 lanes (N64), states past the registers (N132), a dtWeight too
  // large to stage in shared memory (R400), a channel tile of 32 that E does not fill (E37).
  { label: 'B5 N64', dims: [5, 6, 64, 7, 1], optional: ['dtBias', 'D'], deltaSoftplus: true, f32Params: true },
  { label: 'B2 N64', dims: [2, 3, 64, 5, 0], optional: ['D'], deltaSoftplus: true, f32Params: true },
  { label: 'B7 N132', dims: [7, 3, 132, 9, 1], optional: ['dtBias', 'D'], deltaSoftplus: true, f32Params: true },
  { label: 'B5 R400 params in dtype', dims: [5, 3, 8, 400, 1], optional: ['dtBias', 'D'], deltaSoftplus: true, f32Params: false },
  { label: 'B6 E37 N16 R48', dims: [6, 37, 16, 48, 2], optional: ['dtBias', 'D'], deltaSoftplus: true, f32Params: true },
];

function ssmStepCase(): KernelCase {
  return {
    dtypes: 'float',
    variants: (dtype, g) =>
      SSM_STEP_PLANS.map((plan) => {
        const [B, E, N, R, extra] = plan.dims;
        const pt: DType = plan.f32Params ? 'f32' : dtype;
        const [lo, hi] = plan.biasRange ?? [-3, 0];
        const names = ['state', 'x', 'xz', 'dbc', 'dtWeight'];
        const inputs = [
          g.normal([B, E, N], 'f32'), g.normal([B, E], dtype), g.normal([B, 2 * E + extra], dtype), g.normal([B, R + 2 * N], dtype),
          g.normal([E, R], pt, 0.1 / Math.sqrt(R)),
        ];
        if (plan.optional.includes('dtBias')) (names.push('dtBias'), inputs.push(g.uniform([E], pt, lo, hi)));
        names.push('ALog');
        inputs.push(g.uniform([E, N], pt, -1, 1.5));
        if (plan.optional.includes('D')) (names.push('D'), inputs.push(g.normal([E], pt)));
        return v(plan.label, inputs, { names, deltaSoftplus: plan.deltaSoftplus });
      }),
  };
}

const CE_PLANS: [string, number, number, number][] = [
  // label, rows, vocab, chunkSize
  ['one chunk', 5, 13, 4096],
  ['chunked', 7, 29, 5],
  ['single row', 1, 3, 2],
];

/** The forward's log-sum-exp, computed on cpu (the grad kernels take it as an input). */
function cpuLse(kernel: string, inputs: Tensor[], attrs: Record<string, unknown>): Tensor {
  const [loss, lse] = engine().runKernel(kernel, inputs, attrs);
  loss.dispose();
  return lse;
}

function crossEntropyCase(grad: boolean): KernelCase {
  return {
    dtypes: 'float',
    variants: (dtype, g) =>
      CE_PLANS.map(([label, rows, vocab, chunkSize]) => {
        const attrs = { ignoreIndex: -100, chunkSize };
        const logits = g.normal([rows, vocab], dtype, 3);
        const targets = g.targets(rows, vocab, -100);
        if (!grad) return v(label, [logits, targets], attrs);
        const lse = cpuLse('crossEntropy', [logits, targets], attrs);
        return v(label, [g.normal([rows], 'f32'), logits, targets, lse], attrs);
      }),
  };
}

function linearCrossEntropyCase(grad: boolean): KernelCase {
  return {
    dtypes: 'float',
    variants: (dtype, g) =>
      CE_PLANS.map(([label, rows, vocab, chunkSize]) => {
        const dim = label === 'single row' ? 1 : 11;
        const attrs = { ignoreIndex: -100, chunkSize };
        const hidden = g.normal([rows, dim], dtype);
        const weight = g.normal([vocab, dim], dtype, 0.7);
        const targets = g.targets(rows, vocab, -100);
        if (!grad) return v(label, [hidden, weight, targets], attrs);
        const lse = cpuLse('linearCrossEntropy', [hidden, weight, targets], attrs);
        return v(label, [g.normal([rows], 'f32'), hidden, weight, targets, lse], attrs);
      }).flatMap((variant) =>
        // A frozen head: only dhidden (the weight's GEMMs are skipped).
        grad ? withoutWeightGrad([variant]) : [variant],
      ),
  };
}

/** Every kernel of the cpu backend and how to exercise it. The suite fails if the cpu backend has one not listed. */
export function kernelCases(): Record<string, KernelCase> {
  const cases: Record<string, KernelCase> = {
    fill: {
      dtypes: 'once',
      variants: () => (['f32', 'bf16', 'f16', 'i32'] as DType[]).flatMap((dtype) => [
        v(`${dtype} [3,5] = 1.3`, [], { shape: [3, 5], dtype, value: 1.3 }),
        v(`${dtype} [] = -7`, [], { shape: [], dtype, value: -7 }),
        v(`${dtype} [2,0,3] = 2`, [], { shape: [2, 0, 3], dtype, value: 2 }),
      ]),
    },
    cast: castCase(),
    affine: {
      dtypes: 'float',
      variants: (dtype, g) => [
        ...SHAPES.map((s, i) => v(`[${s}]`, [g.normal(s, dtype)], { scale: [2, -0.5, 1, 0, 3.25][i], offset: [0.5, 1, 0, -2, 0.125][i] })),
        v('[3,40]', [g.normal([3, 40], dtype)], { scale: -1.5, offset: 0.25 }),
      ],
    },
    argmax: {
      dtypes: 'float',
      variants: (dtype, g) => [
        v('[3,7]', [g.normal([3, 7], dtype)]),
        v('[9] → []', [g.normal([9], dtype)]),
        v('[2,1,5]', [g.normal([2, 1, 5], dtype)]),
        v('ties pick the first', [g.ints([4, 9], 0, 3, dtype)]),
        // Long rows (vocabulary logits): several strided passes per thread, ties across passes and warps.
        v('[2,9001] ties', [g.ints([2, 9001], 0, 5, dtype)]),
        v('[1,50280]', [g.normal([1, 50280], dtype)]),
      ],
    },
    matmul: matmulCase(),
    slice: {
      dtypes: 'float',
      variants: (dtype, g) => [
        v('[7] 2..5', [g.normal([7], dtype)], { begin: [2], size: [3] }),
        v('[3,5,7] middle', [g.normal([3, 5, 7], dtype)], { begin: [1, 1, 2], size: [2, 3, 5] }),
        v('[5,9] cols', [g.normal([5, 9], dtype)], { begin: [0, 3], size: [5, 1] }),
        // Column blocks of a matrix (16-byte, 8-byte and element-sized rows), whole rows (one contiguous run).
        v('[4,40] cols 16..40', [g.normal([4, 40], dtype)], { begin: [0, 16], size: [4, 24] }),
        v('[3,12] cols 4..8', [g.normal([3, 12], dtype)], { begin: [0, 4], size: [3, 4] }),
        v('[5,9] cols 2..7', [g.normal([5, 9], dtype)], { begin: [0, 2], size: [5, 5] }),
        v('[4,9] rows 1..3', [g.normal([4, 9], dtype)], { begin: [1, 0], size: [2, 9] }),
      ],
    },
    sumSquares: {
      dtypes: 'float',
      variants: (dtype, g) => [
        v('one [7]', [g.normal([7], dtype)]),
        v('three tensors, one empty', [g.normal([3, 5], dtype), g.normal([0, 4], dtype), g.normal([2, 70, 3], dtype, 2)]),
        v('40 tensors (more than one launch table)', Array.from({ length: 40 }, (_, i) => g.normal([i % 7 + 1, 3], dtype))),
        v('large [300, 257]', [g.normal([300, 257], dtype)]),
      ],
    },
    split: {
      dtypes: 'float',
      variants: (dtype, g) => [
        v('[5,12] into 4+8 columns', [g.normal([5, 12], dtype)], { axis: 1, sizes: [4, 8] }),
        v('[3,4,7] into 1+0+3 along axis 1', [g.normal([3, 4, 7], dtype)], { axis: 1, sizes: [1, 0, 3] }),
        v('[6,5] into 2+4 rows', [g.normal([6, 5], dtype)], { axis: 0, sizes: [2, 4] }),
      ],
    },
    padSlice: {
      dtypes: 'float',
      variants: (dtype, g) => [
        v('[3] into [7]', [g.normal([3], dtype)], { shape: [7], begin: [2] }),
        v('[2,3,5] into [3,5,7]', [g.normal([2, 3, 5], dtype)], { shape: [3, 5, 7], begin: [1, 1, 2] }),
        v('[4,24] into [4,40] at column 16', [g.normal([4, 24], dtype)], { shape: [4, 40], begin: [0, 16] }),
        v('[5,3] into [5,9] at column 3', [g.normal([5, 3], dtype)], { shape: [5, 9], begin: [0, 3] }),
        v('[2,6] into [4,6] at row 1', [g.normal([2, 6], dtype)], { shape: [4, 6], begin: [1, 0] }),
        v('[3,1,4] into [3,2,4]', [g.normal([3, 1, 4], dtype)], { shape: [3, 2, 4], begin: [0, 1, 0] }),
      ],
    },
    transpose: {
      dtypes: 'float',
      variants: (dtype, g) => [
        v('[3,5] T', [g.normal([3, 5], dtype)], { perm: [1, 0] }),
        v('[2,3,5] 2,0,1', [g.normal([2, 3, 5], dtype)], { perm: [2, 0, 1] }),
        v('[2,3,1,5] 0,2,1,3', [g.normal([2, 3, 1, 5], dtype)], { perm: [0, 2, 1, 3] }),
        v('[3,5,7] identity', [g.normal([3, 5, 7], dtype)], { perm: [0, 1, 2] }),
        // Last-two-axes transposes: odd sizes, and several tiles with ragged edges.
        v('[2,7,9] 0,2,1', [g.normal([2, 7, 9], dtype)], { perm: [0, 2, 1] }),
        v('[2,66,70] 0,2,1', [g.normal([2, 66, 70], dtype)], { perm: [0, 2, 1] }),
        v('[67,33] T', [g.normal([67, 33], dtype)], { perm: [1, 0] }),
        v('[2,3,4,6] 0,1,3,2', [g.normal([2, 3, 4, 6], dtype)], { perm: [0, 1, 3, 2] }),
      ],
    },
    concat: {
      dtypes: 'float',
      variants: (dtype, g) => [
        v('axis 0', [g.normal([2, 5], dtype), g.normal([3, 5], dtype)], { axis: 0 }),
        v('axis 1 of three', [g.normal([3, 1, 2], dtype), g.normal([3, 5, 2], dtype), g.normal([3, 3, 2], dtype)], { axis: 1 }),
        v('last axis', [g.normal([2, 3], dtype), g.normal([2, 7], dtype)], { axis: 1 }),
        v('last axis, wide', [g.normal([3, 16], dtype), g.normal([3, 24], dtype)], { axis: 1 }),
      ],
    },
    softmax: {
      dtypes: 'float',
      variants: (dtype, g) => [v('[3,7]', [g.normal([3, 7], dtype, 3)]), v('[13]', [g.normal([13], dtype)]), v('[2,1,1]', [g.normal([2, 1, 1], dtype)])],
    },
    sum: reduceCase(),
    max: reduceCase(),
    min: reduceCase(),
    rmsNorm: {
      dtypes: 'float',
      variants: (dtype, g) => [
        v('[3,7]', [g.normal([3, 7], dtype), g.uniform([7], dtype, 0.5, 1.5)], { eps: 1e-5 }),
        v('[2,5,13]', [g.normal([2, 5, 13], dtype), g.uniform([13], dtype, 0.5, 1.5)], { eps: 1e-6 }),
        ...RMS_NORM_WIDE.map(([rows, cols]) => v(`[${rows},${cols}]`, [g.normal([rows, cols], dtype), g.uniform([cols], dtype, 0.5, 1.5)], { eps: 1e-5 })),
      ],
    },
    rmsNormGrad: {
      dtypes: 'float',
      variants: (dtype, g) => withoutWeightGrad([
        v('[3,7]', [g.normal([3, 7], dtype), g.normal([3, 7], dtype), g.uniform([7], dtype, 0.5, 1.5)], { eps: 1e-5 }),
        v('[2,5,13]', [g.normal([2, 5, 13], dtype), g.normal([2, 5, 13], dtype), g.uniform([13], dtype, 0.5, 1.5)], { eps: 1e-6 }),
        ...RMS_NORM_WIDE.map(([rows, cols]) =>
          v(`[${rows},${cols}]`, [g.normal([rows, cols], dtype), g.normal([rows, cols], dtype), g.uniform([cols], dtype, 0.5, 1.5)], { eps: 1e-5 })),
      ]),
    },
    layerNorm: {
      dtypes: 'float',
      variants: (dtype, g) => [
        v('[3,7]', [g.normal([3, 7], dtype, 2), g.uniform([7], dtype, 0.5, 1.5), g.normal([7], dtype)], { eps: 1e-5 }),
        ...LAYER_NORM_WIDE.map(([rows, cols]) =>
          v(`[${rows},${cols}]`, [g.normal([rows, cols], dtype, 2), g.uniform([cols], dtype, 0.5, 1.5), g.normal([cols], dtype)], { eps: 1e-5 })),
      ],
    },
    layerNormGrad: {
      dtypes: 'float',
      variants: (dtype, g) => withoutWeightGrad([
        v('[3,7]', [g.normal([3, 7], dtype), g.normal([3, 7], dtype, 2), g.uniform([7], dtype, 0.5, 1.5), g.normal([7], dtype)], { eps: 1e-5 }),
        ...LAYER_NORM_WIDE.map(([rows, cols]) =>
          v(`[${rows},${cols}]`, [g.normal([rows, cols], dtype), g.normal([rows, cols], dtype, 2), g.uniform([cols], dtype, 0.5, 1.5), g.normal([cols], dtype)], { eps: 1e-5 })),
      ]),
    },
    embedding: {
      dtypes: 'float',
      variants: (dtype, g) => [
        v('[2,3] ids', [g.normal([11, 7], dtype), g.ints([2, 3], 0, 11)]),
        v('[5] ids dim 1', [g.normal([3, 1], dtype), g.ints([5], 0, 3)]),
      ],
    },
    embeddingGrad: {
      dtypes: 'float',
      variants: (dtype, g) => [
        v('repeated ids', [g.normal([2, 5, 7], dtype), g.ints([2, 5], 0, 4)], { vocab: 6, dtype }),
        v('dim 1', [g.normal([5, 1], dtype), g.ints([5], 0, 3)], { vocab: 3, dtype }),
      ],
    },
    causalConv1d: { dtypes: 'float', variants: (dtype, g) => convVariants(dtype, g, false) },
    causalConv1dGrad: { dtypes: 'float', variants: (dtype, g) => withoutWeightGrad(convVariants(dtype, g, true)) },
    selectiveScan: selectiveScanCase(false),
    selectiveScanGrad: selectiveScanCase(true),
    selectiveStateUpdate: stateUpdateCase(),
    residualRmsNorm: residualRmsNormCase(),
    convStep: convStepCase(),
    ssmStep: ssmStepCase(),
    crossEntropy: crossEntropyCase(false),
    crossEntropyGrad: crossEntropyCase(true),
    linearCrossEntropy: linearCrossEntropyCase(false),
    linearCrossEntropyGrad: linearCrossEntropyCase(true),
    adamw: {
      dtypes: 'float',
      variants: (dtype, g) => {
        const attrs = (step: number, weightDecay: number) => ({ lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay, step });
        const state = (s: number[]) => [g.normal(s, 'f32', 0.1), g.uniform(s, 'f32', 0, 0.05)];
        return [
          v('step 1', [g.normal([7], dtype), g.normal([7], dtype), ...state([7])], attrs(1, 0.01)),
          v('step 5 [3,5] no decay', [g.normal([3, 5], dtype), g.normal([3, 5], dtype), ...state([3, 5])], attrs(5, 0)),
          v('step 100 [13]', [g.normal([13], dtype), g.normal([13], dtype, 1e-3), ...state([13])], attrs(100, 0.1)),
          v('step 3 [9] gradScale 0.37', [g.normal([9], dtype), g.normal([9], dtype), ...state([9])], { ...attrs(3, 0.01), gradScale: 0.37 }),
        ];
      },
    },
  };
  for (const name of UNARY_KERNELS) cases[name] = unaryCase(name);
  for (const name of BINARY_KERNELS) cases[name] = binaryCase(name);
  return cases;
}
