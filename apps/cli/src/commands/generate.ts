import { type CommandSpec, idList, intOption, numberOption, parseCommand, required } from '../args.js';
import { useBackend } from '../backends.js';
import { UsageError } from '../cli-error.js';
import { checkIds, loadModel } from '../models.js';

export const generateSpec: CommandSpec = {
  name: 'generate',
  summary: 'continue a prompt with a model',
  usage: 'generate --model DIR (--prompt TEXT | --ids 1,2,3) [options]',
  options: {
    model: { type: 'string' }, prompt: { type: 'string' }, ids: { type: 'string' },
    'max-new-tokens': { type: 'string' }, greedy: { type: 'boolean' }, temperature: { type: 'string' },
    'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' }, stop: { type: 'string' },
    backend: { type: 'string' }, dtype: { type: 'string' }, json: { type: 'boolean' }, adapter: { type: 'string' },
  },
  help: [
    '--model DIR          checkpoint directory (config.json, model.safetensors, tokenizer.json)',
    '--prompt TEXT        prompt text (needs tokenizer.json)',
    '--ids 1,2,3          prompt token ids instead of text',
    '--max-new-tokens N   tokens to generate (default 32)',
    '--greedy             always take the most likely token',
    '--temperature T      sampling temperature (default 1)',
    '--top-k K            sample among the K most likely tokens',
    '--top-p P            nucleus sampling threshold (default 1)',
    '--seed S             sampling seed (default 0)',
    '--stop 0,1           stop token ids (default: the model\'s EOS)',
    '--backend B          auto, cpu, wasm or cuda (default auto)',
    '--dtype D            f32, bf16 or f16 (default f32)',
    '--adapter DIR        apply a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors)',
    '--json               print {"ids": [...], "text": "..."} instead of streaming text',
  ],
};

export async function generateCommand(argv: string[]): Promise<void> {
  const v = parseCommand(generateSpec, argv);
  if (!v) return;
  const dir = required(v, 'model', 'generate');
  if ((v.prompt === undefined) === (v.ids === undefined)) throw new UsageError('generate: give exactly one of --prompt or --ids.');
  await useBackend(v.backend as string | undefined);
  const model = await loadModel(dir, v.dtype as string | undefined, v.adapter as string | undefined);
  try {
    let promptIds: number[];
    if (v.prompt !== undefined) {
      if (!model.tokenizer) throw new UsageError(`${dir}: no tokenizer.json, so --prompt cannot be encoded; pass --ids instead.`);
      promptIds = model.tokenizer.encode(v.prompt as string);
    } else {
      promptIds = idList(v.ids as string);
    }
    checkIds(promptIds, model.vocabSize);
    const opts = {
      maxNewTokens: intOption(v, 'max-new-tokens', 32),
      greedy: Boolean(v.greedy),
      temperature: numberOption(v, 'temperature', 1),
      topK: intOption(v, 'top-k', 0),
      topP: numberOption(v, 'top-p', 1),
      seed: intOption(v, 'seed', 0),
      ...(v.stop !== undefined ? { stopTokens: idList(v.stop as string, 'stop') } : {}),
    };
    const tok = model.tokenizer;
    let shown = '';
    const emitted: number[] = [];
    const ids = await model.generate(promptIds, {
      ...opts,
      onToken: (t) => {
        if (v.json || !tok) return;
        emitted.push(t);
        const text = tok.decode(emitted);
        // Print only what is stable: a partial UTF-8 sequence decodes to U+FFFD until completed.
        if (!text.endsWith('\uFFFD')) {
          process.stdout.write(text.slice(shown.length));
          shown = text;
        }
      },
    });
    const text = tok ? tok.decode(ids) : '';
    if (v.json) console.log(JSON.stringify({ ids, text }));
    else if (tok) process.stdout.write(`${text.slice(shown.length)}\n`);
    else console.log(ids.join(','));
  } finally {
    model.dispose();
  }
}
