import {
  Embedding, Linear, add, argmax, cast, convStep, embedding, engine, matmul, reshape, residualRmsNorm, ssmStep, zeros,
  type CapturedGraph, type DType, type Tensor,
} from '@mamba-ts/tensor';
import type { MambaLM } from './model.js';
import { MambaState } from './state.js';

/** The inference kernels the fused step uses; it runs only where the backend has them natively. */
const FUSED_KERNELS = ['residualRmsNorm', 'convStep', 'ssmStep'] as const;

interface Projection {
  weight: Tensor;
  bias: Tensor | null;
}

interface LayerWeights {
  norm: Tensor;
  inProj: Projection;
  convWeight: Tensor;
  convBias: Tensor | null;
  xProj: Projection;
  dtWeight: Tensor;
  dtBias: Tensor | null;
  ALog: Tensor;
  D: Tensor;
  outProj: Projection;
}

interface StepWeights {
  /** The compute dtype the weights were cast to. */
  dtype: DType;
  embeddings: Tensor;
  layers: LayerWeights[];
  normF: Tensor;
  head: Tensor;
  copies: Tensor[];
}

export interface DecoderOptions {
  /** Start from this state (e.g. after `prefill`); it is copied. Default: the zero state. */
  state?: MambaState | null;
  /**
   * Record the step once as a graph and replay it (CUDA graphs: one native call per token) where the backend can
   * capture. Default true.
   */
  capture?: boolean;
}

/**
 * Token-by-token decoding for a batch of sequences with fixed buffers. Each step reads the ids in its input buffer,
 * advances the state in place and leaves the logits (B, V, f32) and their argmax, which is also written back as the
 * next input: `advance()` continues greedily without the host seeing the logits. Where the backend can capture, the
 * step is recorded once and replayed with one call; with plain `Linear`/`Embedding` projections and a backend that
 * has the fused decode kernels, a layer is six kernels: residualRmsNorm, in_proj, convStep, x_proj, ssmStep, out_proj.
 * The weights are taken (cast to the compute dtype) when the decoder is made: make a new one after training.
 */
export class Decoder {
  readonly batch: number;
  readonly #model: MambaLM;
  readonly #weights: StepWeights | null;
  readonly #ids: Tensor;
  readonly #state: MambaState;
  #logits: Tensor | null = null;
  #graph: CapturedGraph | null = null;
  #capture: boolean;
  #disposed = false;

  constructor(model: MambaLM, batch: number, { state, capture = true }: DecoderOptions = {}) {
    if (!Number.isInteger(batch) || batch < 1) throw new Error(`Decoder: batch must be a positive integer, got ${batch}.`);
    if (state && state.batch !== batch) throw new Error(`Decoder: the state holds ${state.batch} sequences but batch is ${batch}.`);
    this.batch = batch;
    this.#model = model;
    this.#capture = capture && engine().canCapture();
    this.#weights = fusedWeights(model);
    this.#ids = zeros([batch], 'i32').keep();
    this.#state = (state ? state.clone() : model.emptyState(batch)).keep();
  }

  /** Whether steps run as a replayed graph (after the first). */
  get captured(): boolean {
    return this.#capture;
  }

  /** Whether each layer runs the fused decode kernels (else the model's own `step`). */
  get fused(): boolean {
    return this.#weights !== null;
  }

