import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertDType, cast, formatShape, noGrad, tensor, type DType, type Module, type Tensor } from '@mamba-ts/tensor';
import { openCheckpoint, type SafetensorsCheckpoint } from '@mamba-ts/tensor/node';
import { parseGPTNeoXConfig, type GPTNeoXConfig } from './config.js';
import { GPTNeoXModel } from './model.js';

export interface LoadOptions {
  /** Parameter dtype after loading (default f32). Checkpoint values are converted with round-to-nearest-even. */
  dtype?: DType;
}

/** Buffers that old GPT-NeoX checkpoints store but that are recomputed here (causal mask, rotary frequencies). */
const IGNORED_BUFFER = /(\.attention\.bias|\.attention\.masked_bias|\.inv_freq)$/;

export async function readGPTNeoXConfig(dir: string): Promise<GPTNeoXConfig> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new Error(`${path}: cannot read the model config; point at a Hugging Face GPT-NeoX checkpoint directory.`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message}).`);
  }
  return parseGPTNeoXConfig(json, path);
}

/** Loads config.json and model.safetensors (or a sharded index) from a Hugging Face GPT-NeoX / Pythia directory. */
export async function loadGPTNeoX(dir: string, { dtype = 'f32' }: LoadOptions = {}): Promise<GPTNeoXModel> {
  assertDType(dtype, 'loadGPTNeoX dtype');
  if (dtype === 'i32') throw new Error('loadGPTNeoX: dtype must be f32, f16 or bf16, not i32.');
  const config = await readGPTNeoXConfig(dir);
  const checkpoint = await openCheckpoint(dir);
  const model = new GPTNeoXModel(config);
  try {
    await loadWeights(model, checkpoint, dtype);
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    await checkpoint.close();
  }
  return model;
}

/**
 * Replaces every parameter of `module` with the checkpoint tensor of the same name. A missing tensor or a shape
 * mismatch is an error naming the tensor; tensors the model does not use are returned.
 */
export async function loadWeights(module: Module, checkpoint: SafetensorsCheckpoint, dtype: DType = 'f32'): Promise<{ unused: string[] }> {
  const params = [...module.namedParameters()];
  for (const [name, param] of params) {
    if (!checkpoint.has(name)) {
      throw new Error(`${checkpoint.source}: tensor "${name}" (shape ${formatShape(param.shape)}) is missing; is this a GPT-NeoX checkpoint matching config.json?`);
    }
    const info = checkpoint.info(name);
    if (info.shape.join() !== param.shape.join()) {
      throw new Error(`${checkpoint.source}: tensor "${name}" has shape ${formatShape(info.shape)}, but config.json implies ${formatShape(param.shape)}.`);
    }
    const value = toTensor(await checkpoint.get(name), name, checkpoint.source, dtype);
    param.assign(value);
  }
  const used = new Set(params.map(([name]) => name));
  return { unused: checkpoint.names().filter((n) => !used.has(n) && !IGNORED_BUFFER.test(n)) };
}

function toTensor(st: Awaited<ReturnType<SafetensorsCheckpoint['get']>>, name: string, source: string, dtype: DType): Tensor {
  return noGrad(() => {
    let t: Tensor;
    if (st.dtype === 'F32' || st.dtype === 'F16' || st.dtype === 'BF16') {
      const stored: DType = st.dtype === 'F32' ? 'f32' : st.dtype === 'F16' ? 'f16' : 'bf16';
      t = tensor(st.data as Float32Array | Uint16Array, st.shape, stored);
    } else if (st.dtype === 'F64') {
      t = tensor(Float32Array.from(st.data as Float64Array), st.shape, 'f32');
    } else {
      throw new Error(`${source}: tensor "${name}" has dtype ${st.dtype}; expected F32, F16, BF16 or F64.`);
    }
    if (t.dtype === dtype) return t;
    const converted = cast(t, dtype);
    t.dispose();
    return converted;
  });
}
