import { describe, expect, test } from 'vitest';
import { crossEntropy, memory, narrow, noGrad, reshape, tensor, tidy, valueAndGrad } from '@mamba-ts/tensor';
import { applyRotary, CausalMasks, generateIds, RotaryTables, rotateHalf } from '@mamba-ts/transformer';
import { ids, maxAbsDiff, tinyModel } from './helpers/tiny.js';

const rows = [
  [3, 17, 5, 29, 1, 8, 36],
  [0, 12, 12, 4, 33, 2, 9],
];

describe('rotary embeddings', () => {
  test('rotate_half is [-x2, x1] and only the first R dims rotate (HF NeoX convention)', () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [1, 6]);
    expect([...rotateHalf(narrow(x, 1, 0, 4)).toFloat32Sync()]).toEqual([-3, -4, 1, 2]);
    const tables = new RotaryTables(4, 10000, 8);
    const { cos, sin } = tables.at(3, 1, 'f32');
    const y = applyRotary(x, cos, sin).toFloat32Sync();
    // position 3, frequencies θ0 = 1 and θ1 = 1/100 for dims (0, 2) and (1, 3).
    const [a0, a1] = [3, 3 / 100];
    const expected = [
      1 * Math.cos(a0) - 3 * Math.sin(a0),
      2 * Math.cos(a1) - 4 * Math.sin(a1),
      3 * Math.cos(a0) + 1 * Math.sin(a0),
      4 * Math.cos(a1) + 2 * Math.sin(a1),
      5,
      6,
    ];
    expect(maxAbsDiff(y, expected)).toBeLessThan(1e-6);
    tables.dispose();
  });

  test('positions past max_position_embeddings are refused', () => {
    const m = tinyModel({ maxPositionEmbeddings: 4 });
    expect(() => m.forward(ids([[1, 2, 3, 4, 5]]))).toThrow(/exceed max_position_embeddings 4/);
    m.dispose();
  });
});

describe('causal masks', () => {
  test('mask (Lq, Lk) hides keys after each query, and only the last few sizes are kept', () => {
    const masks = new CausalMasks(2);
    const m = masks.get(2, 4).toFloat32Sync();
    expect([...m].map((v) => (v < -1e30 ? '-' : String(v))).join('')).toBe('000-0000');
    const a = masks.get(1, 1);
    const b = masks.get(2, 2);
    expect(masks.get(1, 1)).toBe(a); // reused, and now the most recent
    masks.get(3, 3);
    expect(b.isDisposed).toBe(true);
    expect(a.isDisposed).toBe(false);
    masks.dispose();
  });
});

