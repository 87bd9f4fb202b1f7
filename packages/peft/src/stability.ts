/**
 * Stability tools: how far bf16/f16 compute drifts from fp32, and the maximal Lyapunov exponent of every
 * layer's SSM recurrence along real inputs.
 *
 * Lyapunov exponent of the selective scan (derivation). Per layer, channel e and state n, the recurrence is
 *   h_t[e,n] = exp(Δ_t[e]·A[e,n]) · h_{t−1}[e,n] + Δ_t[e]·B_t[n]·x_t[e].
 * Δ_t, B_t and x_t are functions of the layer input only, never of h, so along a given input sequence the map
 * h_{t−1} ↦ h_t is affine with Jacobian J_t = ∂h_t/∂h_{t−1} = diag(exp(Δ_t[e]·A[e,n])). The product of T
 * diagonal Jacobians is diag(exp(Σ_t Δ_t[e]·A[e,n])); its singular values are those diagonal entries, so the
 * finite-time Lyapunov exponents are exactly
 *   λ[e,n] = (1/T) · Σ_t Δ_t[e]·A[e,n] = A[e,n] · mean_t Δ_t[e],
 * and the maximal one is λ_max = max_{e,n} λ[e,n]. With Δ = softplus(·) > 0 and A = −exp(A_log) < 0 every
 * term is negative: λ_max < 0 and a perturbation of the state shrinks like exp(T·λ_max). Since A < 0, the max
 * over n is attained at the state with the A closest to zero. The output y_t = C_t·h_t + D·x_t is linear in h,
 * so output deviations inherit the bound. (The exponent is that of the state map with the layer's inputs held
 * fixed; a perturbation of the layer's *input* also changes Δ, B, x, but only while it is inside the conv window.)
 *
 * Empirical check: run the model's own one-step kernel (selectiveStateUpdate) from h = 0 and from h = ε·1 on
 * the same inputs; with the max-norm, ‖δh_T‖∞ = ε·max_{e,n} exp(Σ_t Δ_t A) for this start, so
 * log(‖δh_T‖∞/ε)/T estimates λ_max independently of the analytic formula above (through the kernel's own
 * softplus, bias and exp). A second estimate perturbs the layer input at t = 0 and fits the decay rate of the
 * mixer output deviation after the conv window.
 */
import * as T from '@mamba-ts/tensor';
import type { MambaLM, MambaMixer } from '@mamba-ts/ssm';
import { computeDTypeOf, type Precision } from './precision.js';

// ---- precision divergence ----

export interface LogitDivergence {
  positions: number;
  maxAbsDiff: number;
  meanAbsDiff: number;
  /** KL(p_fp32 ‖ p_other) per position, mean and max (nats). */
  klMean: number;
  klMax: number;
  /** Fraction of positions whose argmax agrees. */
  top1Agreement: number;
  /** Positions whose low-precision logits hold inf/NaN (excluded from the other numbers). */
  nonFinitePositions: number;
}

/** Compares two (positions × V) logit arrays over the first `vocabLimit` columns (padded rows are meaningless). */
export function compareLogits(ref: Float32Array, other: Float32Array, vocab: number, vocabLimit = vocab): LogitDivergence {
  const positions = ref.length / vocab;
  let maxAbs = 0;
  let sumAbs = 0;
  let klSum = 0;
  let klMax = 0;
  let agree = 0;
  let bad = 0;
  for (let p = 0; p < positions; p++) {
    const a = ref.subarray(p * vocab, p * vocab + vocabLimit);
    const b = other.subarray(p * vocab, p * vocab + vocabLimit);
    if (!b.every(Number.isFinite)) {
      bad++;
      continue;
    }
    let am = 0;
    let bm = 0;
    for (let v = 0; v < vocabLimit; v++) {
      const d = Math.abs(a[v] - b[v]);
      if (d > maxAbs) maxAbs = d;
      sumAbs += d;
      if (a[v] > a[am]) am = v;
      if (b[v] > b[bm]) bm = v;
    }
    if (am === bm) agree++;
    const lseA = logSumExp(a);
    const lseB = logSumExp(b);
    let kl = 0;
    for (let v = 0; v < vocabLimit; v++) {
      const logP = a[v] - lseA;
      kl += Math.exp(logP) * (logP - (b[v] - lseB));
    }
    kl = Math.max(0, kl);
    klSum += kl;
    if (kl > klMax) klMax = kl;
  }
  const good = positions - bad;
  return {
    positions,
    maxAbsDiff: maxAbs,
    meanAbsDiff: good ? sumAbs / (good * vocabLimit) : NaN,
    klMean: good ? klSum / good : NaN,
    klMax,
    top1Agreement: good ? agree / good : NaN,
    nonFinitePositions: bad,
  };
}

