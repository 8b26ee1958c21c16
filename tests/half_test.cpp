// The 16-bit formats (half.hpp, io::round_to_half / round_to_bfloat16, ULPs in compare.hpp),
// checked over every one of the 65,536 bit patterns of each against a derivation that does not
// share the implementation's bit tricks: values decoded with ldexp from the format's fields,
// midpoints of neighbours computed in double (exact), round to nearest even read off the
// definition. NumPy's float16 and PyTorch's bfloat16 conversions check the same code again,
// through the CLI, in tests/verify_cli_test.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "tapegrad/gradcheck/compare.hpp"
#include "tapegrad/half.hpp"
#include "tapegrad/io/npy.hpp"

namespace tapegrad {
namespace {

// The value of a pattern from its fields: e_bits exponent bits, f_bits fraction bits, bias
// 2^(e_bits-1) - 1. Subnormal: f 2^(1 - bias - f_bits); normal: (2^f_bits + f) 2^(e - bias -
// f_bits); all-ones exponent: inf (f = 0) or NaN.
double decode(std::uint32_t bits, int e_bits, int f_bits) {
  const int bias = (1 << (e_bits - 1)) - 1;
  const bool neg = (bits >> (e_bits + f_bits)) & 1u;
  const std::uint32_t e = (bits >> f_bits) & ((1u << e_bits) - 1);
  const std::uint32_t f = bits & ((1u << f_bits) - 1);
  double v;
  if (e == (1u << e_bits) - 1)
    v = f ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (e == 0)
    v = std::ldexp(double(f), 1 - bias - f_bits);
  else
    v = std::ldexp(double((1u << f_bits) + f), int(e) - bias - f_bits);
  return neg ? -v : v;
}
double decode_half(std::uint16_t h) { return decode(h, 5, 10); }
double decode_bf16(std::uint16_t b) { return decode(b, 8, 7); }

template <class Narrow, class Widen, class Decode>
void check_format(Narrow narrow, Widen widen, Decode dec, double past_max) {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    const double v = dec(h);
    const float f = widen(h);
    // widening is exact (and keeps the sign of zero, inf, NaN-ness)
    if (std::isnan(v)) {
      ASSERT_TRUE(std::isnan(f)) << b;
      ASSERT_EQ(std::signbit(f), std::signbit(v)) << b;
      const std::uint16_t back = narrow(f);
      ASSERT_TRUE(std::isnan(dec(back))) << b;  // NaN stays NaN (quiet), sign kept
      ASSERT_EQ(back & 0x8000u, h & 0x8000u) << b;
      continue;
    }
    ASSERT_EQ(double(f), v) << b;
    ASSERT_EQ(std::signbit(f), std::signbit(v)) << b;
    ASSERT_EQ(narrow(f), h) << b;  // every value of the format is its own rounding
    if (std::isinf(v) || (h & 0x7fffu) == 0x7fffu) continue;
    // The neighbour above in magnitude (the same sign) and the midpoint between them, exact in
    // double (a double has far more bits than a 12-bit midpoint needs) and exact as a float.
    const auto up = static_cast<std::uint16_t>(h + 1);
    const double vu = std::isinf(dec(up)) ? std::copysign(past_max, v) : dec(up);
    const double mid = (v + vu) / 2;
    const float fm = static_cast<float>(mid);
    ASSERT_EQ(double(fm), mid) << b;
    // ties to the even significand: the pattern whose last bit is 0
    const std::uint16_t even = (h & 1u) ? up : h;
    ASSERT_EQ(narrow(fm), even) << b << " mid " << mid;
    // one float either side of the midpoint: the nearer neighbour
    const float inside = std::nextafter(fm, static_cast<float>(v));
    const float outside =
        std::nextafter(fm, std::copysign(std::numeric_limits<float>::infinity(), float(v)));
    ASSERT_EQ(narrow(inside), h) << b;
    ASSERT_EQ(narrow(outside), up) << b;
  }
}

TEST(Float16, AllPatternsWidenExactlyAndNarrowToNearestEven) {
  // past the largest finite 65504 = (2^11 - 1) 2^5 comes 2^16, where the midpoint 65520 sits
  check_format(float_to_half_bits, half_bits_to_float, decode_half, 65536.0);
}

TEST(Bfloat16, AllPatternsWidenExactlyAndNarrowToNearestEven) {
  // past the largest finite (2^8 - 1) 2^120 comes 2^128
  check_format(float_to_bfloat16_bits, bfloat16_bits_to_float, decode_bf16, std::ldexp(1.0, 128));
}

// Far outside the formats: large floats overflow to inf, tiny ones underflow to a signed zero.
TEST(Float16, OverflowsToInfinityAndUnderflowsToSignedZero) {
  EXPECT_EQ(float_to_half_bits(1e10f), 0x7c00u);
  EXPECT_EQ(float_to_half_bits(-std::numeric_limits<float>::max()), 0xfc00u);
  EXPECT_EQ(float_to_half_bits(std::numeric_limits<float>::infinity()), 0x7c00u);
  EXPECT_EQ(float_to_half_bits(1e-30f), 0x0000u);
  EXPECT_EQ(float_to_half_bits(-1e-30f), 0x8000u);
  EXPECT_EQ(float_to_half_bits(std::numeric_limits<float>::denorm_min()), 0x0000u);
  EXPECT_EQ(float_to_bfloat16_bits(std::numeric_limits<float>::max()), 0x7f80u);
  EXPECT_EQ(float_to_bfloat16_bits(-std::numeric_limits<float>::denorm_min()), 0x8000u);
}

// From 50 digits: a value just past a midpoint must go to the far neighbour, although the
// nearest float is the midpoint itself (rounding f50 -> float -> half to nearest twice would
// then tie to even, the wrong way for half of them). Round-to-odd through float gets it right.
TEST(HalfFromFiftyDigits, JustPastEveryMidpointRoundsAwayNotToEven) {
  for (int fmt = 0; fmt < 2; ++fmt) {
    auto dec = fmt == 0 ? decode_half : decode_bf16;
    auto round = fmt == 0 ? io::round_to_half : io::round_to_bfloat16;
    for (std::uint32_t b = 0; b < 0x7f00u; b += (fmt == 0 ? 1 : 7)) {  // positive finite
      const auto h = static_cast<std::uint16_t>(b);
      const double v = dec(h), vu = dec(static_cast<std::uint16_t>(h + 1));
      if (std::isinf(vu) || std::isnan(vu) || std::isnan(v)) continue;
      const f50 mid = (f50(v) + f50(vu)) / 2;
      const f50 tiny = mid * f50(std::ldexp(1.0, -100)) + f50(std::ldexp(1.0, -200));
      ASSERT_EQ(double(round(mid + tiny)), vu) << fmt << " " << b;
      ASSERT_EQ(double(round(mid - tiny)), v) << fmt << " " << b;
      ASSERT_EQ(double(round(mid)), (h & 1u) ? vu : v) << fmt << " " << b;
      ASSERT_EQ(double(round(-(mid + tiny))), -vu) << fmt << " " << b;
    }
  }
}

// ULPs counted in the format: neighbours are 1 apart, across zero the counts add (+0 == -0),
// and the distance between the extreme finite values is the count of patterns between them.
TEST(Float16, UlpDistanceCountsFormatValues) {
  using gradcheck::UlpPrecision;
  const auto d = [](double a, double b, UlpPrecision p) {
    return gradcheck::ulp_distance(a, b, p);
  };
  EXPECT_EQ(d(1.0, 1.0 + std::ldexp(1.0, -10), UlpPrecision::float16), 1u);
  EXPECT_EQ(d(1.0, 1.0 + std::ldexp(1.0, -7), UlpPrecision::bfloat16), 1u);
  EXPECT_EQ(d(1.0, 1.0 + std::ldexp(1.0, -7), UlpPrecision::float16), 8u);
  EXPECT_EQ(d(0.0, -0.0, UlpPrecision::float16), 0u);
  // min subnormal 2^-24 on either side of zero: 2 apart
  EXPECT_EQ(d(std::ldexp(1.0, -24), -std::ldexp(1.0, -24), UlpPrecision::float16), 2u);
  // -65504 .. 65504: 0x7bff patterns above zero on each side
  EXPECT_EQ(d(-65504.0, 65504.0, UlpPrecision::float16), 2u * 0x7bffu);
  // a value between two float16s is rounded first: 1 + 2^-12 rounds to 1 (tie to even)
  EXPECT_EQ(d(1.0, 1.0 + std::ldexp(1.0, -11), UlpPrecision::float16), 0u);
  EXPECT_EQ(d(1.0, 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -20), UlpPrecision::float16), 1u);
}

}  // namespace
}  // namespace tapegrad
