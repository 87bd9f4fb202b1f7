import type { DType } from '../dtype.js';
import { engine } from '../engine.js';
import { cast } from '../ops/math.js';
import type { Tensor } from '../tensor.js';
import { formatShape, shapesEqual } from '../shape.js';

/** A trainable (or frozen) tensor slot whose value can be replaced, e.g. by an optimizer step. */
export class Parameter {
  #value: Tensor;
  #cast: Tensor | null = null;
  requiresGrad: boolean;

  constructor(value: Tensor, { requiresGrad = true }: { requiresGrad?: boolean } = {}) {
    this.#value = value.keep();
    this.requiresGrad = requiresGrad;
  }

  get value(): Tensor {
    return this.#value;
  }

  /**
   * The value in `dtype` (e.g. an f32 master weight for a bf16 matmul), owned by the parameter or the current scope:
   * do not dispose it. A frozen parameter's copy is made once and kept until the value changes or the parameter is
   * unfrozen, so frozen weights are not cast again every step.
   */
  as(dtype: DType): Tensor {
    if (this.#value.dtype === dtype) return this.#value;
    if (this.requiresGrad) {
      this.#dropCast();
      return cast(this.#value, dtype);
    }
    if (this.#cast?.dtype !== dtype || this.#cast.isDisposed) {
      this.#cast?.dispose();
      this.#cast = engine().noGrad(() => cast(this.#value, dtype)).keep();
    }
    return this.#cast;
  }

  get shape(): readonly number[] {
    return this.#value.shape;
  }

  /** Replaces the value (disposing the old one); the shape must stay the same. */
  assign(value: Tensor): void {
    if (!shapesEqual(value.shape, this.#value.shape)) {
      throw new Error(`Parameter.assign: new shape ${formatShape(value.shape)} differs from ${formatShape(this.#value.shape)}.`);
    }
    if (value === this.#value) return;
    value.keep();
    this.#value.dispose();
    this.#value = value;
    this.#dropCast();
  }

  dispose(): void {
    this.#value.dispose();
    this.#dropCast();
  }

  #dropCast(): void {
    this.#cast?.dispose();
    this.#cast = null;
  }
}

/**
 * A tree of parameters and submodules. Paths are dotted like Hugging Face names
 * (`backbone.layers.3.mixer.in_proj.weight`) so checkpoints and adapters map one to one.
 */
export class Module {
  readonly #params = new Map<string, Parameter>();
  readonly #children = new Map<string, Module>();

  protected registerParameter(name: string, value: Tensor, opts?: { requiresGrad?: boolean }): Parameter {
    const p = new Parameter(value, opts);
    this.#params.get(name)?.dispose();
    this.#params.set(name, p);
    return p;
  }

  protected registerModule<M extends Module>(name: string, module: M): M {
    this.#children.set(name, module);
    return module;
  }

  /** A direct child by name, looked up on each call so that replaced (wrapped) children take effect. */
  protected child<M extends Module>(name: string): M {
    const m = this.#children.get(name);
    if (!m) throw new Error(`${this.constructor.name} has no submodule "${name}".`);
    return m as M;
  }

  /** Replaces a direct child (used to wrap modules, e.g. with LoRA). */
  replaceChild(name: string, module: Module): void {
    if (!this.#children.has(name)) throw new Error(`replaceChild: no submodule named "${name}".`);
    this.#children.set(name, module);
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.#children) yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  *namedParameters(prefix = ''): Generator<[string, Parameter]> {
    for (const [name, p] of this.#params) yield [prefix ? `${prefix}.${name}` : name, p];
    for (const [name, child] of this.#children) yield* child.namedParameters(prefix ? `${prefix}.${name}` : name);
  }

  parameters(): Parameter[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  trainableParameters(): Parameter[] {
    return this.parameters().filter((p) => p.requiresGrad);
  }

  parameterCount({ trainableOnly = false } = {}): number {
    return (trainableOnly ? this.trainableParameters() : this.parameters()).reduce((n, p) => n + p.value.size, 0);
  }

  getModule(path: string): Module | undefined {
    if (path === '') return this;
    let m: Module | undefined = this;
    for (const part of path.split('.')) m = m === undefined ? undefined : m.#children.get(part);
    return m;
  }

  getParameter(path: string): Parameter | undefined {
    const dot = path.lastIndexOf('.');
    const owner = dot < 0 ? this : this.getModule(path.slice(0, dot));
    return owner === undefined ? undefined : owner.#params.get(path.slice(dot + 1));
  }

  /** Parameter values by dotted path. The tensors are the live parameters, not copies. */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters()].map(([name, p]) => [name, p.value]));
  }

  /** Frees every parameter. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }
}

/** A numbered list of submodules (`layers.0`, `layers.1`, …). */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];

  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.registerModule(String(i), m));
  }

  override replaceChild(name: string, module: Module): void {
    super.replaceChild(name, module);
    this.items[Number(name)] = module as M;
  }
}

export function noGrad<T>(f: () => T): T {
  return engine().noGrad(f);
}
