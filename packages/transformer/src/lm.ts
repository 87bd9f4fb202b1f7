import type { DType, Tensor } from '@mamba-ts/tensor';
import type { Tokenizer } from '@huggingface/tokenizers';
import type { GPTNeoXConfig } from './config.js';
import { generateIds, type GenerateOptions } from './generate.js';
import { loadGPTNeoX, type LoadOptions } from './load.js';
import { GPTNeoXModel } from './model.js';
import { loadTokenizer } from './tokenizer.js';

export interface GenerateResult {
  /** The new token ids (the prompt not included). */
  ids: number[];
  /** The new ids decoded, when the model has a tokenizer. */
  text: string | null;
}

/**
 * A GPT-NeoX / Pythia language model with its tokenizer: the Transformer side of the Mamba-vs-Transformer
 * comparisons. Token ids in, logits / loss / new tokens out.
 */
export class TransformerLM {
  constructor(
    readonly model: GPTNeoXModel,
    readonly tokenizer: Tokenizer | null = null,
  ) {}

  /** Loads config.json, model.safetensors (or a sharded index) and tokenizer.json (optional) from a directory. */
  static async fromPretrained(dir: string, opts: LoadOptions = {}): Promise<TransformerLM> {
    const model = await loadGPTNeoX(dir, opts);
    try {
      return new TransformerLM(model, await loadTokenizer(dir));
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  get config(): GPTNeoXConfig {
    return this.model.config;
  }

  /** The longest sequence (prompt + generated tokens) the model accepts: max_position_embeddings. */
  get maxLength(): number {
    return this.model.config.maxPositionEmbeddings;
  }

  /** ids (B, L) i32 → logits (B, L, vocab). */
  forward(ids: Tensor, opts: { dtype?: DType } = {}): Tensor {
    return this.model.forward(ids, opts);
  }

  /** Mean next-token cross-entropy of ids (B, L), as Hugging Face computes it with labels = ids. */
  loss(ids: Tensor, opts: { dtype?: DType; labels?: Tensor; ignoreIndex?: number } = {}): Tensor {
    return this.model.loss(ids, opts);
  }

  /** Token ids of `text` without special tokens (as lm-evaluation-harness encodes continuations). */
  encode(text: string): number[] {
    return this.#needTokenizer('encode').encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[]): string {
    return this.#needTokenizer('decode').decode([...ids], { skip_special_tokens: false });
  }

  /** Continues a prompt (text, or token ids) with a key/value cache; greedy unless temperature > 0. */
  async generate(prompt: string | readonly number[], opts: GenerateOptions = {}): Promise<GenerateResult> {
    const promptIds = typeof prompt === 'string' ? this.encode(prompt) : [...prompt];
    const [ids] = await generateIds(this.model, [promptIds], opts);
    return { ids, text: this.tokenizer ? this.decode(ids) : null };
  }

  /** Continues several prompts of equal length together; returns each row's new ids. */
  generateBatch(prompts: readonly (readonly number[])[], opts: GenerateOptions = {}): Promise<number[][]> {
    return generateIds(this.model, prompts, opts);
  }

  dispose(): void {
    this.model.dispose();
  }

  #needTokenizer(what: string): Tokenizer {
    if (this.tokenizer === null) {
      throw new Error(`TransformerLM.${what}: this model has no tokenizer; put tokenizer.json in the checkpoint directory or pass token ids.`);
    }
    return this.tokenizer;
  }
}
