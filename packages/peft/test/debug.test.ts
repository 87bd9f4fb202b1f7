import { test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { loadAdapter } from '@mamba-ts/peft';
import { FIXTURES, idsOf, loadTiny, logitsOf, maxAbsDiff, reference } from './helpers.js';
test('dbg', async () => {
  const ref = reference('lora-all');
  const ids = idsOf(ref);
  const want = ref.get('logits').data as Float32Array;
  for (const zero of ['none', 'embeddings', 'in_proj', 'x_proj', 'dt_proj', 'out_proj']) {
    const model = await loadTiny();
    await loadAdapter(model, `${FIXTURES}lora-all`);
    for (const [n, p] of model.namedParameters()) if (n.includes(zero) && (n.endsWith('lora_B.weight') || n.endsWith('lora_embedding_B'))) p.assign(T.zerosLike(p.value));
    console.log(zero, maxAbsDiff(logitsOf(model, ids), want));
  }
});
