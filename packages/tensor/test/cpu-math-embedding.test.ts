import { describe, expect, it } from 'vitest';
import { embeddingBackward, embeddingForward } from '../src/backends/cpu/math/index.js';
import { expectGradient, weightedSum } from './helpers/cpu-math-gradcheck.js';
import { mulberry32, randArray } from './helpers/prng.js';

const vocab = 6;
const dim = 3;

describe('embedding', () => {
  it('gathers rows of the table', () => {
    const table = Float64Array.from({ length: vocab * dim }, (_, i) => i);
    const out = new Float32Array(2 * dim);
    embeddingForward({ ids: Int32Array.of(4, 0), vocab, dim, table, out });
    expect(Array.from(out)).toEqual([12, 13, 14, 0, 1, 2]);
  });

  it('backward scatter-adds (repeated ids accumulate) and matches finite differences', () => {
    const rng = mulberry32(21);
    const ids = Int32Array.of(2, 5, 2, 0, 2);
    const table = randArray(rng, vocab * dim, -1, 1);
    const w = randArray(rng, ids.length * dim, -1, 1);
    const loss = () => {
      const out = new Float64Array(ids.length * dim);
      embeddingForward({ ids, vocab, dim, table, out });
      return weightedSum(w, out);
    };
    const dtable = new Float64Array(vocab * dim);
    embeddingBackward({ ids, vocab, dim, dout: w, dtable });
    expectGradient('table', loss, table, dtable);
    expect(dtable[2 * dim]).toBeCloseTo(w[0] + w[2 * dim] + w[4 * dim], 15);
    expect(Array.from(dtable.subarray(dim, 2 * dim))).toEqual([0, 0, 0]);
  });

  it('throws on an id outside the vocabulary, naming the position, the id and the vocabulary size', () => {
    const table = new Float64Array(vocab * dim);
    expect(() => embeddingForward({ ids: Int32Array.of(0, 1, 6), vocab, dim, table, out: new Float64Array(9) })).toThrow(
      'embeddingForward: ids[2] = 6 is outside the vocabulary [0, 6) (vocabulary size 6).',
    );
    expect(() =>
      embeddingBackward({ ids: Int32Array.of(-1), vocab, dim, dout: new Float64Array(3), dtable: new Float64Array(18) }),
    ).toThrow(/embeddingBackward: ids\[0\] = -1 is outside the vocabulary \[0, 6\) \(vocabulary size 6\)/);
  });
});
