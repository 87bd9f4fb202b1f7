/**
 * Writes adapters made here (plus a reference.safetensors with our logits) so that Python `peft` can check them:
 *   PEFT_EXPORT_DIR=/some/dir pnpm vitest run --project peft export-adapter
 *   python3 tools/fixtures/verify_adapter.py /some/dir/ts-adapter        # expects max |d| <= 1e-4
 * Without PEFT_EXPORT_DIR the files go to a temporary directory (the test still checks the round trip).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { writeSafetensorsFile } from '@mamba-ts/tensor/node';
import { applyLora, loadAdapter, loraParameters, saveAdapter } from '@mamba-ts/peft';
import { MODEL_DIR, idsOf, loadTiny, logitsOf, maxAbsDiff, reference, tempDir } from './helpers.js';

const EXPORTS = {
  'ts-adapter': ['in_proj', 'x_proj', 'out_proj', 'embeddings'],
  'ts-adapter-dtproj': ['dt_proj'],
} as const;

test.each(Object.entries(EXPORTS))('export %s for the Python peft check', async (name, targets) => {
  const root = process.env.PEFT_EXPORT_DIR ?? tempDir();
  mkdirSync(root, { recursive: true });
  const dir = join(root, name);
  const ref = reference('lora-all');
  const ids = idsOf(ref);
  const model = await loadTiny();
  const base = logitsOf(model, ids);
  applyLora(model, { r: 3, alpha: 6, targets: [...targets], seed: 17 });
  loraParameters(model).forEach(([, p], i) => p.assign(T.randomNormal(p.shape, { std: 0.3, seed: 100 + i })));
  const logits = logitsOf(model, ids);
  expect(maxAbsDiff(logits, base)).toBeGreaterThan(1e-2);
  await saveAdapter(model, dir, { baseModelNameOrPath: MODEL_DIR, replace: true });
  const [B, L] = ids.shape;
  const V = model.config.vocabSize;
  await writeSafetensorsFile(join(dir, 'reference.safetensors'), {
    input_ids: { dtype: 'I32', shape: [B, L], data: ids.dataSync() as Int32Array },
    logits: { dtype: 'F32', shape: [B, L, V], data: logits },
    base_logits: { dtype: 'F32', shape: [B, L, V], data: base },
  }, { format: 'pt' });
  const again = await loadTiny();
  await loadAdapter(again, dir);
  expect(maxAbsDiff(logitsOf(again, ids), logits)).toBe(0);
  model.dispose();
  again.dispose();
});
