// The two 16-bit storage formats, as bit patterns, and their conversions to and from float:
//
//   float16   IEEE 754 binary16 (NumPy's '<f2'): 1 sign, 5 exponent (bias 15), 10 fraction
//             bits; 11-bit significand, u = 2^-11, max 65504, subnormals down to 2^-24.
//   bfloat16  the upper half of a float32: 1 sign, 8 exponent (bias 127), 7 fraction bits;
//             8-bit significand, u = 2^-8, float's range (max ~3.39e38), subnormals to 2^-133.
//
// Every float16 and bfloat16 value is exactly a float, so widening is exact. Narrowing rounds to
// nearest, ties to the even significand (IEEE's default), in integer arithmetic on the bits (no
// dependence on the FPU's rounding mode or on a compiler's _Float16): values at or beyond the
// largest finite + half an ulp become +-inf, signed zeros keep their sign, NaN stays a quiet NaN
// with its sign and the top fraction bits. tests/half_test.cpp checks all 65,536 patterns both
// ways against an independent derivation (NumPy's float16 for float16; the value arithmetic of
// the rounding rule for bfloat16).
#pragma once

#include <bit>
#include <cstdint>

namespace tapegrad {

// ---------------------------------------------------------------- float16
inline float half_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));  // inf, NaN
  if (e != 0) return std::bit_cast<float>(sign | ((e + 112) << 23) | (m << 13));
  if (m == 0) return std::bit_cast<float>(sign);  // +-0
  // subnormal: m * 2^-24; normalise m (its leading 1 at bit p < 10) into float's format
  int p = 9;
  while (!(m & (1u << p))) --p;
  const std::uint32_t frac = (m << (23 - p)) & 0x7fffffu;
  return std::bit_cast<float>(sign | (static_cast<std::uint32_t>(p + 103) << 23) | frac);
}

inline std::uint16_t float_to_half_bits(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u)  // NaN: quiet, with the top 9 fraction bits
    return static_cast<std::uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x1ffu));
  // 65520 = 65504 + ulp/2 (0x477ff000) is the tie between the largest finite and 2^16: to even,
  // which is 2^16, i.e. infinity. At or above it (and inf itself): inf.
  if (ax >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (ax >= 0x38800000u) {  // normal in float16 (>= 2^-14): rebias 127 -> 15, drop 13 bits
    std::uint32_t r = (ax - 0x38000000u) >> 13;
    const std::uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // a carry moves the exponent up
    return static_cast<std::uint16_t>(sign | r);
  }
  // Below 2^-14: a multiple q of 2^-24 (q = 1024 after rounding up is the smallest normal,
  // which the encoding gets right). Below 2^-25 (half the smallest subnormal) rounds to 0; 2^-25
  // itself is a tie, to the even 0.
  if (ax <= 0x33000000u) return sign;
  const std::uint32_t e = ax >> 23;                     // 102 .. 112
  const std::uint32_t mant = (ax & 0x7fffffu) | 0x800000u;  // value = mant * 2^(e - 150)
  const std::uint32_t shift = 126 - e;                  // value / 2^-24 = mant >> shift
  std::uint32_t q = mant >> shift;
  const std::uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return static_cast<std::uint16_t>(sign | q);
}

// ---------------------------------------------------------------- bfloat16
inline float bfloat16_bits_to_float(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

inline std::uint16_t float_to_bfloat16_bits(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u)  // NaN: quiet, sign and top fraction bits kept
    return static_cast<std::uint16_t>((x >> 16) | 0x0040u);
  // Adding 0x7fff (+1 when the kept part is odd) carries into the kept half exactly when the
  // dropped half is above the midpoint 0x8000, or at it with an odd kept part: round to nearest,
  // ties to even. A carry out of the fraction bumps the exponent; past the largest finite it
  // gives 0x7f80, infinity.
  const std::uint32_t bias = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>((x + bias) >> 16);
}

// The float nearest to f in each format (round to nearest even), as a float.
inline float round_to_half(float f) { return half_bits_to_float(float_to_half_bits(f)); }
inline float round_to_bfloat16(float f) {
  return bfloat16_bits_to_float(float_to_bfloat16_bits(f));
}

}  // namespace tapegrad
