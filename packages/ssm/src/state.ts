import { concat, narrow, readSafetensors, serializeSafetensors, tensor, type Tensor } from '@mamba-ts/tensor';

/** Recurrent state of one layer: the last W−1 pre-conv inputs and the SSM state. */
export interface LayerState {
  /** (B, E, W−1), oldest first, in the compute dtype. */
  conv: Tensor;
  /** (B, E, N), always f32. */
  ssm: Tensor;
}

/**
 * The whole model's recurrent state: constant size per sequence whatever the context length. Produced by a
 * prefill, advanced by `step`, and can be cloned, split by sequence, joined, saved and restored.
 */
export class MambaState {
  constructor(readonly layers: LayerState[]) {}

  get batch(): number {
    return this.layers[0]?.ssm.shape[0] ?? 0;
  }

  /** Keeps every tensor out of the enclosing tidy scope. */
  keep(): this {
    for (const l of this.layers) {
      l.conv.keep();
      l.ssm.keep();
    }
    return this;
  }

  clone(): MambaState {
    return new MambaState(this.layers.map((l) => ({ conv: copy(l.conv), ssm: copy(l.ssm) }))).keep();
  }

  /** The state of sequences [start, start + count). */
  slice(start: number, count = 1): MambaState {
    return new MambaState(
      this.layers.map((l) => ({ conv: narrow(l.conv, 0, start, count), ssm: narrow(l.ssm, 0, start, count) })),
    ).keep();
  }

  /** Stacks states of several batches along the batch axis. */
  static concat(states: readonly MambaState[]): MambaState {
    const layers = states[0].layers.map((_, i) => ({
      conv: concat(states.map((s) => s.layers[i].conv), 0),
      ssm: concat(states.map((s) => s.layers[i].ssm), 0),
    }));
    return new MambaState(layers).keep();
  }

  /** Bytes in the safetensors format (`layers.N.conv`, `layers.N.ssm`). */
  async toBytes(): Promise<Uint8Array> {
    const entries: [string, { dtype: string; shape: number[]; data: ArrayBufferView }][] = [];
    for (const [i, l] of this.layers.entries()) {
      for (const [name, t] of [['conv', l.conv], ['ssm', l.ssm]] as const) {
        entries.push([`layers.${i}.${name}`, { dtype: SAFETENSORS_DTYPE[t.dtype], shape: [...t.shape], data: await t.data() }]);
      }
    }
    return serializeSafetensors(entries as never, { format: 'mamba-ts-state', layers: String(this.layers.length) });
  }

  static fromBytes(bytes: Uint8Array, source = 'state'): MambaState {
    const file = readSafetensors(bytes, source);
    const count = Number(file.metadata.layers);
    if (file.metadata.format !== 'mamba-ts-state' || !Number.isInteger(count)) {
      throw new Error(`${source}: not a saved Mamba state (metadata format "mamba-ts-state" missing).`);
    }
    const load = (name: string): Tensor => {
      const t = file.get(name);
      const dtype = DTYPE_OF[t.dtype];
      if (!dtype) throw new Error(`${source}: tensor "${name}" has unsupported dtype ${t.dtype}.`);
      return tensor(t.data as never, t.shape, dtype);
    };
    return new MambaState(
      Array.from({ length: count }, (_, i) => ({ conv: load(`layers.${i}.conv`), ssm: load(`layers.${i}.ssm`) })),
    ).keep();
  }

  dispose(): void {
    for (const l of this.layers) {
      l.conv.dispose();
      l.ssm.dispose();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function copy(t: Tensor): Tensor {
  return narrow(t, 0, 0, t.shape[0]);
}

const SAFETENSORS_DTYPE = { f32: 'F32', f16: 'F16', bf16: 'BF16', i32: 'I32' } as const;
const DTYPE_OF: Record<string, 'f32' | 'f16' | 'bf16' | 'i32' | undefined> = { F32: 'f32', F16: 'f16', BF16: 'bf16', I32: 'i32' };
