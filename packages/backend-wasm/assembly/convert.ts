// Conversions between float32 and the 16-bit float formats (round to nearest, ties to even), and i32 casts.

/** float32 bits → bf16 bits; NaN stays a quiet NaN with its sign. */
@inline function bf16FromBits(u: u32): u16 {
  if ((u & 0x7fffffff) > 0x7f800000) return <u16>(((u >> 16) | 0x0040) & 0xffff);
  return <u16>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

@inline function bf16RoundLanes(u: v128): v128 {
  const rounded = i32x4.add(i32x4.add(u, i32x4.splat(0x7fff)), v128.and(i32x4.shr_u(u, 16), i32x4.splat(1)));
  const isNaN = i32x4.gt_u(v128.and(u, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000));
  const quiet = v128.or(u, i32x4.splat(0x00400000));
  return v128.bitselect(quiet, rounded, isNaN);
}

/** float32 bits → f16 bits, with subnormals, overflow to ±Inf and quiet NaN. */
function f16FromBits(u: u32): u16 {
  const sign = (u >> 16) & 0x8000;
  const exp = <i32>((u >> 23) & 0xff);
  const mant = u & 0x7fffff;
  if (exp == 0xff) return <u16>(mant != 0 ? sign | 0x7e00 : sign | 0x7c00);
  const e = exp - 112;
  if (e >= 31) return <u16>(sign | 0x7c00);
  if (e >= 1) {
    let h = (<u32>e << 10) | (mant >> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1) != 0)) h++;
    return <u16>(sign | h);
  }
  const shift = <u32>(14 - e);
  if (shift > 24) return <u16>sign;
  const m = mant | 0x800000;
  let h = m >> shift;
  const rest = m & ((<u32>1 << shift) - 1);
  const half = <u32>1 << (shift - 1);
  if (rest > half || (rest == half && (h & 1) != 0)) h++;
  return <u16>(sign | h);
}

function f16ToF32(h: u32): f32 {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp == 0x1f) return reinterpret<f32>(sign | 0x7f800000 | (mant << 13));
  if (exp != 0) return reinterpret<f32>(sign | ((exp + 112) << 23) | (mant << 13));
  // Subnormal or zero: mant · 2^-24, exact in float32.
  const v = <f32>mant * 5.960464477539063e-8;
  return sign != 0 ? -v : v;
}

/** kinds: 0 = f32, 1 = bf16, 2 = f16, 3 = i32 */
export function toF32(kind: i32, src: usize, dst: usize, n: i32): void {
  let i = 0;
  if (kind == 1) {
    for (; i + 8 <= n; i += 8) {
      const h = v128.load(src + (<usize>i << 1));
      v128.store(dst + (<usize>i << 2), i32x4.shl(i32x4.extend_low_i16x8_u(h), 16));
      v128.store(dst + (<usize>i << 2) + 16, i32x4.shl(i32x4.extend_high_i16x8_u(h), 16));
    }
    for (; i < n; i++) store<u32>(dst + (<usize>i << 2), <u32>load<u16>(src + (<usize>i << 1)) << 16);
  } else if (kind == 2) {
    for (; i < n; i++) store<f32>(dst + (<usize>i << 2), f16ToF32(load<u16>(src + (<usize>i << 1))));
  } else if (kind == 3) {
    for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), f32x4.convert_i32x4_s(v128.load(src + (<usize>i << 2))));
    for (; i < n; i++) store<f32>(dst + (<usize>i << 2), <f32>load<i32>(src + (<usize>i << 2)));
  } else {
    memory.copy(dst, src, <usize>n << 2);
  }
}

export function fromF32(kind: i32, src: usize, dst: usize, n: i32): void {
  let i = 0;
  if (kind == 1) {
    // Round to nearest even in 32-bit lanes, then keep the high halves; NaN lanes get a quiet NaN.
    for (; i + 8 <= n; i += 8) {
      const lo = bf16RoundLanes(v128.load(src + (<usize>i << 2)));
      const hi = bf16RoundLanes(v128.load(src + (<usize>i << 2) + 16));
      v128.store(dst + (<usize>i << 1), i8x16.shuffle(lo, hi, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31));
    }
    for (; i < n; i++) store<u16>(dst + (<usize>i << 1), bf16FromBits(load<u32>(src + (<usize>i << 2))));
  } else if (kind == 2) {
    for (; i < n; i++) store<u16>(dst + (<usize>i << 1), f16FromBits(load<u32>(src + (<usize>i << 2))));
  } else if (kind == 3) {
    for (; i < n; i++) {
      const v = load<f32>(src + (<usize>i << 2));
      store<i32>(dst + (<usize>i << 2), isFinite(v) ? <i32>(<i64>v) : 0);
    }
  } else {
    memory.copy(dst, src, <usize>n << 2);
  }
}
