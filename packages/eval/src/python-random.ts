/**
 * A port of CPython 3.11's `random.Random`: the MT19937 generator seeded with `init_by_array` from an integer, and
 * the wrappers the harness relies on (`random`, `getrandbits`, `_randbelow`, `shuffle`, `sample`, `choices`,
 * `choice`, `randrange`, `randint`). Same seed → same stream as Python, draw for draw.
 */

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

export class PythonRandom {
  private readonly mt = new Uint32Array(N);
  private index = N + 1;

  constructor(seed: number | bigint) {
    this.seed(seed);
  }

  /** `random.seed(n)` for an integer n: the key is the 32-bit little-endian words of |n| ([0] for n = 0). */
  seed(seed: number | bigint): void {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) {
      throw new Error(`PythonRandom: seed must be an integer (a safe integer number or a bigint), got ${seed}.`);
    }
    let n = BigInt(seed);
    if (n < 0n) n = -n;
    const key: number[] = [];
    while (n > 0n) {
      key.push(Number(n & 0xffffffffn));
      n >>= 32n;
    }
    if (key.length === 0) key.push(0);
    this.initByArray(key);
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1];
      mt[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
    this.index = N;
  }

  private initByArray(key: readonly number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1];
      mt[i] = ((mt[i] ^ Math.imul(prev ^ (prev >>> 30), 1664525)) + key[j] + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1];
      mt[i] = ((mt[i] ^ Math.imul(prev ^ (prev >>> 30), 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
    }
    mt[0] = 0x80000000;
    this.index = N;
  }

  private regenerate(): void {
    const mt = this.mt;
    for (let kk = 0; kk < N; kk++) {
      const y = (mt[kk] & UPPER_MASK) | (mt[(kk + 1) % N] & LOWER_MASK);
      mt[kk] = (mt[(kk + M) % N] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0)) >>> 0;
    }
    this.index = 0;
  }

  /** One tempered 32-bit output (CPython `genrand_uint32`). */
  uint32(): number {
    if (this.index >= N) this.regenerate();
    let y = this.mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** A float in [0, 1) with 53 random bits (CPython `genrand_res53`). */
  random(): number {
    const a = this.uint32() >>> 5;
    const b = this.uint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** `getrandbits(k)` for 0 ≤ k ≤ 53; words above 32 bits are generated least-significant first, as CPython does. */
  getrandbits(k: number): number {
    if (!Number.isInteger(k) || k < 0 || k > 53) {
      throw new Error(`PythonRandom.getrandbits: k must be an integer in [0, 53], got ${k}.`);
    }
    if (k === 0) return 0;
    if (k <= 32) return this.uint32() >>> (32 - k);
    const low = this.uint32();
    const high = this.uint32() >>> (64 - k);
    return high * 4294967296 + low;
  }

  /** `_randbelow(n)`: rejection sampling with `getrandbits(n.bit_length())`. */
  randbelow(n: number): number {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new Error(`PythonRandom.randbelow: n must be a non-negative safe integer, got ${n}.`);
    }
    if (n === 0) return 0;
    const k = bitLength(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** `randrange(start, stop)` with step 1. */
  randrange(start: number, stop: number): number {
    const width = stop - start;
    if (width <= 0) throw new Error(`PythonRandom.randrange: empty range [${start}, ${stop}).`);
    return start + this.randbelow(width);
  }

  /** `randint(a, b)`: an integer in [a, b], both ends included. */
  randint(a: number, b: number): number {
    return this.randrange(a, b + 1);
  }

  /** `choice(seq)`. */
  choice<T>(seq: readonly T[]): T {
    if (seq.length === 0) throw new Error('PythonRandom.choice: cannot choose from an empty sequence.');
    return seq[this.randbelow(seq.length)];
  }

  /** `shuffle(x)` in place (Fisher–Yates from the end, as CPython). */
  shuffle<T>(x: T[]): T[] {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.randbelow(i + 1);
      const tmp = x[i];
      x[i] = x[j];
      x[j] = tmp;
    }
    return x;
  }

  /** `sample(population, k)`: k distinct elements in draw order (pool method for small n, set method otherwise). */
  sample<T>(population: readonly T[], k: number): T[] {
    const n = population.length;
    if (!Number.isInteger(k) || k < 0 || k > n) {
      throw new Error(`PythonRandom.sample: sample size ${k} is larger than the population (${n}) or negative.`);
    }
    const result: T[] = new Array<T>(k);
    let setsize = 21;
    if (k > 5) setsize += 4 ** Math.ceil(Math.log(k * 3) / Math.log(4));
    if (n <= setsize) {
      const pool = population.slice();
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i);
        result[i] = pool[j];
        pool[j] = pool[n - i - 1];
      }
    } else {
      const selected = new Set<number>();
      for (let i = 0; i < k; i++) {
        let j = this.randbelow(n);
        while (selected.has(j)) j = this.randbelow(n);
        selected.add(j);
        result[i] = population[j];
      }
    }
    return result;
  }

  /** `choices(population, k=k)` without weights: k draws with replacement. */
  choices<T>(population: readonly T[], k: number): T[] {
    const n = population.length;
    if (n === 0) throw new Error('PythonRandom.choices: cannot choose from an empty population.');
    const out: T[] = new Array<T>(k);
    for (let i = 0; i < k; i++) out[i] = population[Math.floor(this.random() * n)];
    return out;
  }
}

/** Python's `int.bit_length()` for a non-negative safe integer. */
export function bitLength(n: number): number {
  let bits = 0;
  while (n >= 4294967296) {
    n = Math.floor(n / 4294967296);
    bits += 32;
  }
  return bits + (n === 0 ? 0 : 32 - Math.clz32(n));
}
