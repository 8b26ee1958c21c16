// compare(): exact ULP distances, the default tolerance, NaN handling, the histogram, the report.
#include "tapegrad/gradcheck/compare.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <utility>

namespace tapegrad::gradcheck {
namespace {

Tensor<double> vec(std::vector<double> v) {
  const auto n = static_cast<index_t>(v.size());
  return Tensor<double>(Shape{n}, std::move(v));
}

// Options with only the named criteria set (designated initializers would warn under
// -Wmissing-field-initializers).
CompareOptions max_ulps(std::uint64_t u) {
  CompareOptions o;
  o.max_ulps = u;
  return o;
}
CompareOptions tol(double rtol, double atol) {
  CompareOptions o;
  o.rtol = rtol;
  o.atol = atol;
  return o;
}
CompareOptions rtol_only(double rtol) {
  CompareOptions o;
  o.rtol = rtol;
  return o;
}
CompareOptions atol_only(double atol) {
  CompareOptions o;
  o.atol = atol;
  return o;
}

TEST(UlpDistance, CountsRepresentableValuesExactly) {
  EXPECT_EQ(ulp_distance(1.0, 1.0), 0u);
  EXPECT_EQ(ulp_distance(1.0, std::nextafter(1.0, 2.0)), 1u);
  // From 1 - 2^-53 (the double just below 1) to 1 + 2^-52 (just above): 2 steps.
  EXPECT_EQ(ulp_distance(std::nextafter(1.0, 0.0), std::nextafter(1.0, 2.0)), 2u);
  // +0 and -0 coincide; across zero, the two smallest subnormals are 2 apart.
  EXPECT_EQ(ulp_distance(0.0, -0.0), 0u);
  const double tiny = std::numeric_limits<double>::denorm_min();
  EXPECT_EQ(ulp_distance(-tiny, tiny), 2u);
  // Between 1 and 2 there are 2^52 steps (the significand's range).
  EXPECT_EQ(ulp_distance(1.0, 2.0), std::uint64_t{1} << 52);
  EXPECT_EQ(ulp_distance(1.0f, 2.0f), std::uint64_t{1} << 23);
  // -inf to +inf: 2 * (0x7ff0000000000000) steps, beyond the int64 range: no overflow.
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(ulp_distance(-inf, inf), 2 * std::uint64_t{0x7ff0000000000000});
}

TEST(Compare, IdenticalArraysPassWithZeroError) {
  const auto a = vec({1, -2, 0, 1e-300, 3.5});
  const CompareReport r = compare(a, a, max_ulps(0));
  EXPECT_TRUE(r.passed());
  EXPECT_EQ(r.max_abs_error, 0);
  EXPECT_EQ(r.max_ulp_error, 0u);
  EXPECT_EQ(r.histogram[0], 5);
}

TEST(Compare, OneUlpDifferenceFailsMaxUlpsZeroAndPassesMaxUlpsOne) {
  const auto e = vec({1, 2, 3});
  auto a = e;
  a[1] = std::nextafter(2.0, 3.0);  // 1 ULP above 2: abs error 2^-51
  const CompareReport r0 = compare(a, e, max_ulps(0));
  EXPECT_FALSE(r0.passed());
  EXPECT_EQ(r0.failing, 1);
  EXPECT_EQ(r0.max_ulp_error, 1u);
  EXPECT_EQ(r0.max_abs_error, std::ldexp(1.0, -51));
  EXPECT_EQ(r0.max_rel_error, std::ldexp(1.0, -52));
  ASSERT_TRUE(r0.worst_index.has_value());
  EXPECT_EQ(*r0.worst_index, 1);
  EXPECT_EQ(r0.histogram[1], 1);
  EXPECT_TRUE(compare(a, e, max_ulps(1)).passed());
}

TEST(Compare, DefaultToleranceIsEightUnitRoundoffs) {
  // Default rtol = 8 * 2^-53 = 2^-50. At e = 1 (ulp 2^-52) that accepts 4 ULPs, not 5.
  const auto e = vec({1.0});
  EXPECT_TRUE(compare(vec({1.0 + 4 * std::ldexp(1.0, -52)}), e).passed());
  EXPECT_FALSE(compare(vec({1.0 + 5 * std::ldexp(1.0, -52)}), e).passed());
  EXPECT_TRUE(compare(vec({1.0}), e).default_tolerance);
  EXPECT_EQ(default_rtol(UlpPrecision::float32), std::ldexp(1.0, -21));
}

TEST(Compare, ExpectedZeroNeedsAtol) {
  // rel error is +inf where e == 0 and a != 0 (documented guard); rtol alone cannot accept it.
  const auto e = vec({0.0, 1.0});
  const auto a = vec({1e-20, 1.0});
  const CompareReport r = compare(a, e, rtol_only(1e-3));
  EXPECT_TRUE(std::isinf(r.max_rel_error));
  EXPECT_FALSE(r.passed());
  EXPECT_TRUE(compare(a, e, tol(1e-3, 1e-19)).passed());
  EXPECT_EQ(compare(e, e).max_rel_error, 0);  // 0 vs 0 is no error
}

TEST(Compare, NanWhereFiniteExpectedAlwaysFails) {
  const auto e = vec({1.0, 2.0, NAN, INFINITY});
  const auto a = vec({1.0, NAN, NAN, INFINITY});
  // Even with a tolerance accepting everything finite, and NaN against NaN accepted.
  CompareOptions o = tol(1e300, 1e300);
  o.nan_equal = true;
  const CompareReport r = compare(a, e, o);
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.failing, 1);
  EXPECT_EQ(r.nonfinite_mismatches, 1);
  EXPECT_EQ(*r.worst_index, 1);
  EXPECT_TRUE(r.worst_nonfinite_mismatch);
  // +inf against -inf is a mismatch too.
  EXPECT_FALSE(compare(vec({INFINITY}), vec({-INFINITY}), atol_only(1e300)).passed());
}

TEST(Compare, NanAgainstNanFailsUnlessNanEqual) {
  // The policy (compare.hpp): a NaN is no value, so NaN against NaN fails by default; the same
  // infinity on both sides passes and is counted; --nan-equal (nan_equal) accepts NaN pairs.
  const auto e = vec({1.0, NAN, INFINITY, -INFINITY});
  const auto a = vec({1.0, -NAN, INFINITY, -INFINITY});
  const CompareReport r = compare(a, e, tol(1e300, 1e300));
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.failing, 1);
  EXPECT_EQ(r.nan_pairs, 1);
  EXPECT_EQ(r.infinity_pairs, 2);
  EXPECT_EQ(r.nonfinite_mismatches, 0);
  EXPECT_EQ(*r.worst_index, 1);
  std::ostringstream os;
  r.print(os);
  EXPECT_NE(os.str().find("1 NaN against NaN (failing; --nan-equal accepts them), 2 equal "
                          "infinities (passing)"),
            std::string::npos)
      << os.str();
  CompareOptions o = tol(1e300, 1e300);
  o.nan_equal = true;
  EXPECT_TRUE(compare(a, e, o).passed());
  // The default tolerance, too: only the NaN pair fails.
  EXPECT_EQ(compare(a, e).failing, 1);
}

