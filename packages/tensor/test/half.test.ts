import { describe, expect, it } from 'vitest';
import { mulberry32 as rng } from '../src/ops/core.js';
import {
  bf16BitsToF32,
  decodeHalf,
  encodeHalf,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
} from '../src/half.js';

const isF16NaN = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
const isBf16NaN = (h: number) => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;


function randomF32(next: () => number): number {
  const u = new Uint32Array([Math.floor(next() * 2 ** 32)]);
  return new Float32Array(u.buffer)[0];
}

describe('f16', () => {
  it('round-trips all 65536 bit patterns (NaN stays NaN)', () => {
    for (let h = 0; h < 65536; h++) {
      const f = f16BitsToF32(h);
      const back = f32ToF16Bits(f);
      if (isF16NaN(h)) {
        if (!Number.isNaN(f) || !isF16NaN(back)) {
          throw new Error(`f16 NaN 0x${h.toString(16)} -> 0x${back.toString(16)}`);
        }
      } else if (back !== h) {
        throw new Error(`f16 0x${h.toString(16)} -> ${f} -> 0x${back.toString(16)}`);
      }
    }
  });

  it('array versions match the scalar ones for every pattern', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const decoded = decodeHalf(all, 'f16');
    const encoded = encodeHalf(decoded, 'f16');
    const viaPlainArray = encodeHalf(Array.from(decoded), 'f16');
    const bad: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const f = f16BitsToF32(h);
      const sameValue = Object.is(decoded[h], f) || (Number.isNaN(f) && Number.isNaN(decoded[h]));
      if (!sameValue || encoded[h] !== f32ToF16Bits(f) || viaPlainArray[h] !== encoded[h]) bad.push(h);
    }
    expect(bad).toEqual([]);
  });

  it('rounds ties to even', () => {
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie, 1.0 is even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, rounds up to even 1 + 2^-9
    expect(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(f32ToF16Bits(1 + 2 ** -12)).toBe(0x3c00);
    expect(f32ToF16Bits(-(1 + 3 * 2 ** -11))).toBe(0xbc02);
    expect(f32ToF16Bits(2048 + 1)).toBe(f32ToF16Bits(2048)); // tie at spacing 2
    expect(f32ToF16Bits(2048 + 3)).toBe(f32ToF16Bits(2052));
  });

  it('handles subnormals, the largest finite value and overflow', () => {
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // tie with 0, 0 is even
    expect(f32ToF16Bits(2 ** -25 + 2 ** -40)).toBe(0x0001);
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 units
    expect(f32ToF16Bits(2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up into the smallest normal
    expect(f32ToF16Bits(-(2 ** -24))).toBe(0x8001);
    expect(f32ToF16Bits(1e-10)).toBe(0x0000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00);
    expect(f32ToF16Bits(-65520)).toBe(0xfc00);
    expect(f32ToF16Bits(1e6)).toBe(0x7c00);
    expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    expect(isF16NaN(f32ToF16Bits(NaN))).toBe(true);
    expect(f32ToF16Bits(NaN) & 0x0200).toBe(0x0200); // quiet bit
  });

  it('keeps the sign of zero', () => {
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(0)).toBe(0x0000);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(f32ToF16Bits(-1e-30)).toBe(0x8000);
  });

  it('rounds from the float32 value, not the float64 one', () => {
    // 1 + 2^-11 + 2^-30 is above the f16 tie in float64 but rounds to exactly the tie in float32.
    expect(f32ToF16Bits(1 + 2 ** -11 + 2 ** -30)).toBe(0x3c00);
  });

  it('picks the nearest f16 (ties to even) for random float32 inputs', () => {
    const next = rng(1234);
    const bad: number[] = [];
    for (let i = 0; i < 20000; i++) {
      const x = randomF32(next) % 70000;
      if (!Number.isFinite(x)) continue;
      const ax = Math.abs(x);
      const h = f32ToF16Bits(x) & 0x7fff;
      if (h === 0x7c00) {
        if (ax < 65520) bad.push(x);
        continue;
      }
      const err = Math.abs(f16BitsToF32(h) - ax);
      for (const other of [h - 1, h + 1]) {
        if (other < 0 || other >= 0x7c00) continue;
        const otherErr = Math.abs(f16BitsToF32(other) - ax);
        if (err > otherErr || (err === otherErr && (h & 1) !== 0)) bad.push(x);
      }
    }
    expect(bad).toEqual([]);
  });
});

