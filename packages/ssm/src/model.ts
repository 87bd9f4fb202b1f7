import {
  Embedding, Linear, Module, ModuleList, RMSNorm, add, cast, checkpoint, concat, linearCrossEntropy, matmul, narrow,
  reshape, tensor, tidy, type DType, type Parameter, type Tensor,
} from '@mamba-ts/tensor';
import type { MambaConfig } from './config.js';
import { MambaMixer } from './mixer.js';
import { MambaState, type LayerState } from './state.js';

/** Pre-norm residual block: h ← h + Mixer(RMSNorm(h)), with the residual stream kept in fp32. */
export class MambaBlock extends Module {
  readonly norm: RMSNorm;
  readonly mixer: MambaMixer;

  constructor(cfg: MambaConfig, seed: number) {
    super();
    this.norm = this.registerModule('norm', new RMSNorm(cfg.hiddenSize, cfg.layerNormEpsilon));
    this.mixer = this.registerModule('mixer', new MambaMixer(cfg, seed));
  }
}

/** Embedding → N blocks → final RMSNorm (`backbone.*` in Hugging Face names). */
export class MambaBackbone extends Module {
  readonly layers: ModuleList<MambaBlock>;
  readonly norm_f: RMSNorm;

  constructor(cfg: MambaConfig, seed: number) {
    super();
    this.registerModule('embeddings', new Embedding(cfg.vocabSize, cfg.hiddenSize, { seed }));
    this.layers = this.registerModule(
      'layers',
      new ModuleList(Array.from({ length: cfg.numLayers }, (_, i) => new MambaBlock(cfg, seed + 100 * (i + 1)))),
    );
    this.norm_f = this.registerModule('norm_f', new RMSNorm(cfg.hiddenSize, cfg.layerNormEpsilon));
  }

  /** The embedding module (looked up each time so a LoRA wrapper takes effect). */
  get embeddings(): Module & { forward(ids: Tensor): Tensor; weight: Parameter } {
    return this.child('embeddings');
  }
}

export type RecomputeMode = 'none' | 'ssm' | 'layer';
export const RECOMPUTE_MODES: readonly RecomputeMode[] = ['none', 'ssm', 'layer'];

/** A recompute mode from text (a flag or option value); `where` names it in the error. */
export function parseRecomputeMode(value: string, where = 'recompute'): RecomputeMode {
  if (!RECOMPUTE_MODES.includes(value as RecomputeMode)) {
    throw new Error(`${where}: unknown mode "${value}"; valid modes: ${RECOMPUTE_MODES.join(', ')}.`);
  }
  return value as RecomputeMode;
}

export interface ForwardOptions {
  /** Continue from this state (e.g. after a shared prompt prefix). */
  state?: MambaState | null;
}

/**
 * Mamba language model (`MambaForCausalLM`): parameters named exactly as in Hugging Face checkpoints.
 * Parallel mode (`forward`, `hidden`, `loss`) for training, prefill and scoring; recurrent mode (`step`) for
 * generation. Both give the same numbers.
 */
export class MambaLM extends Module {
  readonly backbone: MambaBackbone;
  /** dtype of activations and matmul inputs; the residual stream, norms and the scan state stay fp32. */
  computeDType: DType = 'f32';
  /**
   * Activation recomputation while training (less memory per token for more compute):
   * - `'none'`: every activation the backward pass reads is kept;
   * - `'ssm'`: per layer, the part between in_proj and out_proj (split, conv, x_proj, dt_proj, scan) keeps only its
   *   input xz and is recomputed in the backward pass: no extra GEMM beyond the small x_proj/dt_proj;
   * - `'layer'`: only each layer's input is kept and the whole layer is recomputed (one more forward pass).
   */
  recompute: RecomputeMode = 'none';

  constructor(
    readonly config: MambaConfig,
    { seed = 0 }: { seed?: number } = {},
  ) {
    super();
    this.backbone = this.registerModule('backbone', new MambaBackbone(config, seed));
    if (!config.tieWordEmbeddings) {
      this.registerModule('lm_head', new Linear(config.hiddenSize, config.vocabSize, { bias: false, seed: seed + 7 }));
    }
  }

  /** The (V, D) matrix that maps hidden states to logits: the embedding when tied. */
  headWeight(): Tensor {
    return this.#head().value;
  }

