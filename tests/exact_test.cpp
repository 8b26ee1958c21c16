// The exact engine (kernels/exact.hpp): its error-free transformations and decisions on values
// whose rounding is known by hand, and every exact kernel against its reference twin run on
// f50 tensors and rounded once by io::round_to_double / round_to_float -- bit for bit, with the
// fallback counted where the fast path cannot decide.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/exact_sum.hpp"  // the accumulator's internals (src/kernels)
#include "tapegrad/io/npy.hpp"
#include "tapegrad/kernels/conv2d_exact.hpp"
#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/kernels/linear_exact.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/kernels/pool_exact.hpp"
#include "tapegrad/kernels/pool_ref.hpp"
#include "tapegrad/random.hpp"

namespace tapegrad {
namespace {

using exact::AbsSumUp;
using exact::Nearest;
using exact::Precise;
using exact::Stats;
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

// ---------------------------------------------------------------- kernels against the reference

template <class T>
bool same_bits(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(T)) == 0;
}

// The reference result rounded once, as `tapegrad ref --engine f50` writes it.
template <class T>
Tensor<T> rounded(const Tensor<f50>& t) {
  return map(t, [](const f50& v) {
    if constexpr (std::is_same_v<T, float>) {
      return io::round_to_float(v);
    } else {
      return io::round_to_double(v);
    }
  });
}

Tensor<double> random_tensor(const Shape& s, std::uint64_t seed) {
  Rng rng(seed);
  return uniform_tensor<double>(s, rng, -1, 1);
}

// Where the element differs, for the failure message.
template <class T>
std::string first_difference(const Tensor<T>& a, const Tensor<T>& b) {
  for (index_t i = 0; i < a.numel(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0)
      return "element " + std::to_string(i) + ": " + std::to_string(double(a[i])) + " vs " +
             std::to_string(double(b[i]));
  return "none";
}

#define EXPECT_SAME_BITS(a, b) EXPECT_TRUE(same_bits(a, b)) << first_difference(a, b)

struct ConvCase {
  Shape x, w;
  Conv2dParams prm;
  bool bias;
};

std::vector<ConvCase> conv_cases() {
  return {
      {{2, 3, 7, 7}, {4, 3, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 1}, true},
      {{2, 4, 9, 8}, {6, 2, 3, 2}, {{2, 3}, {1, 2}, {2, 1}, 2}, true},  // strides, groups
      {{1, 6, 11, 13}, {6, 1, 3, 3}, {{2, 2}, {0, 1}, {1, 2}, 6}, false},  // depthwise, dilated
      {{3, 2, 5, 5}, {2, 2, 5, 5}, {{1, 1}, {2, 2}, {1, 1}, 1}, true},  // kernel = padded input
      {{1, 2, 5, 9}, {3, 2, 1, 3}, {{4, 1}, {0, 4}, {1, 3}, 1}, false},  // pad wider than kernel
      {{1, 3, 17, 19}, {5, 3, 7, 7}, {{2, 2}, {3, 3}, {1, 1}, 1}, true},  // ragged tiles
  };
}

template <class T>
void conv_all_directions_match(const ConvCase& c) {
  const Shape bs{c.w[0]};
  const Conv2dGeom g = make_conv2d_geom(c.x, c.w, c.bias ? &bs : nullptr, c.prm);
  const Tensor<double> x = random_tensor(g.x_shape(), 1), w = random_tensor(g.w_shape(), 2),
                       b = random_tensor(g.b_shape(), 3), dy = random_tensor(g.y_shape(), 4);
  const Tensor<f50> x5 = x.cast<f50>(), w5 = w.cast<f50>(), b5 = b.cast<f50>(),
                    dy5 = dy.cast<f50>();
  const Tensor<double>* bp = c.bias ? &b : nullptr;
  const Tensor<f50>* bp5 = c.bias ? &b5 : nullptr;
  Stats st;
  EXPECT_SAME_BITS(exact::conv2d_forward<Nearest<T>>(g, x, w, bp, &st),
                   rounded<T>(ref::conv2d_forward(g, x5, w5, bp5)));
  EXPECT_SAME_BITS(exact::conv2d_backward_data<Nearest<T>>(g, dy, w, &st),
                   rounded<T>(ref::conv2d_backward_data(g, dy5, w5)));
  EXPECT_SAME_BITS(exact::conv2d_backward_weights<Nearest<T>>(g, x, dy, &st),
                   rounded<T>(ref::conv2d_backward_weights(g, x5, dy5)));
  EXPECT_SAME_BITS(exact::conv2d_backward_bias<Nearest<T>>(g, dy, &st),
                   rounded<T>(ref::conv2d_backward_bias(g, dy5)));
  EXPECT_EQ(st.elements, g.y_shape().numel() + g.x_shape().numel() + g.w_shape().numel() + g.k);
  // Random data in [-1, 1) leaves no element within beta (~2^-80 S) of a rounding boundary.
  EXPECT_EQ(st.fallbacks, 0);
}

TEST(ExactConv2d, everyDirectionEqualsTheReferenceRoundedOnceInDouble) {
  for (const ConvCase& c : conv_cases()) conv_all_directions_match<double>(c);
}
TEST(ExactConv2d, everyDirectionEqualsTheReferenceRoundedOnceInFloat) {
  for (const ConvCase& c : conv_cases()) conv_all_directions_match<float>(c);
}

// The headline case where the reference is not the correctly rounded exact sum: the terms 1,
// 2^-53, 2^-300 (a 1x1 conv over 3 channels with unit weights). E = 1 + 2^-53 + 2^-300 rounds
// up to 1 + 2^-52; F drops 2^-300 (below the 168th bit of the partial sum), lands on the
// midpoint 1 + 2^-53 and rounds to even, 1. The fast path cannot decide it (beta straddles
// the midpoint) and the fallback gives F's bits.
TEST(ExactConv2d, fallsBackAndGivesTheReferenceBitsWhereTheyDifferFromExact) {
  const Conv2dGeom g = make_conv2d_geom({1, 3, 1, 1}, {1, 3, 1, 1}, nullptr, {});
  const Tensor<double> x({1, 3, 1, 1}, {1.0, 0x1p-53, 0x1p-300}), w({1, 3, 1, 1}, 1.0);
  Stats st;
  const Tensor<double> y = exact::conv2d_forward<Nearest<double>>(g, x, w, nullptr, &st);
  EXPECT_EQ(y[0], 1.0);
  EXPECT_EQ(st.fallbacks, 1);
  EXPECT_EQ(io::round_to_double(ref::conv2d_forward(g, x.cast<f50>(), w.cast<f50>(), nullptr)[0]),
            1.0);
  // Precise is the double-double value, within beta (~2^-100 here) of E.
  const Tensor<f50> p = exact::conv2d_forward<Precise>(g, x, w, nullptr);
  EXPECT_LE(abs(p[0] - 1 - ldexp(f50(1), -53) - ldexp(f50(1), -300)), ldexp(f50(1), -100));
}

// Zeros. Terms that cancel exactly within 106 bits (3 - 3) are summed without a rounding (the
// exactness certificate): E = F = 0, and the reference's zero is +0 (f50 adds like IEEE). All-
// zero terms (-0 * -1 + 0 * -1) give +0 too. Neither falls back.
// 1 + 2^-300 - 1 - 2^-300 is E = 0 but F = -2^-300: the reference rounds 1 + 2^-300 to 1.
// The fast path cannot decide it and the fallback gives F's bits, -2^-300.
TEST(ExactConv2d, zerosKeepTheReferenceSign) {
  const Conv2dGeom g = make_conv2d_geom({1, 2, 1, 1}, {1, 2, 1, 1}, nullptr, {});
  Stats st;
  const Tensor<double> cancel = exact::conv2d_forward<Nearest<double>>(
      g, Tensor<double>({1, 2, 1, 1}, {3.0, -3.0}), Tensor<double>({1, 2, 1, 1}, 1.0), nullptr,
      &st);
  EXPECT_EQ(cancel[0], 0.0);
  EXPECT_FALSE(std::signbit(cancel[0]));
  const Tensor<float> zeros = exact::conv2d_forward<Nearest<float>>(
      g, Tensor<double>({1, 2, 1, 1}, {-0.0, 0.0}), Tensor<double>({1, 2, 1, 1}, -1.0), nullptr,
      &st);
  EXPECT_EQ(zeros[0], 0.0f);
  EXPECT_FALSE(std::signbit(zeros[0]));
  EXPECT_EQ(st.fallbacks, 0);
  const Conv2dGeom g4 = make_conv2d_geom({1, 4, 1, 1}, {1, 4, 1, 1}, nullptr, {});
  const Tensor<double> residue = exact::conv2d_forward<Nearest<double>>(
      g4, Tensor<double>({1, 4, 1, 1}, {1.0, 0x1p-300, -1.0, -0x1p-300}),
      Tensor<double>({1, 4, 1, 1}, 1.0), nullptr, &st);
  EXPECT_EQ(residue[0], -0x1p-300);
  EXPECT_EQ(st.fallbacks, 1);
}

// Inputs spread from the smallest subnormal to near the largest double cannot be scaled: every
// element goes through the reference, and the bits still match.
TEST(ExactConv2d, anUnscalableCallFallsBackEntirely) {
  const Conv2dGeom g = make_conv2d_geom({1, 2, 3, 3}, {2, 2, 2, 2}, nullptr, {});
  Tensor<double> x = random_tensor(g.x_shape(), 7);
  x[0] = std::numeric_limits<double>::denorm_min();
  x[1] = 1e300;
  const Tensor<double> w = random_tensor(g.w_shape(), 8);
  Stats st;
  EXPECT_SAME_BITS(exact::conv2d_forward<Nearest<double>>(g, x, w, nullptr, &st),
                   rounded<double>(ref::conv2d_forward(g, x.cast<f50>(), w.cast<f50>(), nullptr)));
  EXPECT_EQ(st.fallbacks, g.y_shape().numel());
  // Its abs sums are still upper bounds.
  const Tensor<double> s = exact::conv2d_forward<AbsSumUp>(g, x, w, nullptr);
  const Tensor<f50> s5 = ref::conv2d_forward(g, d::magnitudes(x).cast<f50>(),
                                             d::magnitudes(w).cast<f50>(), nullptr);
  for (index_t i = 0; i < s.numel(); ++i) EXPECT_GE(f50(s[i]), s5[i]) << i;
}

// x all zero: every product is 0 whatever w holds, and only the bias 2^-300 is left, far below
// the scale the products would set. Nothing may overflow on the way (a 1 in w scaled for the
// bias alone would): y = 2^-300 with no fallback, S+ = 2^-300 rounded up (beta > 0 rounds it one
// ulp up at most).
TEST(ExactConv2d, anAllZeroInputLeavesTheBiasAlone) {
  const Shape bs{1};
  const Conv2dGeom g = make_conv2d_geom({1, 1, 1, 1}, {1, 1, 1, 1}, &bs, {});
  const Tensor<double> x({1, 1, 1, 1}, 0.0), w({1, 1, 1, 1}, 1.0), b({1}, 0x1p-300);
  Stats st;
  EXPECT_EQ(exact::conv2d_forward<Nearest<double>>(g, x, w, &b, &st)[0], 0x1p-300);
  EXPECT_EQ(st.fallbacks, 0);
  const double s = exact::conv2d_forward<AbsSumUp>(g, x, w, &b)[0];
  EXPECT_GE(s, 0x1p-300);
  EXPECT_LE(s, std::nextafter(0x1p-300, inf));
}

TEST(ExactConv2d, rejectsNonFiniteInputs) {
  const Conv2dGeom g = make_conv2d_geom({1, 1, 2, 2}, {1, 1, 1, 1}, nullptr, {});
  Tensor<double> x({1, 1, 2, 2}, 1.0);
  x[3] = std::nan("");
  EXPECT_THROW(exact::conv2d_forward<Nearest<double>>(g, x, Tensor<double>({1, 1, 1, 1}, 1.0),
                                                      nullptr),
               std::domain_error);
}

// S+ >= S = sum |terms| (the 50-digit reference on magnitudes, itself within 2^-160 of S, so
// the comparison is made with 4 ulps of room: S+ must not exceed S by more, and must not be
// below it by more than the reference's own error), for each direction.
TEST(ExactConv2d, absSumsAreUpperBoundsWithinAFewUlps) {
  const ConvCase c = conv_cases()[1];
  const Shape bs{c.w[0]};
  const Conv2dGeom g = make_conv2d_geom(c.x, c.w, &bs, c.prm);
  const Tensor<double> x = random_tensor(g.x_shape(), 1), w = random_tensor(g.w_shape(), 2),
                       b = random_tensor(g.b_shape(), 3), dy = random_tensor(g.y_shape(), 4);
  auto mag5 = [](const Tensor<double>& t) { return d::magnitudes(t).cast<f50>(); };
  auto check = [](const Tensor<double>& up, const Tensor<f50>& s) {
    for (index_t i = 0; i < up.numel(); ++i) {
      if (s[i] == 0) {  // no terms (a dx element no window reaches): exactly 0
        EXPECT_EQ(up[i], 0.0) << i;
        continue;
      }
      const f50 rel = (f50(up[i]) - s[i]) / s[i];
      EXPECT_GE(rel, -f50(1e-45)) << i;         // never below S (beyond the reference's error)
      EXPECT_LE(rel, f50(4 * 0x1p-52)) << i;    // and within 4 ulps of it
    }
  };
  const Tensor<f50> b5 = mag5(b);
  check(exact::conv2d_forward<AbsSumUp>(g, x, w, &b),
        ref::conv2d_forward(g, mag5(x), mag5(w), &b5));
  check(exact::conv2d_backward_data<AbsSumUp>(g, dy, w),
        ref::conv2d_backward_data(g, mag5(dy), mag5(w)));
  check(exact::conv2d_backward_weights<AbsSumUp>(g, x, dy),
        ref::conv2d_backward_weights(g, mag5(x), mag5(dy)));
  check(exact::conv2d_backward_bias<AbsSumUp>(g, dy), ref::conv2d_backward_bias(g, mag5(dy)));
}

// Precise is within beta of the exact value: here |Precise - F| <= 2^-70 S per element (beta
// is about n^2 2^-106 S with n <= 300 terms; F is within 2^-160 S of exact).
TEST(ExactConv2d, preciseValuesAreWithinTheBound) {
  const ConvCase c = conv_cases()[0];
  const Shape bs{c.w[0]};
  const Conv2dGeom g = make_conv2d_geom(c.x, c.w, &bs, c.prm);
  const Tensor<double> x = random_tensor(g.x_shape(), 1), w = random_tensor(g.w_shape(), 2),
                       b = random_tensor(g.b_shape(), 3);
  const Tensor<f50> p = exact::conv2d_forward<Precise>(g, x, w, &b);
  const Tensor<f50> b5 = b.cast<f50>(), ab5 = d::magnitudes(b).cast<f50>();
  const Tensor<f50> f = ref::conv2d_forward(g, x.cast<f50>(), w.cast<f50>(), &b5);
  const Tensor<f50> s = ref::conv2d_forward(g, d::magnitudes(x).cast<f50>(),
                                            d::magnitudes(w).cast<f50>(), &ab5);
  for (index_t i = 0; i < p.numel(); ++i) EXPECT_LE(abs(p[i] - f[i]), s[i] * ldexp(f50(1), -70));
}

// 1, 2 and 3 threads give the same bits and the same fallback count (big enough for every
// thread to own tiles). Image 0 is zero but for x[0,c,0,0] = 1, 2^-53, 2^-300 (c = 0, 1, 2):
// with unit weights the four outputs y[0,k,0..1,0..1] whose windows hold (0,0) are the midpoint
// case of fallsBackAndGivesTheReferenceBitsWhereTheyDifferFromExact, so 8*4 elements fall back.
TEST(ExactConv2d, bitsAndFallbacksDoNotDependOnTheThreadCount) {
  const Conv2dGeom g = make_conv2d_geom({2, 8, 12, 12}, {8, 8, 3, 3}, nullptr,
                                        {{1, 1}, {1, 1}, {1, 1}, 1});
  Tensor<double> x = random_tensor(g.x_shape(), 11);
  const Tensor<double> w(g.w_shape(), 1.0);
  for (index_t i = 0; i < 8 * 12 * 12; ++i) x[i] = 0;
  x(0, 0, 0, 0) = 1.0, x(0, 1, 0, 0) = 0x1p-53, x(0, 2, 0, 0) = 0x1p-300;
  const Tensor<double> dy = random_tensor(g.y_shape(), 12);
  const int saved = omp_get_max_threads();
  std::vector<Tensor<double>> outs;
  std::vector<index_t> fallbacks;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    Stats st;
    outs.push_back(exact::conv2d_forward<Nearest<double>>(g, x, w, nullptr, &st));
    outs.push_back(exact::conv2d_backward_data<Nearest<double>>(g, dy, w, &st));
    outs.push_back(exact::conv2d_backward_weights<Nearest<double>>(g, x, dy, &st));
    fallbacks.push_back(st.fallbacks);
  }
  omp_set_num_threads(saved);
  for (std::size_t i = 3; i < outs.size(); ++i) EXPECT_SAME_BITS(outs[i], outs[i % 3]);
  EXPECT_GE(fallbacks[0], 32);
  EXPECT_EQ(fallbacks[1], fallbacks[0]);
  EXPECT_EQ(fallbacks[2], fallbacks[0]);
}

// ---------------------------------------------------------------- linear, avg_pool2d

template <class T>
void linear_matches(index_t n, index_t in, index_t out, bool bias) {
  const Shape xs{n, in}, ws{out, in}, bs{out};
  const LinearGeom g = make_linear_geom(xs, ws, bias ? &bs : nullptr);
  const Tensor<double> x = random_tensor(xs, 1), w = random_tensor(ws, 2), b = random_tensor(bs, 3),
                       dy = random_tensor(g.y_shape(), 4);
  const Tensor<f50> x5 = x.cast<f50>(), w5 = w.cast<f50>(), b5 = b.cast<f50>(),
                    dy5 = dy.cast<f50>();
  Stats st;
  EXPECT_SAME_BITS(exact::linear_forward<Nearest<T>>(g, x, w, bias ? &b : nullptr, &st),
                   rounded<T>(ref::linear_forward(g, x5, w5, bias ? &b5 : nullptr)));
  EXPECT_SAME_BITS(exact::linear_backward_data<Nearest<T>>(g, dy, w, &st),
                   rounded<T>(ref::linear_backward_data(g, dy5, w5)));
  EXPECT_SAME_BITS(exact::linear_backward_weights<Nearest<T>>(g, x, dy, &st),
                   rounded<T>(ref::linear_backward_weights(g, x5, dy5)));
  EXPECT_SAME_BITS(exact::linear_backward_bias<Nearest<T>>(g, dy, &st),
                   rounded<T>(ref::linear_backward_bias(g, dy5)));
  EXPECT_EQ(st.fallbacks, 0);
}

// db = sum_n dy: 1 + 2^-53 is exactly the midpoint between 1 and 1 + 2^-52. The terms are
// summed without a rounding (the exactness certificate), so the tie is decided -- to even, 1,
// as the reference does -- with no fallback.
TEST(ExactLinear, exactMidpointsAreDecidedWithoutFallback) {
  const Shape xs{2, 1}, ws{1, 1}, bs{1};
  const LinearGeom g = make_linear_geom(xs, ws, &bs);
  Stats st;
  const Tensor<double> db =
      exact::linear_backward_bias<Nearest<double>>(g, Tensor<double>({2, 1}, {1.0, 0x1p-53}), &st);
  EXPECT_EQ(db[0], 1.0);
  EXPECT_EQ(st.fallbacks, 0);
}

TEST(ExactLinear, everyDirectionEqualsTheReferenceRoundedOnce) {
  linear_matches<double>(3, 7, 5, true);
  linear_matches<double>(1, 1, 1, false);
  linear_matches<float>(9, 33, 19, true);
  linear_matches<double>(17, 130, 3, true);
}

template <class T>
void avg_pool_matches(const Shape& xs, const Pool2dParams& prm) {
  const Pool2dGeom g = make_pool2d_geom(xs, prm, "avg_pool2d");
  const Tensor<double> x = random_tensor(xs, 5), dy = random_tensor(g.y_shape(), 6);
  Stats st;
  EXPECT_SAME_BITS(exact::avg_pool2d_forward<Nearest<T>>(g, x, &st),
                   rounded<T>(ref::avg_pool2d_forward(g, x.cast<f50>())));
  EXPECT_SAME_BITS(exact::avg_pool2d_backward<Nearest<T>>(g, dy, &st),
                   rounded<T>(ref::avg_pool2d_backward(g, dy.cast<f50>())));
  EXPECT_EQ(st.fallbacks, 0);
}

TEST(ExactAvgPool2d, forwardAndBackwardEqualTheReferenceRoundedOnce) {
  avg_pool_matches<double>({2, 3, 8, 8}, {{2, 2}, {2, 2}, {0, 0}});
  avg_pool_matches<double>({1, 2, 9, 7}, {{3, 3}, {2, 1}, {1, 1}});  // divisor 9, overlapping
  avg_pool_matches<float>({2, 2, 10, 11}, {{3, 2}, {3, 2}, {1, 1}});
}

// The mean of 1, 1, 1 + 3*2^-24 over a window of 3 is exactly 1 + 2^-24, the float midpoint of 1
// and 1 + 2^-23: the sum is exact (certificate) and so is its division by 3, so the tie is
// decided -- to even, 1 -- with no fallback.
TEST(ExactAvgPool2d, anExactQuotientKeepsTiesDecidable) {
  const Pool2dGeom g = make_pool2d_geom({1, 1, 1, 3}, {{1, 3}, {1, 3}, {0, 0}}, "avg_pool2d");
  Stats st;
  const Tensor<float> y = exact::avg_pool2d_forward<Nearest<float>>(
      g, Tensor<double>({1, 1, 1, 3}, {1.0, 1.0, 1 + 3 * 0x1p-24}), &st);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(st.fallbacks, 0);
}

// avg_pool2d over {1, 2^-53, 2^-300, 0} (divisor 4): as for conv2d, F is 1/4 and E rounds to
// (1 + 2^-52)/4; the fallback gives F's bits.
TEST(ExactAvgPool2d, fallsBackOnTheMidpointCase) {
  const Pool2dGeom g = make_pool2d_geom({1, 1, 2, 2}, {{2, 2}, {2, 2}, {0, 0}}, "avg_pool2d");
  Stats st;
  const Tensor<double> y = exact::avg_pool2d_forward<Nearest<double>>(
      g, Tensor<double>({1, 1, 2, 2}, {1.0, 0x1p-53, 0x1p-300, 0.0}), &st);
  EXPECT_EQ(y[0], 0.25);
  EXPECT_EQ(st.fallbacks, 1);
}

}  // namespace
}  // namespace tapegrad
