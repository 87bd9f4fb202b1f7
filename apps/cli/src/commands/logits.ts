import { type CommandSpec, idList, parseCommand, required } from '../args.js';
import { useBackend } from '../backends.js';
import { checkIds, loadModel } from '../models.js';
import { writeFileAtomic } from '@mamba-ts/peft';

export const logitsSpec: CommandSpec = {
  name: 'logits',
  summary: 'write the logits of every position of a sequence to a JSON file',
  usage: 'logits --model DIR --ids 1,2,3 --out FILE [--backend B] [--dtype D]',
  options: {
    model: { type: 'string' }, ids: { type: 'string' }, out: { type: 'string' },
    backend: { type: 'string' }, dtype: { type: 'string' }, adapter: { type: 'string' },
  },
  help: [
    '--model DIR          checkpoint directory',
    '--ids 1,2,3          input token ids',
    '--out FILE           output JSON: {"shape": [L, V], "logits": [[...], ...]}',
    '--backend B          auto, cpu, wasm or cuda (default auto)',
    '--dtype D            f32, bf16 or f16 (default f32)',
    '--adapter DIR        apply a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors)',
  ],
};

export async function logitsCommand(argv: string[]): Promise<void> {
  const v = parseCommand(logitsSpec, argv);
  if (!v) return;
  const dir = required(v, 'model', 'logits');
  const ids = idList(required(v, 'ids', 'logits'));
  const out = required(v, 'out', 'logits');
  await useBackend(v.backend as string | undefined);
  const model = await loadModel(dir, v.dtype as string | undefined, v.adapter as string | undefined);
  try {
    checkIds(ids, model.vocabSize);
    const values = await model.logits(ids);
    const V = model.vocabSize;
    const rows = ids.map((_, t) => Array.from(values.subarray(t * V, (t + 1) * V)));
    await writeFileAtomic(out, `${JSON.stringify({ shape: [ids.length, V], logits: rows })}\n`);
  } finally {
    model.dispose();
  }
}