function logSumExp(x: Float32Array): number {
  let m = -Infinity;
  for (const v of x) if (v > m) m = v;
  let s = 0;
  for (const v of x) s += Math.exp(v - m);
  return m + Math.log(s);
}

function logitsAt(model: MambaLM, ids: T.Tensor, dtype: T.DType): Float32Array {
  const saved = model.computeDType;
  model.computeDType = dtype;
  try {
    return T.tidy(() => T.noGrad(() => model.forward(ids).logits.toFloat32Sync()));
  } finally {
    model.computeDType = saved;
  }
}

export interface DivergenceOptions {
  precisions?: readonly Exclude<Precision, 'fp32'>[];
  /** Only the first columns count (the tokenizer's vocabulary; rows past it are padding). */
  vocabLimit?: number;
  /** Task accuracy of the model as it is configured (its computeDType set to the precision being measured). */
  accuracy?: (model: MambaLM, precision: Precision) => Promise<number>;
}

export interface PrecisionDivergence extends LogitDivergence {
  precision: Precision;
  accuracy?: { fp32: number; value: number; delta: number };
}

/**
 * Runs `sequences` in fp32 and in each low precision (same f32 master weights, compute dtype switched) and
 * compares the logits. Sequences are (1, L) or (B, L) i32 tensors.
 */
export async function precisionDivergence(model: MambaLM, sequences: readonly T.Tensor[], opts: DivergenceOptions = {}): Promise<PrecisionDivergence[]> {
  const V = model.config.vocabSize;
  const limit = Math.min(opts.vocabLimit ?? V, V);
  const ref = sequences.map((ids) => logitsAt(model, ids, 'f32'));
  const accFp32 = opts.accuracy ? await withDType(model, 'f32', () => opts.accuracy!(model, 'fp32')) : undefined;
  const out: PrecisionDivergence[] = [];
  for (const precision of opts.precisions ?? ['bf16', 'f16']) {
    const dtype = computeDTypeOf(precision);
    const parts = sequences.map((ids, i) => compareLogits(ref[i], logitsAt(model, ids, dtype), V, limit));
    const entry: PrecisionDivergence = { precision, ...mergeDivergence(parts) };
    if (opts.accuracy) {
      const value = await withDType(model, dtype, () => opts.accuracy!(model, precision));
      entry.accuracy = { fp32: accFp32!, value, delta: value - accFp32! };
    }
    out.push(entry);
  }
  return out;
}

async function withDType<R>(model: MambaLM, dtype: T.DType, f: () => Promise<R>): Promise<R> {
  const saved = model.computeDType;
  model.computeDType = dtype;
  try {
    return await f();
  } finally {
    model.computeDType = saved;
  }
}

function mergeDivergence(parts: readonly LogitDivergence[]): LogitDivergence {
  const good = (d: LogitDivergence): number => d.positions - d.nonFinitePositions;
  const total = parts.reduce((n, d) => n + good(d), 0);
  const weighted = (f: (d: LogitDivergence) => number): number =>
    total ? parts.reduce((s, d) => s + (good(d) ? f(d) * good(d) : 0), 0) / total : NaN;
  return {
    positions: parts.reduce((n, d) => n + d.positions, 0),
    maxAbsDiff: Math.max(0, ...parts.map((d) => d.maxAbsDiff)),
    meanAbsDiff: weighted((d) => d.meanAbsDiff),
    klMean: weighted((d) => d.klMean),
    klMax: Math.max(0, ...parts.map((d) => d.klMax)),
    top1Agreement: weighted((d) => d.top1Agreement),
    nonFinitePositions: parts.reduce((n, d) => n + d.nonFinitePositions, 0),
  };
}

// ---- Lyapunov exponents ----

/** What the scan of one layer sees for an input: everything that drives the recurrence. */
interface ScanInputs {
  /** (B, L, E) post-conv input x. */
  x: T.Tensor;
  /** (B, L, E) raw time step before bias and softplus. */
  deltaRaw: T.Tensor;
  /** (B, L, N) */
  B: T.Tensor;
  C: T.Tensor;
  z: T.Tensor;
}

function scanInputs(mixer: MambaMixer, u: T.Tensor, model: MambaLM): ScanInputs {
  const { intermediateSize: E, stateSize: N, timeStepRank: R } = model.config;
  const [xPre, z] = T.split(mixer.in_proj.forward(u), [E, E], -1);
  const x = T.causalConv1d(xPre, mixer.conv1d.kernel(), { bias: mixer.conv1d.bias?.value, silu: true });
  const [dtLowRank, B, C] = T.split(mixer.x_proj.forward(x), [R, N, N], -1);
  return { x, deltaRaw: mixer.dt_proj.forward(dtLowRank, { bias: false }), B, C, z };
}

