/** IEEE 754 half precision (float16), as ONNX stores it: bit patterns in a Uint16Array. */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float16 nearest to `x` (ties to even), as its bit pattern; beyond the largest finite half, ±Infinity. */
export function halfBits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): the 24-bit significand shifted right by 14 - e, rounded to nearest even.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && half & 1) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the significand moves to the next exponent, and from the largest finite half to Infinity.
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && half & 1) ? 1 : 0));
}

/** `values` rounded to float16, as bit patterns. */
export function toHalf(values: ArrayLike<number>): Uint16Array {
  return Uint16Array.from({ length: values.length }, (_, i) => halfBits(values[i]));
}