describe('GPTNeoXModel', () => {
  test('parameter names are the Hugging Face names', () => {
    const m = tinyModel({ numHiddenLayers: 1 });
    const names = [...m.namedParameters()].map(([n]) => n);
    expect(names).toContain('gpt_neox.embed_in.weight');
    expect(names).toContain('gpt_neox.layers.0.attention.query_key_value.bias');
    expect(names).toContain('gpt_neox.layers.0.mlp.dense_4h_to_h.weight');
    expect(names).toContain('gpt_neox.final_layer_norm.bias');
    expect(names).toContain('embed_out.weight');
    expect(names).not.toContain('embed_out.bias');
    expect(names).toHaveLength(1 + 12 + 2 + 1);
    m.dispose();
  });

  test('is causal: changing a later token leaves earlier logits unchanged', () => {
    const m = tinyModel();
    const a = m.forward(ids([rows[0]])).toFloat32Sync();
    const changed = [...rows[0]];
    changed[4] = 20;
    const b = m.forward(ids([changed])).toFloat32Sync();
    const V = m.config.vocabSize;
    expect(maxAbsDiff(a.subarray(0, 4 * V), b.subarray(0, 4 * V))).toBe(0);
    expect(maxAbsDiff(a.subarray(4 * V), b.subarray(4 * V))).toBeGreaterThan(1e-3);
    m.dispose();
  });

  test.each([true, false])('prefill + cached steps give the full-sequence logits (parallel residual %s)', (parallel) => {
    const m = tinyModel({ useParallelResidual: parallel, rotaryPct: 0.25 });
    const V = m.config.vocabSize;
    noGrad(() => {
      const full = m.forward(ids(rows)).toFloat32Sync();
      let { logits, cache } = m.forwardWithCache(ids(rows.map((r) => r.slice(0, 3))));
      const pieces: Float32Array[] = [logits.toFloat32Sync()];
      for (let t = 3; t < rows[0].length; t++) {
        ({ logits, cache } = m.forwardWithCache(ids(rows.map((r) => [r[t]])), { cache }));
        pieces.push(logits.toFloat32Sync());
      }
      // Reassemble (B, L, V) from the prefill (B, 3, V) and the steps (B, 1, V).
      const L = rows[0].length;
      const assembled = new Float32Array(rows.length * L * V);
      rows.forEach((_, b) => {
        assembled.set(pieces[0].subarray(b * 3 * V, (b + 1) * 3 * V), b * L * V);
        for (let t = 3; t < L; t++) assembled.set(pieces[t - 2].subarray(b * V, (b + 1) * V), (b * L + t) * V);
      });
      expect(maxAbsDiff(assembled, full)).toBeLessThan(1e-5);
    });
    m.dispose();
  });

  test('loss is the mean cross-entropy of shifted logits', () => {
    const m = tinyModel();
    const x = ids(rows);
    const L = rows[0].length;
    const logits = m.forward(x);
    const V = m.config.vocabSize;
    const expected = crossEntropy(reshape(narrow(logits, 1, 0, L - 1), [-1, V]), reshape(narrow(x, 1, 1, L - 1), [-1])).toFloat32Sync()[0];
    const got = m.loss(x).toFloat32Sync()[0];
    expect(got).toBeGreaterThan(1);
    expect(Math.abs(got - expected)).toBeLessThan(1e-5);
    expect(() => m.loss(ids([[1]]))).toThrow(/at least 2 positions/);
    expect(() => m.forward(tensor([1, 2], [1, 2]))).toThrow(/ids must be an i32 tensor of shape \(batch, length\), got f32/);
    m.dispose();
  });

  test('gradients match finite differences (sequential residual, gelu_new)', () => {
    const m = tinyModel({ useParallelResidual: false, hiddenAct: 'gelu_new', numHiddenLayers: 1 });
    const x = ids([rows[0].slice(0, 5)]);
    const names = ['gpt_neox.layers.0.attention.query_key_value.weight', 'gpt_neox.embed_in.weight', 'gpt_neox.layers.0.input_layernorm.weight'];
    const params = names.map((n) => m.getParameter(n)!);
    const { grads } = valueAndGrad(() => m.loss(x), params.map((p) => p.value));
    const lossAt = () => noGrad(() => tidy(() => m.loss(x).toFloat32Sync()[0]));
    params.forEach((p, k) => {
      const g = grads[k].toFloat32Sync();
      const base = p.value.toFloat32Sync();
      // Probe the entries with the largest gradients (embedding rows of unused tokens have none).
      const order = [...g.keys()].sort((a, b) => Math.abs(g[b]) - Math.abs(g[a])).slice(0, 3);
      for (const i of order) {
        // Step relative to the parameter's scale (embeddings are ~0.02, and LayerNorm makes them sensitive).
        const h = 0.02 * Math.sqrt(base.reduce((acc, v) => acc + v * v, 0) / base.length);
        const probe = (delta: number) => {
          const v = base.slice();
          v[i] += delta;
          p.assign(tensor(v, p.shape));
          return lossAt();
        };
        const fd = (probe(h) - probe(-h)) / (2 * h);
        p.assign(tensor(base, p.shape));
        if (process.env.DEBUG_FD) console.log(names[k], i, fd, g[i]);
        expect(Math.abs(fd - g[i])).toBeLessThan(5e-4 + 5e-3 * Math.abs(g[i]));
      }
    });
    m.dispose();
  });

  test('a training step leaks no tensors', () => {
    const m = tinyModel();
    const x = ids(rows);
    m.loss(x).dispose(); // builds the cached mask and rotary tables
    const before = memory().liveTensors;
    const { value, grads } = valueAndGrad(() => m.loss(x), m.parameters().map((p) => p.value));
    value.dispose();
    grads.forEach((g) => g.dispose());
    expect(memory().liveTensors).toBe(before);
    m.dispose();
  });

  test('bf16 parameters and activations stay close to f32', () => {
    const m = tinyModel();
    const x = ids(rows);
    const ref = m.forward(x).toFloat32Sync();
    const half = m.forward(x, { dtype: 'bf16' });
    expect(half.dtype).toBe('bf16');
    expect(maxAbsDiff(half.toFloat32Sync(), ref)).toBeLessThan(0.15);
    m.dispose();
  });
});