describe('bf16', () => {
  it('round-trips all 65536 bit patterns (NaN stays NaN)', () => {
    for (let h = 0; h < 65536; h++) {
      const f = bf16BitsToF32(h);
      const back = f32ToBf16Bits(f);
      if (isBf16NaN(h)) {
        // bf16 decode is a pure bit move, so even the NaN sign survives.
        if (!isBf16NaN(back) || (back & 0x8000) !== (h & 0x8000)) {
          throw new Error(`bf16 NaN 0x${h.toString(16)} -> 0x${back.toString(16)}`);
        }
      } else if (back !== h) {
        throw new Error(`bf16 0x${h.toString(16)} -> ${f} -> 0x${back.toString(16)}`);
      }
    }
  });

  it('rounds ties to even', () => {
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie, 1.0 is even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie, rounds up to even
    expect(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(f32ToBf16Bits(-(1 + 3 * 2 ** -8))).toBe(0xbf82);
  });

  it('carries rounding into the exponent and overflows to Inf only past the largest finite value', () => {
    expect(f32ToBf16Bits(2 - 2 ** -9)).toBe(0x4000); // 1.11111111b rounds to 2.0
    // bf16 max finite is 0x7f7f = 3.3895e38; the tie with 2^128 is 3.3962e38 (ties go to the even 0x7f80 = Inf).
    expect(f32ToBf16Bits(3.39e38)).toBe(0x7f7f);
    expect(bf16BitsToF32(0x7f7f)).toBe(3.3895313892515355e38);
    expect(f32ToBf16Bits((1 + 255 / 256) * 2 ** 127 - 2 ** 104)).toBe(0x7f7f); // just below the tie
    expect(f32ToBf16Bits((1 + 255 / 256) * 2 ** 127)).toBe(0x7f80); // the tie itself -> even -> Inf
    expect(f32ToBf16Bits(3.4e38)).toBe(0x7f80); // like torch: 3.4e38 is past the tie, so Inf
    expect(f32ToBf16Bits(3.4028234663852886e38)).toBe(0x7f80); // float32 max is above the last bf16 tie
    expect(f32ToBf16Bits(-3.4028234663852886e38)).toBe(0xff80);
    expect(f32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(f32ToBf16Bits(-Infinity)).toBe(0xff80);
  });

  it('handles NaN, signed zero and float32 subnormals', () => {
    expect(isBf16NaN(f32ToBf16Bits(NaN))).toBe(true);
    expect(Number.isNaN(bf16BitsToF32(0x7fc1))).toBe(true);
    // A signalling-NaN pattern whose payload lives only in the dropped low bits must not become Inf.
    const snan = new Float32Array(new Uint32Array([0x7f800001]).buffer)[0];
    expect(isBf16NaN(f32ToBf16Bits(snan))).toBe(true);
    expect(f32ToBf16Bits(-0)).toBe(0x8000);
    expect(Object.is(bf16BitsToF32(0x8000), -0)).toBe(true);
    expect(f32ToBf16Bits(2 ** -130)).toBe(0x0008); // float32 subnormal kept as bf16 subnormal
  });

  it('array versions match the scalar ones', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const decoded = decodeHalf(all, 'bf16');
    const encoded = encodeHalf(decoded, 'bf16');
    const bad: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const f = bf16BitsToF32(h);
      const sameValue = Object.is(decoded[h], f) || (Number.isNaN(f) && Number.isNaN(decoded[h]));
      if (!sameValue || encoded[h] !== f32ToBf16Bits(f)) bad.push(h);
    }
    expect(bad).toEqual([]);
    const next = rng(99);
    const xs = Array.from({ length: 1000 }, () => (next() - 0.5) * 1e6);
    const enc = encodeHalf(xs, 'bf16');
    xs.forEach((x, i) => expect(enc[i]).toBe(f32ToBf16Bits(x)));
  });
});

describe('encodeHalf / decodeHalf', () => {
  it('write into a provided output and reject a short one', () => {
    const out = new Uint16Array(4);
    expect(encodeHalf([1, 2, 3], 'f16', out)).toBe(out);
    expect(Array.from(out)).toEqual([0x3c00, 0x4000, 0x4200, 0]);
    const f = new Float32Array(3);
    expect(decodeHalf(out.subarray(0, 3), 'f16', f)).toBe(f);
    expect(Array.from(f)).toEqual([1, 2, 3]);
    expect(() => encodeHalf([1, 2], 'bf16', new Uint16Array(1))).toThrow(/output has 1 elements/);
    expect(() => decodeHalf(new Uint16Array(2), 'bf16', new Float32Array(1))).toThrow(/output has 1/);
  });

  it('handle subarray views with non-zero byte offsets', () => {
    const base = new Float32Array([9, 1.5, -2.25, 9]);
    const enc = encodeHalf(base.subarray(1, 3), 'bf16');
    expect(Array.from(decodeHalf(enc, 'bf16'))).toEqual([1.5, -2.25]);
    const dst = new Float32Array(4);
    decodeHalf(enc, 'bf16', dst.subarray(2));
    expect(Array.from(dst)).toEqual([0, 0, 1.5, -2.25]);
  });
});