TEST(Compare, EmptyArraysCompareNothingAndFailUnlessAllowed) {
  const Tensor<double> empty(Shape{0, 3});
  const CompareReport r = compare(empty, empty);
  EXPECT_EQ(r.failing, 0);
  EXPECT_FALSE(r.passed());
  std::ostringstream os;
  r.print(os);
  EXPECT_NE(os.str().find("nothing compared: both arrays are empty"), std::string::npos);
  EXPECT_EQ(os.str().substr(os.str().size() - 5), "FAIL\n");
  CompareOptions o;
  o.allow_empty = true;
  EXPECT_TRUE(compare(empty, empty, o).passed());
}

TEST(Compare, FloatUlpsCountFloatSteps) {
  const Tensor<float> e(Shape{2}, std::vector<float>{1.0f, 100.0f});
  Tensor<float> a = e;
  a[1] = std::nextafter(std::nextafter(std::nextafter(100.0f, 200.0f), 200.0f), 200.0f);
  const CompareReport r = compare(a, e, max_ulps(2));
  EXPECT_EQ(r.precision, UlpPrecision::float32);
  EXPECT_EQ(r.max_ulp_error, 3u);
  EXPECT_EQ(r.histogram[2], 1);  // bucket "2-3"
  EXPECT_FALSE(r.passed());
  // The same values judged in float64 ULPs: 100 has ulp 2^-46 in double and 2^-17 in float,
  // so 3 float ULPs are 3 * 2^29 double ULPs.
  const CompareReport rd = compare(a.cast<double>(), e.cast<double>(), max_ulps(0));
  EXPECT_EQ(rd.max_ulp_error, 3 * (std::uint64_t{1} << 29));
}

