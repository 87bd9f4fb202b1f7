import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { fromPretrained, generate, type MambaLM } from '@mamba-ts/ssm';
import { describeGpu, on, onAsync, toCuda, violation } from './gpu.js';

// The Hugging Face transformers fixtures of packages/ssm (random-weight Mamba checkpoints with reference logits,
// loss gradients and greedy generations), run on cuda. MAMBA_TS_SSM_FIXTURES points elsewhere (the GPU bundle).
const FIXTURES = process.env.MAMBA_TS_SSM_FIXTURES ?? fileURLToPath(new URL('../../ssm/test/fixtures/', import.meta.url));
const NAMES = ['mamba-tiny', 'mamba-bias-k3', 'mamba-untied-odd'];

function reference(name: string): T.SafetensorsReader {
  const path = `${FIXTURES}/${name}/reference.safetensors`;
  return T.readSafetensors(new Uint8Array(readFileSync(path)), path);
}

/** Loads on cpu (model construction reads random init values synchronously), then moves every parameter to cuda. */
async function loadOnCuda(name: string): Promise<MambaLM> {
  const { model } = await on('cpu', () => fromPretrained(`${FIXTURES}/${name}`, { warn: () => {}, tokenizer: false }));
  for (const [, p] of model.namedParameters()) p.assign(toCuda(p.value));
  return model;
}

describeGpu('Mamba fixtures on cuda', () => {
  if (!existsSync(FIXTURES)) {
    test.skip(`skipped: no fixtures at ${FIXTURES}`, () => {});
    return;
  }
  for (const name of NAMES) {
    const ref = reference(name);
    const ids = ref.get('input_ids');

    test(`${name}: logits, loss and every parameter's gradient match transformers`, async () => {
      const model = await loadOnCuda(name);
      await onAsync('cuda', async () => {
        const idsT = T.tensor(ids.data as Int32Array, ids.shape, 'i32');
        const logits = T.tidy(() => model.forward(idsT).logits);
        expect(violation(await logits.toFloat32(), ref.get('logits').data as Float32Array, 1e-4, 1e-3), 'logits').toBeLessThanOrEqual(1);
        const params = [...model.namedParameters()];
        const { value, grads } = T.valueAndGrad(() => model.loss(idsT), params.map(([, p]) => p.value));
        expect((await value.toFloat32())[0]).toBeCloseTo((ref.get('loss').data as Float32Array)[0], 4);
        for (const [i, [pname]] of params.entries()) {
          const want = ref.get(`grad.${pname}`).data as Float32Array;
          expect(violation(await grads[i].toFloat32(), want, 1e-4, 1e-2), `grad.${pname}`).toBeLessThanOrEqual(1);
        }
        T.dispose([idsT, logits, value, ...grads]);
      });
      model.dispose();
    });

    test(`${name}: greedy generation equals transformers generate()`, async () => {
      const model = await loadOnCuda(name);
      const fx = JSON.parse(readFileSync(`${FIXTURES}/${name}/generate.json`, 'utf8')) as { prompt_ids: number[]; new_ids: number[] };
      const [out] = await onAsync('cuda', () => generate(model, [fx.prompt_ids], { greedy: true, maxNewTokens: fx.new_ids.length, stopTokens: [] }));
      expect(out).toEqual(fx.new_ids);
      model.dispose();
    });
  }
});
