import {
  Module, Linear, causalConv1d, checkpoint, concat, exp, mulberry32, neg, narrow, reshape, selectiveScan, selectiveStateUpdate, split,
  transpose, zeros, randomUniform, tensor, type Parameter, type Tensor,
} from '@mamba-ts/tensor';
import type { MambaConfig } from './config.js';
import type { LayerState } from './state.js';

/** What the mixer needs of a projection: a plain `Linear` or a wrapper around one (LoRA). */
export interface Projection extends Module {
  forward(x: Tensor, opts?: { bias?: boolean }): Tensor;
  readonly bias: Parameter | null;
}

/** Depthwise causal convolution weights, stored as the checkpoint stores them: weight (E, 1, W), bias (E). */
export class DepthwiseConv1d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(channels: number, width: number, { bias = true, seed = 0 } = {}) {
    super();
    const bound = 1 / Math.sqrt(width);
    this.weight = this.registerParameter('weight', randomUniform([channels, 1, width], { low: -bound, high: bound, seed }));
    this.bias = bias ? this.registerParameter('bias', randomUniform([channels], { low: -bound, high: bound, seed: seed + 1 })) : null;
  }

  /** (E, W) view of the weight, as the kernel takes it. */
  kernel(): Tensor {
    const [E, , W] = this.weight.shape;
    return reshape(this.weight.value, [E, W]);
  }
}

/**
 * The selective SSM block (Mamba-1). For input u (B, L, D):
 *   [x, z] = in_proj(u)                       x, z: (B, L, E)
 *   x      = silu(conv1d(x))                  causal, depthwise, width W
 *   [δ, B, C] = x_proj(x)                     δ: (B, L, R), B, C: (B, L, N)
 *   Δ      = softplus(dt_proj(δ) + b_dt)      (B, L, E)
 *   A      = −exp(A_log)                      (E, N)
 *   h_t    = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t x_t
 *   y_t    = C_t · h_t + D ⊙ x_t,  y ← y ⊙ silu(z)
 *   out    = out_proj(y)                      (B, L, D)
 * The conv, the softplus, the scan, D and the gate run in two fused kernels (causalConv1d, selectiveScan).
 */
export class MambaMixer extends Module {
  readonly A_log: Parameter;
  readonly D: Parameter;
  readonly #cfg: MambaConfig;

  constructor(cfg: MambaConfig, seed = 0) {
    super();
    this.#cfg = cfg;
    const { hiddenSize: Dm, intermediateSize: E, stateSize: N, timeStepRank: R, convKernel: W } = cfg;
    this.registerModule('in_proj', new Linear(Dm, 2 * E, { bias: cfg.useBias, seed }));
    this.registerModule('conv1d', new DepthwiseConv1d(E, W, { bias: cfg.useConvBias, seed: seed + 1 }));
    this.registerModule('x_proj', new Linear(E, R + 2 * N, { bias: false, seed: seed + 2 }));
    const dtProj = this.registerModule('dt_proj', new Linear(R, E, { bias: true, seed: seed + 3 }));
    dtProj.bias!.assign(tensor(initialDtBias(E, seed + 5)));
    // S4D-real initialisation: A = −(1, 2, …, N) for every channel.
    this.A_log = this.registerParameter('A_log', tensor(Array.from({ length: E * N }, (_, i) => Math.log((i % N) + 1)), [E, N]));
    this.D = this.registerParameter('D', tensor(new Float32Array(E).fill(1), [E]));
    this.registerModule('out_proj', new Linear(E, Dm, { bias: cfg.useBias, seed: seed + 4 }));
  }

  get in_proj(): Projection {
    return this.child('in_proj');
  }
  get conv1d(): DepthwiseConv1d {
    return this.child('conv1d');
  }
  get x_proj(): Projection {
    return this.child('x_proj');
  }
  get dt_proj(): Projection {
    return this.child('dt_proj');
  }
  get out_proj(): Projection {
    return this.child('out_proj');
  }

  /** A = −exp(A_log), fp32. */
  A(): Tensor {
    return neg(exp(this.A_log.value));
  }

