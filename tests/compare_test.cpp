// compare(): exact ULP distances, the default tolerance, NaN handling, the histogram, the report.
#include "tapegrad/gradcheck/compare.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>

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

}  // namespace
}  // namespace tapegrad::gradcheck
