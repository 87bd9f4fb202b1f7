import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertDType, tidy, tensor, type DType } from '@mamba-ts/tensor';
import { fromPretrained, generate, type GenerateOptions } from '@mamba-ts/ssm';
import { TransformerLM } from '@mamba-ts/transformer';
import { loadAdapter } from '@mamba-ts/peft';
import { mambaLanguageModel, transformerLanguageModel, type ModelScoringOptions, type TokenScoringModel } from '@mamba-ts/eval';
import { UsageError } from './cli-error.js';

/** What the CLI needs of a causal language model, whatever its architecture. */
export interface CliModel {
  readonly kind: string;
  readonly vocabSize: number;
  readonly tokenizer: { encode(text: string): number[]; decode(ids: readonly number[]): string } | null;
  /** Logits (L, V) for one sequence of ids. */
  logits(ids: readonly number[]): Promise<Float32Array>;
  generate(prompt: readonly number[], opts: GenerateOptions): Promise<number[]>;
  /** The model as an lm-evaluation-harness scorer. */
  languageModel(opts: ModelScoringOptions): TokenScoringModel;
  dispose(): void;
}

type Loader = (dir: string, dtype: DType, adapter: string | undefined) => Promise<CliModel>;

const LOADERS: Record<string, Loader> = {
  mamba: async (dir, dtype, adapter) => {
    const { model, tokenizer } = await fromPretrained(dir, { dtype });
    if (adapter) {
      try {
        await loadAdapter(model, adapter);
      } catch (e) {
        model.dispose();
        throw e;
      }
    }
    return {
      kind: 'mamba',
      vocabSize: model.config.vocabSize,
      tokenizer,
      logits: async (ids) => {
        checkIds(ids, model.config.vocabSize);
        const t = tidy(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length], 'i32')).logits);
        try {
          return await t.toFloat32();
        } finally {
          t.dispose();
        }
      },
      generate: async (prompt, opts) => (await generate(model, [prompt], opts))[0],
      languageModel: (opts) => {
        if (!tokenizer) throw new UsageError(`${dir}: no tokenizer.json; evaluation needs it to encode the prompts.`);
        return mambaLanguageModel(model, tokenizer, opts);
      },
      dispose: () => model.dispose(),
    };
  },
  gpt_neox: async (dir, dtype, adapter) => {
    if (adapter) throw new UsageError('--adapter: LoRA adapters are supported for Mamba checkpoints only.');
    const lm = await TransformerLM.fromPretrained(dir, { dtype });
    const vocabSize = lm.config.vocabSize;
    return {
      kind: 'gpt_neox',
      vocabSize,
      tokenizer: lm.tokenizer ? { encode: (t) => lm.encode(t), decode: (ids) => lm.decode(ids) } : null,
      logits: async (ids) => {
        checkIds(ids, vocabSize);
        const t = tidy(() => lm.forward(tensor(Int32Array.from(ids), [1, ids.length], 'i32')));
        try {
          return await t.toFloat32();
        } finally {
          t.dispose();
        }
      },
      generate: async (prompt, opts) => {
        const { ids } = await lm.generate(prompt, {
          maxNewTokens: opts.maxNewTokens,
          temperature: opts.greedy ? 0 : opts.temperature,
          topK: opts.topK,
          topP: opts.topP,
          seed: opts.seed,
          ...(opts.stopTokens ? { eosTokenId: opts.stopTokens[0] ?? null } : {}),
          onToken: (tokens) => tokens.forEach(({ id }) => opts.onToken?.(id, 0)),
        });
        return ids;
      },
      languageModel: (opts) => transformerLanguageModel(lm, opts),
      dispose: () => lm.dispose(),
    };
  },
};

/** Registers the loader of another architecture (e.g. gpt_neox from @mamba-ts/transformer). */
export function registerModelLoader(modelType: string, loader: Loader): void {
  LOADERS[modelType] = loader;
}

export async function loadModel(dir: string, dtypeName: string | undefined, adapter?: string): Promise<CliModel> {
  const dtype = (dtypeName ?? 'f32') as DType;
  try {
    assertDType(dtype, '--dtype');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (dtype === 'i32') throw new UsageError('--dtype must be a floating-point type: f32, bf16 or f16.');
  const configPath = join(dir, 'config.json');
  let modelType: unknown;
  try {
    modelType = JSON.parse(await readFile(configPath, 'utf8')).model_type;
  } catch (e) {
    const what = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : `not valid JSON (${(e as Error).message})`;
    throw new UsageError(`${configPath}: ${what}; --model must be a directory with config.json and model.safetensors.`);
  }
  // Original state-spaces configs carry no model_type; they are Mamba.
  const loader = LOADERS[typeof modelType === 'string' ? modelType : 'mamba'];
  if (!loader) {
    throw new UsageError(`${configPath}: model_type "${String(modelType)}" is not supported; supported: ${Object.keys(LOADERS).join(', ')}.`);
  }
  return loader(dir, dtype, adapter);
}

export function checkIds(ids: readonly number[], vocabSize: number): void {
  if (ids.length === 0) throw new UsageError('The prompt is empty: give at least one token.');
  for (const [i, id] of ids.entries()) {
    if (id >= vocabSize) throw new UsageError(`Token id ${id} at position ${i} is outside the vocabulary [0, ${vocabSize}).`);
  }
}