  /**
   * Parallel mode over a whole sequence u (B, L, D), optionally continuing from `prev`. With `recompute`, the part
   * between in_proj and out_proj keeps only xz for the backward pass, which recomputes it.
   */
  forward(u: Tensor, prev?: LayerState | null, { recompute = false } = {}): { out: Tensor; state: LayerState } {
    const xz = this.in_proj.forward(u);
    const [y, conv, ssm] = recompute ? checkpoint((t) => this.#ssm(t, prev), [xz]) : this.#ssm(xz, prev);
    return { out: this.out_proj.forward(y), state: { conv, ssm } };
  }

  /** xz (B, L, 2E) → y (B, L, E), the conv tail and the last scan state. */
  #ssm(xz: Tensor, prev?: LayerState | null): [Tensor, Tensor, Tensor] {
    const { intermediateSize: E, stateSize: N, timeStepRank: R } = this.#cfg;
    const [xPre, z] = split(xz, [E, E], -1);
    const x = causalConv1d(xPre, this.conv1d.kernel(), {
      bias: this.conv1d.bias?.value,
      initialState: prev?.conv,
      silu: true,
    });
    const [dtLowRank, B, C] = split(this.x_proj.forward(x), [R, N, N], -1);
    const delta = this.dt_proj.forward(dtLowRank, { bias: false });
    const { y, hLast } = selectiveScan({
      u: x, delta, A: this.A(), B, C, D: this.D.value, z, deltaBias: this.dt_proj.bias?.value, h0: prev?.ssm, deltaSoftplus: true,
    });
    return [y, this.#convTail(xPre, prev?.conv), hLast];
  }

  /** Recurrent mode: one token u (B, D) → out (B, D) and the next state. */
  step(u: Tensor, prev: LayerState): { out: Tensor; state: LayerState } {
    const { intermediateSize: E, stateSize: N, timeStepRank: R } = this.#cfg;
    const Bt = u.shape[0];
    const [xPre, z] = split(this.in_proj.forward(u), [E, E], -1);
    const x = reshape(
      causalConv1d(reshape(xPre, [Bt, 1, E]), this.conv1d.kernel(), {
        bias: this.conv1d.bias?.value,
        initialState: prev.conv,
        silu: true,
      }),
      [Bt, E],
    );
    const [dtLowRank, B, C] = split(this.x_proj.forward(x), [R, N, N], -1);
    const delta = this.dt_proj.forward(dtLowRank, { bias: false });
    const { y, state } = selectiveStateUpdate({
      state: prev.ssm, x, delta, A: this.A(), B, C, D: this.D.value, z, deltaBias: this.dt_proj.bias?.value, deltaSoftplus: true,
    });
    const conv = narrow(concat([prev.conv, reshape(xPre, [Bt, E, 1])], 2), 2, 1, this.#cfg.convKernel - 1);
    return { out: this.out_proj.forward(y), state: { conv, ssm: state } };
  }

  /** The last W−1 pre-conv inputs after the sequence (B, E, W−1), continuing `prev` when given. */
  #convTail(xPre: Tensor, prev?: Tensor | null): Tensor {
    const [Bt, L, E] = xPre.shape;
    const W1 = this.#cfg.convKernel - 1;
    const history = concat([prev ?? zeros([Bt, E, W1], xPre.dtype), transpose(xPre, [0, 2, 1])], 2);
    return narrow(history, 2, L, W1);
  }

  /** Zero state for a batch. */
  emptyState(batch: number, dtype: Tensor['dtype']): LayerState {
    const { intermediateSize: E, stateSize: N, convKernel: W } = this.#cfg;
    return { conv: zeros([batch, E, W - 1], dtype), ssm: zeros([batch, E, N]) };
  }
}

/** softplus⁻¹(dt) with dt log-uniform in [1e-3, 0.1] (Mamba's initialisation), so Δ starts in a useful range. */
function initialDtBias(channels: number, seed: number): Float32Array {
  const random = mulberry32(seed);
  return Float32Array.from({ length: channels }, () => {
    const r = random();
    const dt = Math.max(Math.exp(Math.log(1e-3) + r * (Math.log(0.1) - Math.log(1e-3))), 1e-4);
    return dt + Math.log(-Math.expm1(-dt));
  });
}
