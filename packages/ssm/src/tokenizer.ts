import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

/**
 * A Hugging Face `tokenizer.json` (GPT-NeoX byte-level BPE for Mamba) through `@huggingface/tokenizers`.
 * Never touches the network. Encoding adds no special tokens (no BOS), as mamba_ssm and the harness do.
 */
export class TextTokenizer {
  readonly #tok: Tokenizer;

  constructor(tokenizerJson: object, tokenizerConfig: object = {}, readonly source = 'tokenizer.json') {
    try {
      this.#tok = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new Error(`${source}: not a usable tokenizer (${(e as Error).message}).`);
    }
  }

  /** Reads `tokenizer.json` (and `tokenizer_config.json` when present) from a model directory. */
  static async fromDir(dir: string): Promise<TextTokenizer> {
    const path = join(dir, 'tokenizer.json');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      throw new Error(`${path}: file not found; a model directory needs tokenizer.json to encode text (or pass token ids).`);
    }
    let json: object;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`${path}: not valid JSON (${(e as Error).message}).`);
    }
    const config = await readFile(join(dir, 'tokenizer_config.json'), 'utf8').then(
      (t) => JSON.parse(t) as object,
      () => ({}),
    );
    return new TextTokenizer(json, config, path);
  }

  encode(text: string): number[] {
    return this.#tok.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[], { skipSpecialTokens = false } = {}): string {
    if (ids.length === 0) return ''; // the library refuses an empty list
    return this.#tok.decode([...ids], { skip_special_tokens: skipSpecialTokens, clean_up_tokenization_spaces: false });
  }

  tokens(text: string): string[] {
    return this.#tok.encode(text, { add_special_tokens: false }).tokens;
  }

  idOf(token: string): number | undefined {
    return this.#tok.token_to_id(token);
  }
}