  #head(): Parameter {
    return this.config.tieWordEmbeddings ? this.backbone.embeddings.weight : this.child<Linear>('lm_head').weight;
  }

  /** Final hidden states (B, L, D) after norm_f, in the compute dtype, and the state after the sequence. */
  hidden(ids: Tensor, { state }: ForwardOptions = {}): { hidden: Tensor; state: MambaState } {
    this.#checkIds(ids, 2);
    let residual = this.#toResidual(this.backbone.embeddings.forward(ids));
    const next: LayerState[] = [];
    this.backbone.layers.items.forEach((block, i) => {
      const layer = (res: Tensor): Tensor[] => {
        const u = cast(block.norm.forward(res), this.computeDType);
        const { out, state: s } = block.mixer.forward(u, state?.layers[i], { recompute: this.recompute === 'ssm' });
        return [add(res, cast(out, res.dtype)), s.conv, s.ssm];
      };
      // A tidy per layer frees the layer's temporaries that no gradient reads as soon as the layer is done.
      const [res, conv, ssm] = this.recompute === 'layer' ? checkpoint(layer, [residual]) : tidy(() => layer(residual));
      residual = res;
      next.push({ conv, ssm });
    });
    const hidden = cast(this.backbone.norm_f.forward(residual), this.computeDType);
    return { hidden, state: new MambaState(next) };
  }

  /** Logits (B, L, V) in f32, and the state after the sequence. */
  forward(ids: Tensor, opts: ForwardOptions = {}): { logits: Tensor; state: MambaState } {
    const { hidden, state } = this.hidden(ids, opts);
    return { logits: this.logits(hidden), state };
  }

  /** Hidden states (..., D) → f32 logits (..., V). */
  logits(hidden: Tensor): Tensor {
    const D = this.config.hiddenSize;
    const flat = reshape(hidden, [-1, D]);
    const logits = matmul(flat, this.#head().as(flat.dtype), { transB: true });
    return reshape(cast(logits, 'f32'), [...hidden.shape.slice(0, -1), this.config.vocabSize]);
  }

  /**
   * Mean next-token cross-entropy (as HF's causal-LM loss with labels = ids), never materialising full logits.
   * `labels` (B, L) may hold −100 to mask positions (e.g. the prompt of an instruction record).
   */
  loss(ids: Tensor, { labels, chunkSize = 8192 }: { labels?: Tensor; chunkSize?: number } = {}): Tensor {
    const [B, L] = ids.shape;
    const { hidden } = this.hidden(ids);
    const lab = labels ?? ids;
    // Position t predicts label t+1; the last position has no target.
    const targets = concat([narrow(lab, 1, 1, L - 1), tensor(new Int32Array(B).fill(-100), [B, 1], 'i32')], 1);
    return linearCrossEntropy(reshape(hidden, [B * L, -1]), this.#head().as(hidden.dtype), reshape(targets, [-1]), { chunkSize });
  }

  /** Zero state for `batch` sequences. */
  emptyState(batch: number): MambaState {
    return new MambaState(this.backbone.layers.items.map((b) => b.mixer.emptyState(batch, this.computeDType)));
  }

  /** One recurrent step for ids (B) → f32 logits (B, V) and the next state. */
  step(ids: Tensor, state: MambaState): { logits: Tensor; state: MambaState } {
    this.#checkIds(ids, 1);
    let residual = this.#toResidual(this.backbone.embeddings.forward(ids));
    const next: LayerState[] = [];
    this.backbone.layers.items.forEach((block, i) => {
      const u = cast(block.norm.forward(residual), this.computeDType);
      const { out, state: s } = block.mixer.step(u, state.layers[i]);
      residual = add(residual, cast(out, residual.dtype));
      next.push(s);
    });
    const hidden = cast(this.backbone.norm_f.forward(residual), this.computeDType);
    return { logits: this.logits(hidden), state: new MambaState(next) };
  }

  #toResidual(h: Tensor): Tensor {
    return cast(h, this.config.residualInFp32 ? 'f32' : this.computeDType);
  }

  #checkIds(ids: Tensor, rank: number): void {
    if (ids.dtype !== 'i32' || ids.rank !== rank) {
      const want = rank === 2 ? '(batch, length)' : '(batch)';
      throw new Error(`Token ids must be an i32 tensor of shape ${want}, got ${ids.dtype} [${ids.shape.join(', ')}].`);
    }
    if (rank === 2 && ids.shape[1] === 0) throw new Error('Token ids are empty: give at least one token.');
  }
}
