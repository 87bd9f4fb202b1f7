import type { Backend, CapturedGraph, KernelFunc, TensorInfo } from './backend.js';
import type { TensorData } from './dtype.js';
import { formatShape, shapesEqual, sizeOf, type Shape } from './shape.js';
import { Tensor, type Storage } from './tensor.js';

export interface GradContext {
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly attrs: Record<string, unknown>;
  /** Per input: whether its gradient is used (it depends on a watched tensor); the others may be left null. */
  readonly needsGrad: readonly boolean[];
}

/**
 * Which of a kernel's tensors its gradient reads the values of (indices, or 'all'). Tensors no gradient reads are
 * freed when the forward pass ends; their shapes and dtypes stay readable. Default: all inputs and outputs.
 */
export interface GradSaves {
  inputs?: 'all' | readonly number[];
  outputs?: 'all' | readonly number[];
}

/** Saves fixed per kernel, or chosen per node from which inputs need a gradient (e.g. matmul with a frozen weight). */
export type GradSavesRule = GradSaves | ((needsGrad: readonly boolean[]) => GradSaves);

/** Maps the gradients of a kernel's outputs to the gradients of its inputs (null where none flows). */
export type GradFunc = (dys: readonly (Tensor | null)[], ctx: GradContext) => readonly (Tensor | null | undefined)[];

export interface MemoryInfo {
  backend: string;
  liveBytes: number;
  peakBytes: number;
  reservedBytes: number;
  liveTensors: number;
}

interface TapeNode extends Omit<GradContext, 'needsGrad'> {
  readonly kernel: string;
  /** What the gradient reads, resolved when the node was recorded. */
  readonly saves: GradSaves;
}

interface Tape {
  nodes: TapeNode[];
  /** Ids of tensors that depend on a watched tensor. */
  tracked: Set<number>;
  /** Tensors recorded gradients read: a nested tidy must not dispose them before backprop. */
  held: Set<Tensor>;
}

type Scope = Set<Tensor>;

const CHECKPOINT = '__checkpoint';

/**
 * Owns the backends, the kernel and gradient registries, the autograd tape and the tidy scopes.
 * One engine per process (stored on globalThis, so duplicate copies of this module still share it).
 */
export class Engine {
  readonly #backends = new Map<string, Backend>();
  readonly #kernels = new Map<string, Map<string, KernelFunc>>();
  readonly #gradients = new Map<string, GradFunc>();
  readonly #saves = new Map<string, GradSavesRule>();
  readonly #fallbacks = new Map<string, number>();
  readonly #liveTensors = new Map<string, number>();
  readonly #scopes: Scope[] = [];
  #active: Backend | null = null;
  #tape: Tape | null = null;
  #gradDisabled = 0;

  // ---- backends ----

