import { describe, expect, it } from 'vitest';
import { PythonRandom, bitLength } from '@mamba-ts/eval';

// Every expected value below was produced by CPython 3.11.7's `random` module (see the comment on each).
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('PythonRandom matches CPython 3.11 random.Random', () => {
  it('getrandbits(32) from Random(1234)', () => {
    const r = new PythonRandom(1234);
    expect(range(5).map(() => r.getrandbits(32))).toEqual([4150886329, 3342196574, 1892932127, 501869158, 32175636]);
  });

  it('random() from Random(1234) and Random(0)', () => {
    const r = new PythonRandom(1234);
    expect([r.random(), r.random(), r.random()]).toEqual([0.9664535356921388, 0.4407325991753527, 0.007491470058587191]);
    const z = new PythonRandom(0);
    expect([z.random(), z.random()]).toEqual([0.8444218515250481, 0.7579544029403025]);
  });

  it('seeds wider than 32 bits and negative seeds', () => {
    // Random(2**40 + 7).getrandbits(32) x3 ; Random(-5).getrandbits(32) x2
    const big = new PythonRandom(2 ** 40 + 7);
    expect(range(3).map(() => big.getrandbits(32))).toEqual([2635837658, 3209733218, 3500038837]);
    const bigint = new PythonRandom(2n ** 40n + 7n);
    expect(bigint.getrandbits(32)).toBe(2635837658);
    const neg = new PythonRandom(-5);
    expect([neg.getrandbits(32), neg.getrandbits(32)]).toEqual([2675342405, 1097127993]);
  });

  it('getrandbits for widths 1..53 and the state regeneration after 624 words', () => {
    // r = Random(42); [r.getrandbits(k) for k in (1, 7, 16, 31, 33, 45, 53)]
    const r = new PythonRandom(42);
    expect([1, 7, 16, 31, 33, 45, 53].map((k) => r.getrandbits(k))).toEqual([
      1, 14, 1639, 1592467581, 1181241943, 4910106302174, 923193498493097,
    ]);
    // r = Random(5); [r.getrandbits(32) for _ in range(700)][-3:]
    const s = new PythonRandom(5);
    const words = range(700).map(() => s.getrandbits(32));
    expect(words.slice(-3)).toEqual([525517128, 941594729, 2639495804]);
  });

  it('_randbelow, randint, choice', () => {
    // r = Random(3); [r._randbelow(n) for n in (1, 2, 3, 1000, 2**31 + 1, 2**40 + 3)]
    const r = new PythonRandom(3);
    expect([1, 2, 3, 1000, 2 ** 31 + 1, 2 ** 40 + 3].map((n) => r.randbelow(n))).toEqual([
      0, 0, 1, 937, 2036044446, 1034389053353,
    ]);
    const ri = new PythonRandom(9);
    expect(range(8).map(() => ri.randint(0, 9))).toEqual([7, 9, 5, 4, 2, 2, 0, 5]);
    const rc = new PythonRandom(11);
    expect(range(6).map(() => rc.choice([...'abcdefg']))).toEqual(['d', 'g', 'e', 'g', 'g', 'd']);
  });

  it('shuffle', () => {
    // r = Random(42); x = list(range(10)); r.shuffle(x)
    expect(new PythonRandom(42).shuffle(range(10))).toEqual([7, 3, 2, 8, 5, 6, 9, 4, 0, 1]);
  });

  it('sample: pool method, set method, and setsize growth for k > 5', () => {
    expect(new PythonRandom(7).sample(range(20), 6)).toEqual([10, 4, 12, 1, 2, 13]); // pool (n <= 85)
    expect(new PythonRandom(1234).sample(range(50), 8)).toEqual([49, 28, 7, 0, 5, 37, 2, 42]); // pool (n <= 85)
    expect(new PythonRandom(7).sample(range(100), 12)).toEqual([41, 19, 50, 83, 6, 9, 68, 12, 46, 74, 7, 64]); // set
    expect(new PythonRandom(7).sample(range(1000), 5)).toEqual([331, 970, 154, 404, 666]); // set
  });

  it('successive samples on one stream, as the few-shot sampler draws them', () => {
    const arc = new PythonRandom(1234);
    expect(range(3).map(() => arc.sample(range(2251), 5))).toEqual([
      [1805, 478, 30, 371, 143],
      [343, 403, 1452, 969, 71],
      [126, 64, 1417, 1983, 1898],
    ]);
    const hs = new PythonRandom(1234);
    expect(range(2).map(() => hs.sample(range(39905), 10))).toEqual([
      [28883, 7657, 490, 5940, 38156, 2288, 5500, 6450, 23241, 15519],
      [1142, 2019, 1038, 22681, 31735, 30379, 9735, 5982, 11999, 7498],
    ]);
    const lambada = new PythonRandom(1234);
    expect(range(3).map(() => lambada.sample(range(5153), 5))).toEqual([
      [3610, 957, 61, 742, 4769],
      [286, 687, 806, 2905, 1939],
      [142, 252, 129, 2835, 5105],
    ]);
  });

  it('choices without weights', () => {
    expect(new PythonRandom(0).choices(range(5153), 3)).toEqual([4351, 3905, 2167]);
    expect(new PythonRandom(1).choices(range(5), 5)).toEqual([0, 4, 3, 1, 2]);
  });

  it('rejects bad arguments with a clear message', () => {
    const r = new PythonRandom(1);
    expect(() => r.sample(range(3), 4)).toThrow(/larger than the population \(3\)/);
    expect(() => r.getrandbits(54)).toThrow(/\[0, 53\]/);
    expect(() => new PythonRandom(1.5)).toThrow(/integer/);
  });

  it('bitLength matches int.bit_length()', () => {
    expect([0, 1, 2, 3, 255, 256, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3].map(bitLength)).toEqual([0, 1, 2, 2, 8, 9, 32, 33, 41]);
  });
});
