// A small Mamba-shaped language model composed from the tensor ops (no ssm package: backends know no model):
// embedding → [rmsNorm → in_proj → causalConv1d(silu) → x_proj → dt_proj → selectiveScan → out_proj, residual]
// → rmsNorm → tied linearCrossEntropy, and an AdamW training step. Used by the coverage test and the benchmark.
import * as T from '@mamba-ts/tensor';

export interface MambaLikeConfig {
  vocab: number;
  dModel: number;
  dInner: number;
  dState: number;
  dtRank: number;
  convWidth: number;
  layers: number;
}

class Mixer extends T.Module {
  readonly norm: T.RMSNorm;
  readonly inProj: T.Linear;
  readonly xProj: T.Linear;
  readonly dtProj: T.Linear;
  readonly outProj: T.Linear;
  readonly convWeight: T.Parameter;
  readonly convBias: T.Parameter;
  readonly dtBias: T.Parameter;
  readonly ALog: T.Parameter;
  readonly D: T.Parameter;

  constructor(readonly c: MambaLikeConfig, seed: number) {
    super();
    const { dModel: Dm, dInner: E, dState: N, dtRank: R, convWidth: W } = c;
    this.norm = this.registerModule('norm', new T.RMSNorm(Dm));
    this.inProj = this.registerModule('in_proj', new T.Linear(Dm, 2 * E, { bias: false, seed: seed + 1 }));
    this.xProj = this.registerModule('x_proj', new T.Linear(E, R + 2 * N, { bias: false, seed: seed + 2 }));
    this.dtProj = this.registerModule('dt_proj', new T.Linear(R, E, { bias: false, seed: seed + 3 }));
    this.outProj = this.registerModule('out_proj', new T.Linear(E, Dm, { bias: false, seed: seed + 4 }));
    this.convWeight = this.registerParameter('conv_weight', T.randomUniform([E, W], { low: -0.5, high: 0.5, seed: seed + 5 }));
    this.convBias = this.registerParameter('conv_bias', T.randomUniform([E], { low: -0.1, high: 0.1, seed: seed + 6 }));
    this.dtBias = this.registerParameter('dt_bias', T.randomUniform([E], { low: -4, high: -2, seed: seed + 7 }));
    const aLog = new Float32Array(E * N).map((_, i) => Math.log(1 + (i % N)));
    this.ALog = this.registerParameter('A_log', T.tensor(aLog, [E, N]));
    this.D = this.registerParameter('D', T.ones([E]));
  }

  forward(x: T.Tensor): T.Tensor {
    const { dInner: E, dState: N, dtRank: R } = this.c;
    const [xi, z] = T.split(this.inProj.forward(this.norm.forward(x)), [E, E], -1);
    const u = T.causalConv1d(xi, this.convWeight.value, { bias: this.convBias.value, silu: true });
    const [dtLow, B, C] = T.split(this.xProj.forward(u), [R, N, N], -1);
    const delta = this.dtProj.forward(dtLow);
    const A = T.neg(T.exp(this.ALog.value));
    const { y } = T.selectiveScan({ u, delta, A, B, C, D: this.D.value, z, deltaBias: this.dtBias.value });
    return T.add(x, this.outProj.forward(y));
  }
}

export class MambaLike extends T.Module {
  readonly embedding: T.Embedding;
  readonly layers: T.ModuleList<Mixer>;
  readonly normF: T.RMSNorm;

  constructor(readonly config: MambaLikeConfig) {
    super();
    this.embedding = this.registerModule('embedding', new T.Embedding(config.vocab, config.dModel, { seed: 11 }));
    this.layers = this.registerModule('layers', new T.ModuleList(Array.from({ length: config.layers }, (_, i) => new Mixer(config, 100 * i))));
    this.normF = this.registerModule('norm_f', new T.RMSNorm(config.dModel));
  }

  /** Mean next-token cross-entropy of ids (B, L) against targets (B, L). */
  loss(ids: T.Tensor, targets: T.Tensor): T.Tensor {
    let x = this.embedding.forward(ids);
    for (const layer of this.layers.items) x = layer.forward(x);
    const h = this.normF.forward(x);
    return T.linearCrossEntropy(T.reshape(h, [-1, this.config.dModel]), this.embedding.weight.value, targets, { chunkSize: 256 });
  }
}

/** Random token ids and their shifted targets. */
export function tokenBatch(vocab: number, batch: number, length: number, seed: number): { ids: T.Tensor; targets: T.Tensor } {
  const rng = T.mulberry32(seed);
  const tokens = Int32Array.from({ length: batch * (length + 1) }, () => Math.floor(rng() * vocab));
  const ids = new Int32Array(batch * length);
  const targets = new Int32Array(batch * length);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < length; t++) {
      ids[b * length + t] = tokens[b * (length + 1) + t];
      targets[b * length + t] = tokens[b * (length + 1) + t + 1];
    }
  }
  return { ids: T.tensor(ids, [batch, length], 'i32'), targets: T.tensor(targets, [batch * length], 'i32') };
}

/** One training step: loss, gradients of every parameter, AdamW update. Returns the loss value. */
export function trainStep(model: MambaLike, optimizer: T.AdamW, ids: T.Tensor, targets: T.Tensor): number {
  const params = model.parameters();
  const { value, grads } = T.valueAndGrad(() => model.loss(ids, targets), params.map((p) => p.value));
  const loss = value.toFloat32Sync()[0];
  value.dispose();
  optimizer.step(grads);
  for (const g of grads) g.dispose();
  return loss;
}