describe('generate', () => {
  test('greedy cached generation equals a no-cache argmax loop', async () => {
    const m = tinyModel({}, 11);
    const prompt = [5, 9, 2];
    const expected: number[] = [];
    const seq = [...prompt];
    noGrad(() => {
      for (let i = 0; i < 6; i++) {
        const logits = m.forward(ids([seq])).toFloat32Sync();
        const V = m.config.vocabSize;
        const last = logits.subarray((seq.length - 1) * V);
        let best = 0;
        for (let v = 1; v < V; v++) if (last[v] > last[best]) best = v;
        expected.push(best);
        seq.push(best);
      }
    });
    const before = memory().liveTensors;
    const [got] = await generateIds(m, [prompt], { maxNewTokens: 6 });
    expect(got).toEqual(expected);
    expect(memory().liveTensors).toBe(before);
    m.dispose();
  });

  test('stops a row at eos, keeps the batch going, and checks its arguments', async () => {
    const m = tinyModel({}, 11);
    const [greedy] = await generateIds(m, [[5, 9, 2]], { maxNewTokens: 6 });
    const eos = greedy[2];
    const [stopped] = await generateIds(m, [[5, 9, 2]], { maxNewTokens: 6, eosTokenId: eos });
    expect(stopped).toEqual(greedy.slice(0, greedy.indexOf(eos) + 1));
    const both = await generateIds(m, [[5, 9, 2], [1, 1, 1]], { maxNewTokens: 6 });
    expect(both[0]).toEqual(greedy);
    await expect(generateIds(m, [[1, 2], [1]], {})).rejects.toThrow(/different lengths/);
    await expect(generateIds(m, [[1]], { maxNewTokens: 40 })).rejects.toThrow(/exceeds the model's maximum length 32/);
    await expect(generateIds(m, [[1]], { maxNewTokens: 4, temperature: -1 })).rejects.toThrow(/temperature/);
    m.dispose();
  });

  test('sampling repeats with a seed and top-k 1 is greedy', async () => {
    const m = tinyModel({}, 11);
    const opts = { maxNewTokens: 8, temperature: 1.5, seed: 42 };
    const a = await generateIds(m, [[5, 9, 2]], opts);
    const b = await generateIds(m, [[5, 9, 2]], opts);
    const c = await generateIds(m, [[5, 9, 2]], { ...opts, seed: 43 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const greedy = await generateIds(m, [[5, 9, 2]], { maxNewTokens: 8 });
    expect(await generateIds(m, [[5, 9, 2]], { ...opts, topK: 1 })).toEqual(greedy);
    expect(await generateIds(m, [[5, 9, 2]], { ...opts, topP: 1e-6 })).toEqual(greedy);
    m.dispose();
  });
});