TEST(Compare, ShapeMismatchIsInvalidArgument) {
  EXPECT_THROW(compare(vec({1, 2}), vec({1, 2, 3})), std::invalid_argument);
}

TEST(Compare, HistogramBucketsArePowersOfTwo) {
  EXPECT_EQ(CompareReport::bucket_label(0), "0");
  EXPECT_EQ(CompareReport::bucket_label(1), "1");
  EXPECT_EQ(CompareReport::bucket_label(2), "2-3");
  EXPECT_EQ(CompareReport::bucket_label(3), "4-7");
  EXPECT_EQ(CompareReport::bucket_label(64), "9223372036854775808-18446744073709551615");
  // ULP errors 0, 1, 5, 6, 8: buckets 0, 1, 3, 3, 4.
  std::vector<double> e(5, 1.0), a(5);
  const std::uint64_t ulps[] = {0, 1, 5, 6, 8};
  for (int i = 0; i < 5; ++i) a[i] = 1.0 + static_cast<double>(ulps[i]) * std::ldexp(1.0, -52);
  const CompareReport r = compare(vec(a), vec(e), max_ulps(100));
  EXPECT_EQ(r.histogram[0], 1);
  EXPECT_EQ(r.histogram[1], 1);
  EXPECT_EQ(r.histogram[2], 0);
  EXPECT_EQ(r.histogram[3], 2);
  EXPECT_EQ(r.histogram[4], 1);
  EXPECT_EQ(*r.worst_index, 4);
}

TEST(Compare, PrintedReportNamesWorstElementAndVerdict) {
  const Tensor<double> e(Shape{2, 2}, std::vector<double>{1, 2, 3, 4});
  Tensor<double> a = e;
  a(1, 0) = 3.5;
  std::ostringstream os;
  compare(a, e).print(os);
  const std::string s = os.str();
  EXPECT_NE(s.find("worst element    [1,0]: actual 3.5, expected 3"), std::string::npos) << s;
  EXPECT_NE(s.find("failing          1 of 4"), std::string::npos) << s;
  EXPECT_EQ(s.substr(s.size() - 5), "FAIL\n");
}


// ---------------------------------------------------------------- each tolerance, both sides
// An element passes iff |a - e| <= atol + rtol |e| (compare.hpp; the tolerance relative to the
// EXPECTED value e) and, when given, its ULP error <= max_ulps. For each option the tests put
// `a` at the double just inside and just outside the bound computed here from that formula
// (near e, a - e is exact, so "just" is one ULP of a).
// The doubles nearest the bound on either side: the largest a with a - e <= t, and the next.
std::pair<double, double> around(double e, double t) {
  double a = e + t;
  while (a - e > t) a = std::nextafter(a, -INFINITY);
  while (std::nextafter(a, INFINITY) - e <= t) a = std::nextafter(a, INFINITY);
  return {a, std::nextafter(a, INFINITY)};
}
std::pair<double, double> around_below(double e, double t) {  // e - t side: inside, outside
  double a = e - t;
  while (e - a > t) a = std::nextafter(a, INFINITY);
  while (e - std::nextafter(a, -INFINITY) <= t) a = std::nextafter(a, -INFINITY);
  return {a, std::nextafter(a, -INFINITY)};
}

TEST(CompareBound, RtolAloneIsRelativeToTheExpectedValueOnBothSides) {
  // e = 3, rtol = 1e-3: t = 3e-3. Relative to |a| instead, 3.003 would allow 3.003e-3 and the
  // "outside" value above would pass; below, 2.997 would allow only 2.997e-3 and the "inside"
  // value would fail.
  const double e = 3, rtol = 1e-3, t = rtol * std::fabs(e);
  const auto [in_hi, out_hi] = around(e, t);
  const auto [in_lo, out_lo] = around_below(e, t);
  EXPECT_TRUE(compare(vec({in_hi}), vec({e}), rtol_only(rtol)).passed());
  EXPECT_FALSE(compare(vec({out_hi}), vec({e}), rtol_only(rtol)).passed());
  EXPECT_TRUE(compare(vec({in_lo}), vec({e}), rtol_only(rtol)).passed());
  EXPECT_FALSE(compare(vec({out_lo}), vec({e}), rtol_only(rtol)).passed());
  // the report says what it applied: rtol, and atol 0 (not the default)
  const CompareReport r = compare(vec({in_hi}), vec({e}), rtol_only(rtol));
  EXPECT_EQ(r.rtol, rtol);
  EXPECT_EQ(r.atol, 0);
  EXPECT_FALSE(r.default_tolerance);
}