/** Δ = softplus(raw + bias) in f32, (B, L, E). */
function timeSteps(mixer: MambaMixer, deltaRaw: T.Tensor): T.Tensor {
  const raw = T.cast(deltaRaw, 'f32');
  const bias = mixer.dt_proj.bias;
  return T.softplus(bias ? T.add(raw, bias.value) : raw);
}

export interface LayerLyapunov {
  layer: number;
  /** max over sequences, channels and states of A[e,n]·mean_t Δ_t[e] (per token). */
  lambdaMax: number;
  /** Where the maximum is: sequence, channel e, state n. */
  at: { sequence: number; channel: number; state: number };
  /** The same maximum per sequence. */
  lambdaMaxPerSequence: number[];
  /** Mean of λ[e,n] over channels and states (typical contraction per token). */
  lambdaMean: number;
  /** Mean Δ over the layer. */
  deltaMean: number;
  /** From the kernel: log(‖δh_T‖∞/ε)/T for h0 = 0 vs ε·1, per sequence max. */
  empiricalState: number;
  /** Least-squares slope of log ‖δh_t‖∞ over t (same runs). */
  empiricalStateSlope: number;
  /** Output deviation after perturbing the layer input at t = 0: max |Δout_t| per t (first sequence). */
  inputPerturbation: { epsilon: number; deviation: number[]; slopeAfterConv: number | null };
}

export interface LyapunovOptions {
  /** State perturbation size (default 1e-3). */
  epsilon?: number;
  /** Input perturbation size (default 1e-3). */
  inputEpsilon?: number;
  /** Skip the step-by-step kernel runs (the analytic exponent only). */
  analyticOnly?: boolean;
}

function slope(ys: readonly number[], from = 0): number | null {
  const pts = ys.map((y, t) => [t, y] as const).slice(from).filter(([, y]) => Number.isFinite(y));
  if (pts.length < 2) return null;
  const mt = pts.reduce((s, [t]) => s + t, 0) / pts.length;
  const my = pts.reduce((s, [, y]) => s + y, 0) / pts.length;
  const num = pts.reduce((s, [t, y]) => s + (t - mt) * (y - my), 0);
  const den = pts.reduce((s, [t]) => s + (t - mt) ** 2, 0);
  return num / den;
}

/** ‖δh_t‖∞ per step for the state started at 0 and at ε·1, through the model's selectiveStateUpdate kernel. */
function stateDeviation(mixer: MambaMixer, s: ScanInputs, A: T.Tensor, epsilon: number): number[][] {
  const [Bt, L, E] = s.x.shape;
  const N = A.shape[1];
  const dev: number[][] = Array.from({ length: Bt }, () => []);
  let h = T.concat([T.zeros([Bt, E, N]), T.full([Bt, E, N], epsilon)], 0).keep();
  const both = (t: T.Tensor): T.Tensor => T.concat([t, t], 0);
  for (let t = 0; t < L; t++) {
    const next = T.tidy(() => {
      const at = (v: T.Tensor): T.Tensor => both(T.reshape(T.narrow(v, 1, t, 1), [Bt, v.shape[2]]));
      const { state } = T.selectiveStateUpdate({
        state: h, x: at(s.x), delta: at(s.deltaRaw), A, B: at(s.B), C: at(s.C), D: mixer.D.value, z: at(s.z),
        deltaBias: mixer.dt_proj.bias?.value, deltaSoftplus: true,
      });
      const diff = T.max(T.abs(T.sub(T.narrow(state, 0, Bt, Bt), T.narrow(state, 0, 0, Bt))), [1, 2]);
      return { state, diff };
    });
    h.dispose();
    h = next.state.keep();
    const d = next.diff.toFloat32Sync();
    next.diff.dispose();
    for (let b = 0; b < Bt; b++) dev[b].push(d[b]);
  }
  h.dispose();
  return dev;
}

/** Output deviation of the mixer when its input is nudged at t = 0 (first sequence only). */
function inputDeviation(mixer: MambaMixer, u: T.Tensor, epsilon: number): number[] {
  return T.tidy(() => {
    const first = T.narrow(u, 0, 0, 1);
    const [, L, D] = first.shape;
    const bump = T.concat([T.cast(T.full([1, 1, D], epsilon), u.dtype), T.zeros([1, L - 1, D], u.dtype)], 1);
    const { out } = mixer.forward(T.concat([first, T.add(first, bump)], 0));
    const diff = T.max(T.abs(T.sub(T.cast(T.narrow(out, 0, 1, 1), 'f32'), T.cast(T.narrow(out, 0, 0, 1), 'f32'))), [0, 2]);
    return Array.from(diff.toFloat32Sync());
  });
}

