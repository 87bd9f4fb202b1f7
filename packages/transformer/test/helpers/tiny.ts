import { tensor, type Tensor } from '@mamba-ts/tensor';
import { GPTNeoXModel, gptNeoXConfig, type GPTNeoXConfig } from '@mamba-ts/transformer';

export function tinyConfig(fields: Partial<GPTNeoXConfig> = {}): GPTNeoXConfig {
  return gptNeoXConfig({
    vocabSize: 37,
    hiddenSize: 16,
    numHiddenLayers: 2,
    numAttentionHeads: 2,
    intermediateSize: 24,
    rotaryPct: 0.5,
    maxPositionEmbeddings: 32,
    eosTokenId: null,
    bosTokenId: null,
    ...fields,
  });
}

export function tinyModel(fields: Partial<GPTNeoXConfig> = {}, seed = 3): GPTNeoXModel {
  return new GPTNeoXModel(tinyConfig(fields), { seed });
}

export function ids(rows: number[][]): Tensor {
  return tensor(Int32Array.from(rows.flat()), [rows.length, rows[0].length], 'i32');
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