TEST(CompareBound, AtolAloneIsAnAbsoluteBoundWhateverTheMagnitude) {
  // atol = 1e-6 at e = 1000 (where the default rtol 8u would allow only 1.8e-12) and at e = 0.
  for (const double e : {1000.0, 0.0, -2.5}) {
    const double atol = 1e-6;
    const auto [in_hi, out_hi] = around(e, atol);
    const auto [in_lo, out_lo] = around_below(e, atol);
    EXPECT_TRUE(compare(vec({in_hi}), vec({e}), atol_only(atol)).passed()) << e;
    EXPECT_FALSE(compare(vec({out_hi}), vec({e}), atol_only(atol)).passed()) << e;
    EXPECT_TRUE(compare(vec({in_lo}), vec({e}), atol_only(atol)).passed()) << e;
    EXPECT_FALSE(compare(vec({out_lo}), vec({e}), atol_only(atol)).passed()) << e;
    const CompareReport r = compare(vec({in_hi}), vec({e}), atol_only(atol));
    EXPECT_EQ(r.rtol, 0);
    EXPECT_EQ(r.atol, atol);
  }
}

TEST(CompareBound, RtolAndAtolTogetherAddUp) {
  const double e = -40, rtol = 1e-4, atol = 1e-3;
  const double t = atol + rtol * std::fabs(e);  // 5e-3: either alone would fail both values
  const auto [in, out] = around(e, t);
  EXPECT_TRUE(compare(vec({in}), vec({e}), tol(rtol, atol)).passed());
  EXPECT_FALSE(compare(vec({out}), vec({e}), tol(rtol, atol)).passed());
  EXPECT_FALSE(compare(vec({in}), vec({e}), rtol_only(rtol)).passed());
  EXPECT_FALSE(compare(vec({in}), vec({e}), atol_only(atol)).passed());
}

TEST(CompareBound, MaxUlpsWithAToleranceMustHoldBoth) {
  // e = 1: a = 1 + 6 ULP (6 * 2^-52 ~ 1.3e-15). max_ulps 6 with rtol 1e-15 fails on the
  // tolerance, with rtol 1e-14 passes; max_ulps 5 with rtol 1e-14 fails on the ULPs.
  const double e = 1, a = 1 + 6 * std::ldexp(1.0, -52);
  auto both = [](std::uint64_t u, double rtol) {
    CompareOptions o;
    o.max_ulps = u;
    o.rtol = rtol;
    return o;
  };
  EXPECT_FALSE(compare(vec({a}), vec({e}), both(6, 1e-15)).passed());
  EXPECT_TRUE(compare(vec({a}), vec({e}), both(6, 1e-14)).passed());
  EXPECT_FALSE(compare(vec({a}), vec({e}), both(5, 1e-14)).passed());
  // max_ulps alone: no tolerance at all is applied (a far value within the ULPs passes)
  EXPECT_TRUE(compare(vec({a}), vec({e}), max_ulps(6)).passed());
}

TEST(CompareBound, FloatDefaultIsEightFloatUnitRoundoffsRelativeToExpected) {
  // u = 2^-24, rtol = 2^-21; at e = 1 the float ULP above is 2^-23: 4 ULPs pass, 5 fail; at
  // e = 1 approached from below (ULP 2^-24) 8 ULPs pass and 9 fail.
  const Tensor<float> e(Shape{1}, std::vector<float>{1.0f});
  auto ulps_from_one = [](int k, float dir) {
    float v = 1.0f;
    for (int i = 0; i < k; ++i) v = std::nextafter(v, dir);
    return Tensor<float>(Shape{1}, std::vector<float>{v});
  };
  EXPECT_TRUE(compare(ulps_from_one(4, 2.0f), e).passed());
  EXPECT_FALSE(compare(ulps_from_one(5, 2.0f), e).passed());
  EXPECT_TRUE(compare(ulps_from_one(8, 0.0f), e).passed());
  EXPECT_FALSE(compare(ulps_from_one(9, 0.0f), e).passed());
}

}  // namespace
}  // namespace tapegrad::gradcheck