/**
 * Per-layer maximal Lyapunov exponents of the SSM recurrence along the given token sequences (B, L): analytic
 * (from Δ and A) and empirical (state and input perturbations through the model's kernels). Uses the model's
 * current compute dtype.
 */
export function lyapunovExponents(model: MambaLM, ids: T.Tensor, opts: LyapunovOptions = {}): LayerLyapunov[] {
  const epsilon = opts.epsilon ?? 1e-3;
  const inputEpsilon = opts.inputEpsilon ?? 1e-3;
  const W = model.config.convKernel;
  return T.noGrad(() =>
    T.tidy(() => {
      const results: LayerLyapunov[] = [];
      const residualDType = model.config.residualInFp32 ? 'f32' : model.computeDType;
      let residual = T.cast(model.backbone.embeddings.forward(ids), residualDType);
      model.backbone.layers.items.forEach((block, layer) => {
        const u = T.cast(block.norm.forward(residual), model.computeDType);
        const mixer = block.mixer;
        const s = scanInputs(mixer, u, model);
        const A = mixer.A();
        const [Bt, L, E] = s.x.shape;
        const N = A.shape[1];
        const meanDelta = T.mean(timeSteps(mixer, s.deltaRaw), 1).toFloat32Sync(); // (B, E)
        const a = A.toFloat32Sync(); // (E, N)
        let lambdaMax = -Infinity;
        let at = { sequence: 0, channel: 0, state: 0 };
        const perSeq: number[] = [];
        let sum = 0;
        for (let b = 0; b < Bt; b++) {
          let seqMax = -Infinity;
          for (let e = 0; e < E; e++) {
            for (let n = 0; n < N; n++) {
              const lambda = a[e * N + n] * meanDelta[b * E + e];
              sum += lambda;
              if (lambda > seqMax) seqMax = lambda;
              if (lambda > lambdaMax) {
                lambdaMax = lambda;
                at = { sequence: b, channel: e, state: n };
              }
            }
          }
          perSeq.push(seqMax);
        }
        let empiricalState = NaN;
        let empiricalStateSlope = NaN;
        let inputPerturbation: LayerLyapunov['inputPerturbation'] = { epsilon: inputEpsilon, deviation: [], slopeAfterConv: null };
        if (!opts.analyticOnly) {
          const dev = stateDeviation(mixer, s, A, epsilon);
          empiricalState = Math.max(...dev.map((d) => Math.log(d[L - 1] / epsilon) / L));
          empiricalStateSlope = Math.max(...dev.map((d) => slope([Math.log(epsilon), ...d.map(Math.log)]) ?? NaN));
          const deviation = inputDeviation(mixer, u, inputEpsilon);
          inputPerturbation = { epsilon: inputEpsilon, deviation, slopeAfterConv: slope(deviation.map(Math.log), W) };
        }
        results.push({
          layer, lambdaMax, at, lambdaMaxPerSequence: perSeq, lambdaMean: sum / (Bt * E * N),
          deltaMean: meanDelta.reduce((x, y) => x + y, 0) / meanDelta.length, empiricalState, empiricalStateSlope, inputPerturbation,
        });
        const { out } = mixer.forward(u);
        residual = T.add(residual, T.cast(out, residualDType));
      });
      return results;
    }),
  );
}

/** Combines per-sequence results of one layer (each from a (1, L) run). */
export function mergeLayerResults(runs: readonly LayerLyapunov[]): LayerLyapunov {
  const best = runs.reduce((a, b) => (b.lambdaMax > a.lambdaMax ? b : a));
  const bestIndex = runs.indexOf(best);
  const avg = (f: (r: LayerLyapunov) => number): number => runs.reduce((s, r) => s + f(r), 0) / runs.length;
  return {
    layer: runs[0].layer,
    lambdaMax: best.lambdaMax,
    at: { ...best.at, sequence: bestIndex },
    lambdaMaxPerSequence: runs.flatMap((r) => r.lambdaMaxPerSequence),
    lambdaMean: avg((r) => r.lambdaMean),
    deltaMean: avg((r) => r.deltaMean),
    empiricalState: Math.max(...runs.map((r) => r.empiricalState)),
    empiricalStateSlope: Math.max(...runs.map((r) => r.empiricalStateSlope)),
    inputPerturbation: runs[0].inputPerturbation,
  };
}