  /** Runs one step on `ids` (one per sequence). */
  feed(ids: Int32Array | readonly number[]): void {
    this.#check();
    if (ids.length !== this.batch) throw new Error(`Decoder.feed: ${ids.length} ids given for a batch of ${this.batch}.`);
    const V = this.#model.config.vocabSize;
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`Decoder.feed: id ${id} at position ${i} is outside the vocabulary [0, ${V}).`);
    });
    engine().write(this.#ids, ids instanceof Int32Array ? ids : Int32Array.from(ids));
    this.#run();
  }

  /** Runs one step on the previous step's argmax (greedy decoding, entirely on the device). */
  advance(): void {
    this.#check();
    if (!this.#logits) throw new Error('Decoder.advance: no step has run yet; feed() the first ids.');
    this.#run();
  }

  /** The last step's logits (B, V) in f32; overwritten by the next step. */
  get logits(): Tensor {
    this.#check();
    if (!this.#logits) throw new Error('Decoder.logits: no step has run yet; feed() the first ids.');
    return this.#logits;
  }

  /** The last step's argmax per sequence (the next greedy ids). */
  async argmax(): Promise<Int32Array> {
    this.#check();
    return (await this.#ids.data()) as Int32Array;
  }

  /** A copy of the current state. */
  state(): MambaState {
    this.#check();
    return this.#state.clone();
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#graph?.dispose();
    this.#logits?.dispose();
    this.#ids.dispose();
    this.#state.dispose();
    for (const t of this.#weights?.copies ?? []) t.dispose();
  }

  #check(): void {
    if (this.#disposed) throw new Error('Decoder: used after dispose().');
  }

  #run(): void {
    if (this.#graph) {
      this.#graph.replay();
      return;
    }
    // The first step runs eagerly (its GEMM plans get chosen outside a capture); the second is recorded, then replayed.
    if (this.#capture && this.#logits) {
      let captured: { result: Tensor; graph: CapturedGraph };
      try {
        captured = engine().capture(() => this.#stepInPlace());
      } catch (e) {
        this.#capture = false; // later steps run eagerly instead of failing the same way again
        throw e;
      }
      const { result, graph } = captured;
      this.#graph = graph;
      this.#logits.dispose();
      this.#logits = result.keep();
      graph.replay();
      return;
    }
    const logits = engine().noGrad(() => engine().tidy(() => this.#stepInPlace()));
    this.#logits?.dispose();
    this.#logits = logits.keep();
  }

  /** One step that leaves its new state and argmax in the input buffers; returns the logits. */
  #stepInPlace(): Tensor {
    const { logits, state } = this.#compute();
    const next = argmax(logits);
    // The fused kernels wrote the state in place; model.step made a new one, copied over the old.
    const stateCopies = state === this.#state ? [] : this.#state.layers.flatMap((layer, i) => [
      [layer.conv, state.layers[i].conv] as const,
      [layer.ssm, state.layers[i].ssm] as const,
    ]);
    engine().assign([...stateCopies, [this.#ids, next]]);
    return logits;
  }

  /** One step on the current ids and state (the fused kernels overwrite the state; model.step makes a new one). */
  #compute(): { logits: Tensor; state: MambaState } {
    return this.#weights ? fusedStep(this.#model, this.#weights, this.#ids, this.#state) : this.#model.step(this.#ids, this.#state);
  }
}

/**
 * The recurrent step of every layer with the fused kernels, advancing `state` in place: per layer
 *   sum, u   = residualRmsNorm(residual, previous out)        u in the compute dtype
 *   xz       = in_proj(u)
 *   x, conv' = convStep(xz, conv)                             x = silu(conv(x part of xz))
 *   δBC      = x_proj(x)
 *   y, h'    = ssmStep(h, x, xz, δBC)                         dt_proj, softplus, A = −exp(A_log), D, gate silu(z)
 *   out      = out_proj(y)
 * with conv' and h' written over conv and h.
 */
function fusedStep(model: MambaLM, w: StepWeights, ids: Tensor, state: MambaState): { logits: Tensor; state: MambaState } {
  const { layerNormEpsilon: eps, residualInFp32 } = model.config;
  const { dtype } = w;
  let residual = cast(embedding(w.embeddings, ids), residualInFp32 ? 'f32' : dtype);
  let update: Tensor | null = null;
  w.layers.forEach((layer, i) => {
    const { conv, ssm } = state.layers[i];
    const { sum, normed } = residualRmsNorm({ residual, update, weight: layer.norm, eps, outDtype: dtype });
    residual = sum;
    const xz = project(normed, layer.inProj);
    const { x } = convStep({ xz, convState: conv, weight: layer.convWeight, bias: layer.convBias, silu: true, inPlace: true });
    const dbc = project(x, layer.xProj);
    const { y } = ssmStep({
      state: ssm, x, xz, dbc, dtWeight: layer.dtWeight, dtBias: layer.dtBias, ALog: layer.ALog, D: layer.D, deltaSoftplus: true, inPlace: true,
    });
    update = project(y, layer.outProj);
  });
  const { normed } = residualRmsNorm({ residual, update, weight: w.normF, eps, outDtype: dtype });
  return { logits: cast(matmul(normed, w.head, { transB: true }), 'f32'), state };
}

function project(x: Tensor, p: Projection): Tensor {
  const y = matmul(x, p.weight, { transB: true });
  return p.bias ? add(y, p.bias) : y;
}

/**
 * The weights of the fused step in the compute dtype, or null where it cannot run: a projection that is not a
 * plain Linear/Embedding (e.g. an unmerged LoRA adapter) or a backend without the fused kernels. Every tensor is the
 * decoder's own (a cast or a view that keeps the parameter's storage alive); `copies` lists them for dispose.
 */
function fusedWeights(model: MambaLM): StepWeights | null {
  const e = engine();
  const backend = e.getBackend().name;
  if (!FUSED_KERNELS.every((k) => e.hasKernel(backend, k))) return null;
  const { embeddings } = model.backbone;
  const head = model.config.tieWordEmbeddings ? embeddings : model.getModule('lm_head');
  const mixers = model.backbone.layers.items.map((b) => b.mixer);
  const plain = (m: unknown) => m instanceof Linear;
  if (!(embeddings instanceof Embedding) || !(head instanceof Linear || head instanceof Embedding)) return null;
  if (!mixers.every((m) => plain(m.in_proj) && plain(m.x_proj) && plain(m.dt_proj) && plain(m.out_proj))) return null;

  const dtype = model.computeDType;
  const copies: Tensor[] = [];
  const copy = (t: Tensor): Tensor => {
    copies.push(t.keep());
    return t;
  };
  // Views (not copies) of the parameters the step reads as they are: a captured graph must never outlive them.
  const own = (t: Tensor): Tensor => copy(reshape(t, t.shape));
  const asCompute = (t: Tensor): Tensor => copy(t.dtype === dtype ? reshape(t, t.shape) : cast(t, dtype));
  const linear = (m: unknown): Projection => {
    const { weight, bias } = m as Linear;
    return { weight: asCompute(weight.value), bias: bias ? asCompute(bias.value) : null };
  };
  const layers = model.backbone.layers.items.map(({ norm, mixer: m }): LayerWeights => ({
    norm: own(norm.weight.value),
    inProj: linear(m.in_proj),
    convWeight: copy(m.conv1d.kernel()),
    convBias: m.conv1d.bias ? own(m.conv1d.bias.value) : null,
    xProj: linear(m.x_proj),
    dtWeight: own((m.dt_proj as unknown as Linear).weight.value),
    dtBias: m.dt_proj.bias ? own(m.dt_proj.bias.value) : null,
    ALog: own(m.A_log.value),
    D: own(m.D.value),
    outProj: linear(m.out_proj),
  }));
  return {
    dtype,
    embeddings: own(embeddings.weight.value),
    layers,
    normF: own(model.backbone.norm_f.weight.value),
    head: asCompute(head.weight.value),
    copies,
  };
}
