/**
 * float32 <-> float16 / bfloat16 bit conversions (browser-safe, no dependencies).
 *
 * Encoding rounds the float32 value (after Math.fround) to nearest, ties to even. NaN stays a quiet NaN with its
 * sign, ±Inf and ±0 are kept, f16 subnormals are produced and decoded, and values too large for the target become
 * ±Inf after rounding (f16: anything that rounds above 65504, i.e. >= 65520).
 */

export type HalfDType = 'f16' | 'bf16';

// Shared scratch for reading/writing float32 bits. Typed arrays use the platform byte order on both views, so
// the aliasing is endian-independent.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0];
}

function bitsToF32(u: number): number {
  scratchU32[0] = u;
  return scratchF32[0];
}

/** float32 bit pattern -> f16 bit pattern, round to nearest even. */
function f16FromF32Bits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return mant !== 0 ? sign | 0x7e00 : sign | 0x7c00;
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00;
  if (e >= 1) {
    let h = (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    // A carry out of the mantissa correctly bumps the exponent (and 0x7bff + 1 = 0x7c00 is Inf).
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0)) h++;
    return sign | h;
  }
  // Subnormal (or zero) in f16: the result counts units of 2^-24.
  const shift = 14 - e; // value = (mant | 2^23) * 2^(exp - 150) = m * 2^-24 >> shift
  if (shift > 24) return sign; // below half the smallest subnormal (or a float32 subnormal)
  const m = mant | 0x800000;
  let h = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1) !== 0)) h++;
  return sign | h;
}

/** float32 bit pattern -> bf16 bit pattern, round to nearest even. */
function bf16FromF32Bits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x0040) & 0xffff; // NaN: keep sign, force quiet
  // Adding 0x7fff plus the lowest kept bit rounds to nearest even; carries move into the exponent (up to Inf).
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f32ToF16Bits(x: number): number {
  return f16FromF32Bits(f32Bits(x));
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function f32ToBf16Bits(x: number): number {
  return bf16FromF32Bits(f32Bits(x));
}

export function bf16BitsToF32(h: number): number {
  return bitsToF32((h & 0xffff) << 16);
}

let f16Table: Float32Array | undefined;

function f16DecodeTable(): Float32Array {
  if (f16Table === undefined) {
    const table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = f16BitsToF32(h);
    f16Table = table;
  }
  return f16Table;
}

/** Encode numbers as f16 or bf16 bit patterns. `out`, when given, must have at least `src.length` elements. */
export function encodeHalf(src: ArrayLike<number>, dtype: HalfDType, out?: Uint16Array): Uint16Array {
  const n = src.length;
  const dst = out ?? new Uint16Array(n);
  if (dst.length < n) {
    throw new RangeError(`encodeHalf: output has ${dst.length} elements but the input has ${n}.`);
  }
  const fromBits = dtype === 'f16' ? f16FromF32Bits : bf16FromF32Bits;
  if (src instanceof Float32Array) {
    // Read the float32 bits directly, no per-element scratch round trip.
    const bits = new Uint32Array(src.buffer, src.byteOffset, n);
    for (let i = 0; i < n; i++) dst[i] = fromBits(bits[i]);
  } else {
    for (let i = 0; i < n; i++) {
      scratchF32[0] = src[i];
      dst[i] = fromBits(scratchU32[0]);
    }
  }
  return dst;
}

/** Decode f16 or bf16 bit patterns to float32. `out`, when given, must have at least `src.length` elements. */
export function decodeHalf(src: Uint16Array, dtype: HalfDType, out?: Float32Array): Float32Array {
  const n = src.length;
  const dst = out ?? new Float32Array(n);
  if (dst.length < n) {
    throw new RangeError(`decodeHalf: output has ${dst.length} elements but the input has ${n}.`);
  }
  if (dtype === 'f16') {
    const table = f16DecodeTable();
    for (let i = 0; i < n; i++) dst[i] = table[src[i]];
  } else {
    const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
    for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
  }
  return dst;
}
