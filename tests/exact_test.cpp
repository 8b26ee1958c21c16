// The exact engine (kernels/exact.hpp): its error-free transformations and decisions on values
// whose rounding is known by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/exact_sum.hpp"  // the accumulator's internals (src/kernels)
#include "tapegrad/kernels/conv2d_fast.hpp"

namespace tapegrad {
namespace {

namespace d = exact::detail;

constexpr double inf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------- the building blocks

TEST(ExactSum, twoSumAndTwoProdAreErrorFree) {
  // 1 + 2^-60 is not a double: the sum rounds to 1 and the error is the whole 2^-60.
  const d::DD s = d::two_sum(1.0, 0x1p-60);
  EXPECT_EQ(s.hi, 1.0);
  EXPECT_EQ(s.lo, 0x1p-60);
  // (1 + 2^-30)^2 = 1 + 2^-29 + 2^-60: the product keeps 1 + 2^-29, the error is 2^-60.
  const d::DD p = d::two_prod(1 + 0x1p-30, 1 + 0x1p-30);
  EXPECT_EQ(p.hi, 1 + 0x1p-29);
  EXPECT_EQ(p.lo, 0x1p-60);
}

TEST(ExactSum, accumulatorKeepsWhatCancellationLeaves) {
  // 2^60 + 1 - 2^60 = 1: the 1 is lost in s and kept in c.
  d::Raw r;
  for (double t : {0x1p60, 1.0, -0x1p60}) d::add_term(r, t);
  EXPECT_EQ(r.s + r.c, 1.0);
  EXPECT_EQ(r.a, 0x1p61 + 1);  // sum |t| = 2^61 + 1, exact in double
}

// Every micro-kernel of every instruction set the CPU runs sums a known cancelling dot product
// exactly: sum_t coef_t * src_t with terms 2^50, 3, -2^50, 2^-30 (as products 2^25 * 2^25,
// 1 * 3, ...), so s + c = 3 + 2^-30.
TEST(ExactSum, microKernelsSumExactlyOnEveryIsa) {
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    try {
      fast::set_isa(isa);
    } catch (const std::invalid_argument&) {
      continue;  // not on this CPU
    }
    const d::Kernels& k = d::kernels();
    const std::vector<double> a{0x1p25, 1, -0x1p25, 0x1p-15}, b{0x1p25, 3, 0x1p25, 0x1p-15};
    // row kernel: every output row o and column j gets the same dot product
    std::vector<double> coef, rows;
    for (double v : a)
      for (int o = 0; o < k.row_mo; ++o) coef.push_back(v);
    std::vector<std::vector<double>> srcs;
    for (double v : b) srcs.emplace_back(static_cast<std::size_t>(k.row_width), v);
    std::vector<const double*> src;
    for (const auto& s : srcs) src.push_back(s.data());
    std::vector<d::Raw> out(static_cast<std::size_t>(k.row_mo * k.row_width));
    k.row(4, coef.data(), src.data(), out.data(), k.row_width);
    for (const d::Raw& r : out) {
      const d::DD t = d::two_sum(r.s, r.c);
      EXPECT_EQ(t.hi, 3 + 0x1p-30) << isa;
      EXPECT_EQ(t.lo, 0.0) << isa;
    }
    // dot kernel: the same terms spread over the lanes of one run (zero-padded)
    std::vector<double> ra(static_cast<std::size_t>(4 * k.lanes), 0.0), rb = ra;
    for (int t = 0; t < 4; ++t) ra[t * k.lanes + t % k.lanes] = a[t], rb[t * k.lanes + t % k.lanes] = b[t];
    std::vector<const double*> pa(static_cast<std::size_t>(k.dot_mi), ra.data()),
        pb(static_cast<std::size_t>(k.dot_nj), rb.data());
    std::vector<d::Raw> dout(static_cast<std::size_t>(k.dot_mi * k.dot_nj));
    k.dot(pa.data(), pb.data(), 1, 0, 0, 1, 0, 0, 4 * k.lanes, dout.data());
    for (const d::Raw& r : dout) EXPECT_EQ(r.s + r.c, 3 + 0x1p-30) << isa;
  }
  fast::set_isa("best");
}

// ---------------------------------------------------------------- the decisions

TEST(ExactDecision, decidesWhenTheIntervalIsInsideOneRounding) {
  double y = 0;
  // A = 1 + 2^-54 (a quarter ulp above 1), beta 2^-80: everything rounds to 1.
  EXPECT_TRUE(d::decide_nearest(1.0, 0x1p-54, 0x1p-80, 0, y));
  EXPECT_EQ(y, 1.0);
  // The same at scale 2^-100 (sigma = 100): the unscaled value is 2^-100 (1 + 2^-54).
  EXPECT_TRUE(d::decide_nearest(1.0, 0x1p-54, 0x1p-80, 100, y));
  EXPECT_EQ(y, 0x1p-100);
  // A = 1 + 3*2^-54: past the midpoint 1 + 2^-53, rounds up to 1 + 2^-52.
  EXPECT_TRUE(d::decide_nearest(1.0 + 0x1p-52, -0x1p-54, 0x1p-80, 0, y));
  EXPECT_EQ(y, 1.0 + 0x1p-52);
  // float: 1 + 2^-30 rounds to 1 in float.
  float f = 0;
  EXPECT_TRUE(d::decide_nearest(1.0 + 0x1p-30, 0.0, 0x1p-80, 0, f));
  EXPECT_EQ(f, 1.0f);
}

TEST(ExactDecision, refusesAMidpointWithinTheBound) {
  double y = 0;
  // A = 1 + 2^-53 exactly, the midpoint between 1 and 1 + 2^-52: beta > 0 straddles it.
  EXPECT_FALSE(d::decide_nearest(1.0, 0x1p-53, 0x1p-90, 0, y));
  // Just above the midpoint but closer than beta.
  EXPECT_FALSE(d::decide_nearest(1.0 + 0x1p-52, -0x1p-53 + 0x1p-100, 0x1p-90, 0, y));
  // Farther than beta: decided, upwards (A = 1 + 2^-53 + 2^-80 as TwoSum leaves it).
  EXPECT_TRUE(d::decide_nearest(1.0 + 0x1p-52, -0x1p-53 + 0x1p-80, 0x1p-90, 0, y));
  EXPECT_EQ(y, 1.0 + 0x1p-52);
  // Below a power of two the gap halves: A = 1 - 2^-54 is the midpoint of 1 - 2^-53 and 1.
  EXPECT_FALSE(d::decide_nearest(1.0, -0x1p-54, 0x1p-90, 0, y));
  EXPECT_TRUE(d::decide_nearest(1.0, -0x1p-55, 0x1p-90, 0, y));
  EXPECT_EQ(y, 1.0);
  // float midpoint 1 + 2^-24.
  float f = 0;
  EXPECT_FALSE(d::decide_nearest(1.0 + 0x1p-24, 0.0, 0x1p-90, 0, f));
}

// beta = 0 (the exactness certificate: A = E = F) decides the ties too, to even.
TEST(ExactDecision, exactMidpointsRoundToEven) {
  double y = 0;
  // 1 + 2^-53: between 1 (even) and 1 + 2^-52 (odd).
  EXPECT_TRUE(d::decide_nearest(1.0, 0x1p-53, 0.0, 0, y));
  EXPECT_EQ(y, 1.0);
  // 1 + 3*2^-53, as TwoSum leaves it (h = 1 + 2^-51, l = -2^-53): between 1 + 2^-52 (odd)
  // and 1 + 2^-51 (even).
  EXPECT_TRUE(d::decide_nearest(1.0 + 0x1p-51, -0x1p-53, 0.0, 0, y));
  EXPECT_EQ(y, 1.0 + 0x1p-51);
  // float: 1 + 2^-24 -> 1, 1 + 3*2^-24 -> 1 + 2^-22.
  float f = 0;
  EXPECT_TRUE(d::decide_nearest(1.0 + 0x1p-24, 0.0, 0.0, 0, f));
  EXPECT_EQ(f, 1.0f);
  EXPECT_TRUE(d::decide_nearest(1.0 + 3 * 0x1p-24, 0.0, 0.0, 0, f));
  EXPECT_EQ(f, 1.0f + 0x1p-22f);
  // Half the smallest subnormal rounds to zero (even), keeping the sign; an exact 0 is +0.
  EXPECT_TRUE(d::decide_nearest(-0x1p-875, 0.0, 0.0, 200, y));
  EXPECT_EQ(y, 0.0);
  EXPECT_TRUE(std::signbit(y));
  EXPECT_TRUE(d::decide_nearest(0.0, 0.0, 0.0, 200, y));
  EXPECT_FALSE(std::signbit(y));
  // max + ulp(max)/2 exactly rounds to infinity.
  EXPECT_TRUE(d::decide_nearest(std::numeric_limits<double>::max() * 0x1p-8, 0x1p962, 0.0, -8, y));
  EXPECT_EQ(y, inf);
}

TEST(ExactDecision, overflowAndTheLargestDouble) {
  const double mx = std::numeric_limits<double>::max();  // (2 - 2^-52) 2^1023, ulp 2^971
  double y = 0;
  // sigma = -8: the output is A * 2^8. A = mx 2^-8 + a quarter ulp: stays max.
  EXPECT_TRUE(d::decide_nearest(mx * 0x1p-8, 0x1p961, 0x1p900, -8, y));
  EXPECT_EQ(y, mx);
  // A = (mx + 0.75 ulp) 2^-8: beyond the threshold mx + ulp/2, rounds to +inf.
  EXPECT_TRUE(d::decide_nearest(mx * 0x1p-8 + 0x1p963, 0x1p962, 0x1p900, -8, y));
  EXPECT_EQ(y, inf);
  EXPECT_TRUE(d::decide_nearest(-(mx * 0x1p-8 + 0x1p963), -0x1p962, 0x1p900, -8, y));
  EXPECT_EQ(y, -inf);
  // Exactly at the threshold (IEEE rounds it to inf) with beta > 0: refused.
  EXPECT_FALSE(d::decide_nearest(mx * 0x1p-8, 0x1p962, 0x1p900, -8, y));
  // float: 2^128 (1 - 2^-25) is float's threshold.
  float f = 0;
  EXPECT_TRUE(d::decide_nearest(0x1p128, 0.0, 0x1p60, 0, f));
  EXPECT_EQ(f, std::numeric_limits<float>::infinity());
}

TEST(ExactDecision, zerosSubnormalsAndSigns) {
  double y = 1;
  // 3 * 2^-1074 (a subnormal) at scale 2^200, plus a hair: decided as exactly that subnormal.
  EXPECT_TRUE(d::decide_nearest(0x1p-874 * 3, 0x1p-930, 0x1p-940, 200, y));
  EXPECT_EQ(y, 3 * std::numeric_limits<double>::denorm_min());
  // 2^-1076 (a quarter of the smallest subnormal): rounds to zero with the sign of A.
  EXPECT_TRUE(d::decide_nearest(0x1p-876, 0.0, 0x1p-940, 200, y));
  EXPECT_EQ(y, 0.0);
  EXPECT_FALSE(std::signbit(y));
  EXPECT_TRUE(d::decide_nearest(-0x1p-876, 0.0, 0x1p-940, 200, y));
  EXPECT_EQ(y, 0.0);
  EXPECT_TRUE(std::signbit(y));
  // |A| <= beta: the sign is unknown, refused.
  EXPECT_FALSE(d::decide_nearest(0x1p-941, 0.0, 0x1p-940, 200, y));
  // float zero: 2^-151 is below half float's smallest subnormal 2^-149.
  float f = 1;
  EXPECT_TRUE(d::decide_nearest(-0x1p-152, 0.0, 0x1p-200, 0, f));
  EXPECT_EQ(f, 0.0f);
  EXPECT_TRUE(std::signbit(f));
}

TEST(ExactDecision, upperBoundIsAboveAndClose) {
  // A = 1 + 2^-60, beta = 2^-70: the bound is the next double above 1.
  EXPECT_EQ(d::upper_bound(1.0, 0x1p-60, 0x1p-70, 0), 1.0 + 0x1p-52);
  // An exactly representable A with beta > 0 still rounds up, never to A itself.
  EXPECT_EQ(d::upper_bound(0.5, 0.0, 0x1p-90, 0), 0.5 + 0x1p-53);
  // Unscaling into the subnormal range rounds up too: 2^-1080 -> 2^-1074.
  EXPECT_EQ(d::upper_bound(0x1p-880, 0.0, 0x1p-990, 200),
            std::numeric_limits<double>::denorm_min());
}

TEST(ExactScale, exactUnlessATensorSpansMoreThanDoubleCanHold) {
  d::Range a, b;
  for (double v : {1e-300, 3.0, -1e300}) a.add(v);
  for (double v : {0.5, -2.0}) b.add(v);
  const d::Scale sc = d::choose_scale(a, b, d::Range{}, 100);
  EXPECT_TRUE(sc.ok);
  EXPECT_TRUE(sc.zero_exact);
  // The largest scaled product is below 2^(1018 - bit_width(101)) = 2^1011.
  EXPECT_LT(std::fabs(d::scale_by(-1e300, sc.sa) * d::scale_by(-2.0, sc.sb)), 0x1p1011);
  // A tensor holding both the smallest subnormal and the largest double cannot be scaled.
  d::Range wide;
  for (double v : {std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::max()})
    wide.add(v);
  EXPECT_FALSE(d::choose_scale(wide, b, d::Range{}, 10).ok);
  EXPECT_FALSE(d::choose_scale_sum(wide, 10).ok);
}

}  // namespace
}  // namespace tapegrad