  registerBackend(backend: Backend, { activate = false }: { activate?: boolean } = {}): void {
    this.#backends.set(backend.name, backend);
    if (activate || !this.#active) this.#active = backend;
  }

  setBackend(name: string): void {
    this.#active = this.findBackend(name);
  }

  getBackend(): Backend {
    if (!this.#active) throw new Error('No backend is registered; import @mamba-ts/tensor (which registers "cpu") first.');
    return this.#active;
  }

  findBackend(name: string): Backend {
    const backend = this.#backends.get(name);
    if (!backend) {
      throw new Error(`Unknown backend "${name}"; registered backends: ${[...this.#backends.keys()].join(', ')}.`);
    }
    return backend;
  }

  backendNames(): string[] {
    return [...this.#backends.keys()];
  }

  async sync(): Promise<void> {
    await this.getBackend().sync();
  }

  // ---- registries ----

  registerKernel(backendName: string, kernelName: string, fn: KernelFunc): void {
    let table = this.#kernels.get(backendName);
    if (!table) this.#kernels.set(backendName, (table = new Map()));
    table.set(kernelName, fn);
  }

  hasKernel(backendName: string, kernelName: string): boolean {
    return this.#kernels.get(backendName)?.has(kernelName) ?? false;
  }

  kernelNames(backendName: string): string[] {
    return [...(this.#kernels.get(backendName)?.keys() ?? [])].sort();
  }

  registerGradient(kernelName: string, fn: GradFunc, saves: GradSavesRule = {}): void {
    this.#gradients.set(kernelName, fn);
    this.#saves.set(kernelName, saves);
  }

  /** How many times each `backend:kernel` fell back to cpu since the last `resetFallbacks()`. */
  fallbacks(): Record<string, number> {
    return Object.fromEntries(this.#fallbacks);
  }

  resetFallbacks(): void {
    this.#fallbacks.clear();
  }

  // ---- memory ----

  memory(backendName?: string): MemoryInfo {
    const backend = backendName ? this.findBackend(backendName) : this.getBackend();
    const m = backend.memory();
    return {
      backend: backend.name,
      liveBytes: m.liveBytes,
      peakBytes: m.peakBytes,
      reservedBytes: m.reservedBytes ?? 0,
      liveTensors: this.#liveTensors.get(backend.name) ?? 0,
    };
  }

  resetPeak(backendName?: string): void {
    (backendName ? this.findBackend(backendName) : this.getBackend()).resetPeak();
  }

  // ---- tensors ----

  /** Wraps a freshly allocated buffer as a tensor owned by the current scope. */
  makeTensor(info: TensorInfo, backend: Backend): Tensor {
    const storage: Storage = { dataId: info.dataId, backend, dtype: info.dtype, size: sizeOfInfo(info), refs: 1 };
    return this.#track(new Tensor(storage, info.shape, info.dtype));
  }

  /** A new tensor that shares `source`'s storage with another shape of the same size. */
  view(source: Tensor, shape: Shape): Tensor {
    source.assertAlive('reshape');
    source.storage.refs++;
    const t = this.#track(new Tensor(source.storage, shape, source.dtype));
    this.#recordIfTracked('reshape', [source], [t], { shape });
    return t;
  }

  /** Overwrites `t`'s values in place (e.g. the input buffer a captured graph reads). */
  write(t: Tensor, values: TensorData): void {
    const backend = this.#inPlace('write', t, 'write');
    if (values.length !== t.size) throw new Error(`write: ${values.length} values given for a tensor of ${t.size} [${t.shape.join(', ')}].`);
    const kind = t.dtype === 'f32' ? Float32Array : t.dtype === 'i32' ? Int32Array : Uint16Array;
    if (!(values instanceof kind)) throw new Error(`write: a ${t.dtype} tensor takes a ${kind.name}, got a ${values.constructor.name}.`);
    backend.write!(t.storage.dataId, values, t.dtype);
  }

  /** Copies each pair's source over its destination in place (same backend, dtype and size). */
  assign(pairs: readonly (readonly [dst: Tensor, src: Tensor])[]): void {
    if (pairs.length === 0) return;
    const backend = this.#inPlace('assign', pairs[0][0], 'copy');
    backend.copy!(
      pairs.map(([dst, src], i) => {
        dst.assertAlive('assign');
        src.assertAlive('assign');
        if (src.storage.backend !== backend || dst.storage.backend !== backend || src.dtype !== dst.dtype || src.size !== dst.size) {
          throw new Error(
            `assign: pair ${i} copies ${src.dtype}[${src.shape.join(', ')}] on "${src.backend}" over ${dst.dtype}[${dst.shape.join(', ')}] on "${dst.backend}"; both must have the same backend, dtype and size.`,
          );
        }
        return { dst: dst.storage.dataId, src: src.storage.dataId, size: dst.size, dtype: dst.dtype };
      }),
    );
  }

  #inPlace(what: string, t: Tensor, method: 'write' | 'copy'): Backend {
    t.assertAlive(what);
    const backend = t.storage.backend;
    if (!backend[method]) throw new Error(`${what}: backend "${backend.name}" cannot overwrite tensors in place.`);
    return backend;
  }

  /** Whether the current backend can capture work into a replayable graph (`capture`). */
  canCapture(): boolean {
    return typeof this.getBackend().capture === 'function';
  }

  /**
   * Runs `f` (no gradients) while recording every kernel it launches into a graph. The recorded kernels do not run
   * yet: `graph.replay()` runs them, each time on the same buffers, reading the inputs' current values and
   * overwriting `result`'s tensors. Inputs must stay alive while the graph is used; feed new values with
   * `write`/`assign` between replays.
   */
  capture<T>(f: () => T): { result: T; graph: CapturedGraph } {
    const backend = this.getBackend();
    if (!backend.capture) {
      throw new Error(`capture: backend "${backend.name}" cannot capture work into a graph; check engine().canCapture() first.`);
    }
    if (this.#tape) throw new Error('capture: gradients cannot be recorded inside a capture; capture inference work only.');
    let result: T | undefined;
    let graph: CapturedGraph;
    try {
      graph = backend.capture(() => {
        result = this.noGrad(() => this.tidy(f));
      });
    } catch (e) {
      const made = new Set<Tensor>();
      collectTensors(result, made);
      for (const t of made) t.dispose();
      throw e;
    }
    return { result: result as T, graph };
  }

  releaseTensor(t: Tensor): void {
    const storage = t.storage;
    storage.refs--;
    if (storage.refs === 0) storage.backend.free(storage.dataId);
    this.#liveTensors.set(t.backend, (this.#liveTensors.get(t.backend) ?? 1) - 1);
    for (const scope of this.#scopes) scope.delete(t);
  }

  keep(t: Tensor): void {
    for (const scope of this.#scopes) scope.delete(t);
  }

  #track(t: Tensor): Tensor {
    this.#liveTensors.set(t.backend, (this.#liveTensors.get(t.backend) ?? 0) + 1);
    this.#scopes.at(-1)?.add(t);
    return t;
  }

  // ---- kernels ----

  runKernel(kernelName: string, inputs: readonly Tensor[], attrs: Record<string, unknown> = {}): Tensor[] {
    const backend = this.#backendOf(kernelName, inputs);
    const infos = inputs.map(toInfo);
    const fn = this.#kernels.get(backend.name)?.get(kernelName);
    const outInfos = fn ? fn(infos, attrs, backend) : this.#fallback(kernelName, infos, attrs, backend);
    const outputs = outInfos.map((info) => this.makeTensor(info, backend));
    this.#recordIfTracked(kernelName, inputs, outputs, attrs);
    return outputs;
  }

  #backendOf(kernelName: string, inputs: readonly Tensor[]): Backend {
    for (const t of inputs) t.assertAlive(kernelName);
    const backend = inputs.length > 0 ? inputs[0].storage.backend : this.getBackend();
    for (const [i, t] of inputs.entries()) {
      if (t.storage.backend !== backend) {
        throw new Error(
          `${kernelName}: input ${i} lives on backend "${t.backend}" but input 0 on "${backend.name}"; copy one with "await toBackend(tensor, name)" first.`,
        );
      }
    }
    return backend;
  }

  /** Runs a kernel the backend lacks on cpu, with explicit copies both ways, and counts it. */
  #fallback(kernelName: string, infos: TensorInfo[], attrs: Record<string, unknown>, backend: Backend): TensorInfo[] {
    const cpu = this.#backends.get('cpu');
    const cpuKernel = this.#kernels.get('cpu')?.get(kernelName);
    if (!cpu || !cpuKernel) throw new Error(`No backend has kernel "${kernelName}": neither "${backend.name}" nor cpu registers it.`);
    if (backend === cpu) throw new Error(`The cpu backend registers no kernel "${kernelName}".`);
    if (!backend.readSync) {
      throw new Error(`Kernel "${kernelName}" is missing on backend "${backend.name}", which cannot read synchronously to fall back to cpu.`);
    }
    const key = `${backend.name}:${kernelName}`;
    this.#fallbacks.set(key, (this.#fallbacks.get(key) ?? 0) + 1);
    const cpuInputs = infos.map((info) => ({
      ...info,
      dataId: cpu.upload(backend.readSync!(info.dataId, info.dtype, sizeOfInfo(info)), info.dtype),
    }));
    try {
      return cpuKernel(cpuInputs, attrs, cpu).map((out) => {
        const values = cpu.readSync!(out.dataId, out.dtype, sizeOfInfo(out));
        cpu.free(out.dataId);
        return { ...out, dataId: backend.upload(values, out.dtype) };
      });
    } finally {
      for (const info of cpuInputs) cpu.free(info.dataId);
    }
  }

  // ---- autograd ----

  #recordIfTracked(kernel: string, inputs: readonly Tensor[], outputs: readonly Tensor[], attrs: Record<string, unknown>): void {
    const tape = this.#tape;
    if (!tape || this.#gradDisabled > 0 || !inputs.some((t) => tape.tracked.has(t.id))) return;
    const rule = this.#saves.get(kernel) ?? {};
    const saves = typeof rule === 'function' ? rule(inputs.map((t) => tape.tracked.has(t.id))) : rule;
    tape.nodes.push({ kernel, inputs, outputs, attrs, saves });
    // Only what the gradient reads is held: a nested tidy may free the rest as soon as its scope ends.
    holdSaved(tape.held, inputs, saves.inputs);
    holdSaved(tape.held, outputs, saves.outputs);
    for (const o of outputs) if (o.dtype !== 'i32') tape.tracked.add(o.id);
  }

  /** Runs `f` without recording anything for autograd. */
  noGrad<T>(f: () => T): T {
    this.#gradDisabled++;
    try {
      return f();
    } finally {
      this.#gradDisabled--;
    }
  }

  /**
   * Evaluates the scalar `f()` and its gradient with respect to each of `xs`. Every tensor created on the way
   * (activations, saved tensors, intermediate gradients) is disposed before returning.
   */
  valueAndGrad(f: () => Tensor, xs: readonly Tensor[]): { value: Tensor; grads: Tensor[] } {
    if (this.#tape) throw new Error('valueAndGrad: nested gradient recording is not supported.');
    return this.tidy(() => {
      const owned = this.#scopes.at(-1)!;
      const tape: Tape = { nodes: [], tracked: new Set(xs.map((x) => x.id)), held: new Set() };
      this.#tape = tape;
      let value: Tensor;
      try {
        value = f();
      } finally {
        this.#tape = null;
      }
      if (!(value instanceof Tensor) || value.size !== 1) {
        throw new Error(`valueAndGrad: the function must return a one-element tensor, got ${describe(value)}.`);
      }
      this.#releaseUnsaved(tape, new Set([value, ...xs]), owned);
      const grads = this.noGrad(() => {
        const seed = this.runKernel('fill', [], { shape: value.shape, dtype: value.dtype, value: 1 })[0];
        const leaves = this.#backprop(tape, new Map([[value.id, seed]]), new Set([value, ...xs]), owned);
        return xs.map((x) => {
          const g = leaves.get(x.id);
          if (!g) return this.runKernel('fill', [], { shape: x.shape, dtype: x.dtype, value: 0 })[0];
          return g.dtype === x.dtype ? g : this.runKernel('cast', [g], { dtype: x.dtype })[0];
        });
      });
      return { value, grads };
    });
  }

  /**
   * Runs `f(...inputs)` keeping none of its activations for the backward pass: only `inputs` are saved, and
   * backprop runs `f` again (recording) before differentiating it. Gradients reach the inputs and every tracked
   * tensor `f` reads from its closure (parameters). Outside gradient recording it is just `f(...inputs)`.
   */
  checkpoint(f: (...inputs: Tensor[]) => Tensor[], inputs: readonly Tensor[]): Tensor[] {
    const tape = this.#tape;
    if (!tape || this.#gradDisabled > 0) return f(...inputs);
    const outputs = this.tidy(() => this.noGrad(() => f(...inputs)));
    tape.nodes.push({ kernel: CHECKPOINT, inputs, outputs, attrs: { fn: f }, saves: { inputs: 'all', outputs: 'all' } });
    for (const t of [...inputs, ...outputs]) tape.held.add(t);
    for (const o of outputs) if (o.dtype !== 'i32') tape.tracked.add(o.id);
    return outputs;
  }

  /**
   * Reverse pass over a tape from `seeds` (gradients of some outputs); returns the gradients that reach leaves
   * (tracked tensors no node of this tape produced). Memory is given back as it goes: a node's output gradients
   * once its input gradients exist, an activation (a tensor in `owned`, not in `keep`) once the earliest node that
   * uses it has been processed. Seeds belong to the caller and are never disposed here.
   */
  #backprop(tape: Tape, seeds: ReadonlyMap<number, Tensor>, keep: ReadonlySet<Tensor>, owned: ReadonlySet<Tensor>): Map<number, Tensor> {
    const grads = new Map<number, Tensor>();
    const gradRefs = new Map<Tensor, number>();
    const setGrad = (id: number, g: Tensor): void => {
      grads.set(id, g);
      gradRefs.set(g, (gradRefs.get(g) ?? 0) + 1);
    };
    const dropGrad = (id: number): void => {
      const g = grads.get(id);
      if (!g) return;
      grads.delete(id);
      const refs = (gradRefs.get(g) ?? 1) - 1;
      if (refs > 0) gradRefs.set(g, refs);
      else {
        gradRefs.delete(g);
        g.dispose();
      }
    };
    const addGrad = (id: number, g: Tensor): void => {
      const prev = grads.get(id);
      if (!prev) return setGrad(id, g);
      const sum = this.runKernel('add', [prev, g])[0];
      dropGrad(id);
      setGrad(id, sum);
    };
    for (const [id, g] of seeds) {
      setGrad(id, g);
      gradRefs.set(g, gradRefs.get(g)! + 1); // the caller's: never reaches zero here
    }
    const lastNeededAt = new Map<Tensor, number>();
    tape.nodes.forEach((n, i) => {
      for (const t of [...n.inputs, ...n.outputs]) if (!lastNeededAt.has(t)) lastNeededAt.set(t, i);
    });

    for (let i = tape.nodes.length - 1; i >= 0; i--) {
      const node = tape.nodes[i];
      const dys = node.outputs.map((o) => grads.get(o.id) ?? null);
      if (dys.some((d) => d !== null)) {
        if (node.kernel === CHECKPOINT) {
          for (const [id, g] of this.#recompute(node, dys, tape.tracked)) {
            if (tape.tracked.has(id)) addGrad(id, g);
            else g.dispose();
          }
        } else {
          const gradFn = this.#gradients.get(node.kernel);
          if (!gradFn) throw new Error(`No gradient is registered for kernel "${node.kernel}".`);
          const needsGrad = node.inputs.map((t) => tape.tracked.has(t.id));
          const dxs = this.tidy(() => gradFn(dys, { ...node, needsGrad })); // frees the gradient's own temporaries
          const unused = new Set<Tensor>();
          node.inputs.forEach((input, k) => {
            const dx = dxs[k];
            if (!dx) return;
            if (!tape.tracked.has(input.id)) {
              unused.add(dx);
              return;
            }
            if (!shapesEqual(dx.shape, input.shape)) {
              throw new Error(
                `Gradient of "${node.kernel}" input ${k} has shape ${formatShape(dx.shape)}, expected ${formatShape(input.shape)}.`,
              );
            }
            addGrad(input.id, dx);
          });
          // A gradient nobody asked for (a kernel that computes all of its inputs' at once) goes now, not at the end.
          for (const dx of unused) {
            if (!gradRefs.has(dx) && !keep.has(dx) && !node.inputs.includes(dx) && !node.outputs.includes(dx)) dx.dispose();
          }
        }
        for (const o of node.outputs) dropGrad(o.id);
      }
      for (const t of [...node.inputs, ...node.outputs]) {
        if (lastNeededAt.get(t) === i && owned.has(t) && !keep.has(t) && !gradRefs.has(t)) t.dispose();
      }
    }
    return grads;
  }

  /** Frees, at the end of the forward pass, every activation no gradient will read (see `GradSaves`). */
  #releaseUnsaved(tape: Tape, keep: ReadonlySet<Tensor>, owned: ReadonlySet<Tensor>): void {
    const needed = new Set<Tensor>();
    for (const node of tape.nodes) {
      if (node.kernel === CHECKPOINT) {
        holdSaved(needed, node.inputs, 'all'); // the recomputation reads them
        continue;
      }
      holdSaved(needed, node.inputs, node.saves.inputs);
      holdSaved(needed, node.outputs, node.saves.outputs);
    }
    for (const node of tape.nodes) {
      for (const t of [...node.inputs, ...node.outputs]) if (!needed.has(t) && owned.has(t) && !keep.has(t)) t.dispose();
    }
  }

  /** The backward of a checkpoint node: run its function again while recording, then backprop through that. */
  #recompute(node: TapeNode, dys: readonly (Tensor | null)[], outerTracked: ReadonlySet<number>): Map<number, Tensor> {
    const f = node.attrs.fn as (...inputs: Tensor[]) => Tensor[];
    const disabled = this.#gradDisabled;
    return this.tidy(() => {
      const owned = this.#scopes.at(-1)!;
      // Only the inputs tracked outside: an input that needs no gradient must not bring back work gradients skip.
      const tape: Tape = { nodes: [], tracked: new Set(outerTracked), held: new Set() };
      this.#tape = tape;
      this.#gradDisabled = 0;
      let outputs: Tensor[];
      try {
        outputs = f(...node.inputs);
      } finally {
        this.#tape = null;
        this.#gradDisabled = disabled;
      }
      const seeds = new Map<number, Tensor>();
      outputs.forEach((o, k) => dys[k] && seeds.set(o.id, dys[k]!));
      const leaves = this.#backprop(tape, seeds, new Set(), owned);
      for (const id of seeds.keys()) leaves.delete(id); // an output f did not compute (e.g. an input passed through)
      return leaves;
    });
  }

  // ---- scopes ----

  /** Runs `f`; disposes every tensor it created except those it returns (found in arrays and plain objects). */
  tidy<T>(f: () => T): T {
    const scope: Scope = new Set();
    this.#scopes.push(scope);
    let result: T;
    try {
      result = f();
    } catch (e) {
      this.#scopes.pop();
      for (const t of scope) t.dispose();
      throw e;
    }
    this.#scopes.pop();
    if (result instanceof Promise) {
      throw new Error('tidy: the function returned a Promise; tidy only works with synchronous functions.');
    }
    const kept = new Set<Tensor>();
    collectTensors(result, kept);
    const held = this.#tape?.held;
    if (held) for (const t of scope) if (held.has(t)) kept.add(t);
    for (const t of scope) if (!kept.has(t)) t.dispose();
    const parent = this.#scopes.at(-1);
    if (parent) for (const t of kept) if (!t.isDisposed && scope.has(t)) parent.add(t);
    return result;
  }

}

function toInfo(t: Tensor): TensorInfo {
  return { dataId: t.storage.dataId, shape: t.shape, dtype: t.dtype };
}

const sizeOfInfo = (info: { shape: Shape }): number => sizeOf(info.shape);

function collectTensors(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (value instanceof Tensor) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, out, depth + 1);
    return;
  }
  if (value instanceof Map) {
    for (const v of value.values()) collectTensors(v, out, depth + 1);
    return;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, out, depth + 1);
  }
}

function describe(v: unknown): string {
  return v instanceof Tensor ? `shape ${formatShape(v.shape)}` : typeof v;
}

const ENGINE_KEY = Symbol.for('@mamba-ts/tensor.engine');

/** Adds the tensors of `list` a gradient reads (`which`: indices, or all when absent) to `into`. */
function holdSaved(into: Set<Tensor>, list: readonly Tensor[], which: 'all' | readonly number[] | undefined): void {
  if (which === undefined || which === 'all') for (const t of list) into.add(t);
  else for (const k of which) if (list[k]) into.add(list[k]);
}

export function engine(): Engine {
  const g = globalThis as unknown as Record<symbol, Engine | undefined>;
  return (g[ENGINE_KEY] ??= new Engine());
}
