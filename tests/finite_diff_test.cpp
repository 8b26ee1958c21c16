// Finite differences in 50 digits, kink detection, the tolerance model, and the Richardson
// black-box check.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "tapegrad/gradcheck/finite_diff.hpp"
#include "tapegrad/gradcheck/richardson.hpp"
#include "tapegrad/gradcheck/tolerance.hpp"

using namespace tapegrad;
using namespace tapegrad::gradcheck;

namespace {

using Inputs = std::vector<Tensor<f50>>;

double to_d(const f50& v) { return static_cast<double>(v); }

// A 1-d f50 tensor (a two-element brace list alone would be ambiguous: f50 has a two-argument
// constructor).
Tensor<f50> vec50(std::vector<f50> v) {
  const auto n = static_cast<index_t>(v.size());
  return Tensor<f50>(Shape{n}, std::move(v));
}

f50 relu50(const f50& v) { return v > 0 ? v : f50(0); }

// Expects every element to be unflagged and |grad - exact| <= its own error estimate
// <= max_rel * max(1, |exact|).
void expect_within_estimate(const FiniteDiffResult& fd, const std::vector<Tensor<f50>>& exact,
                            double max_rel) {
  ASSERT_EQ(fd.grad.size(), exact.size());
  for (std::size_t t = 0; t < exact.size(); ++t) {
    for (index_t i = 0; i < exact[t].numel(); ++i) {
      const f50 err = abs(fd.grad[t][i] - exact[t][i]);
      EXPECT_EQ(fd.kink[t][i], 0) << "input " << t << " element " << i;
      EXPECT_LE(to_d(err), to_d(fd.error[t][i])) << "input " << t << " element " << i;
      const double scale = std::fmax(1.0, std::fabs(to_d(exact[t][i])));
      EXPECT_LE(to_d(fd.error[t][i]), max_rel * scale) << "input " << t << " element " << i;
    }
  }
}

}  // namespace

TEST(FiniteDiff, PolynomialGradientIsExactTo1em30) {
  // f(x, y) = y * sum_i x_i^3 + 2 y^2 x_0:
  //   df/dx_i = 3 x_i^2 y + [i = 0] 2 y^2,   df/dy = sum_i x_i^3 + 4 y x_0.
  // At x = (0.5, -1.25, 2), y = 1.5 (all exact binary fractions):
  //   df/dx = (3*0.25*1.5 + 2*2.25, 3*1.5625*1.5, 3*4*1.5) = (5.625, 7.03125, 18)
  //   df/dy = 0.125 - 1.953125 + 8 + 4*1.5*0.5 = 9.171875.
  // DESIGN: truncation ~ h^2 f''' ~ 1e-30 (and the extrapolated estimate is exact for a cubic),
  // rounding ~ 1e6 u50 |f| / h ~ 1e-29: the error estimate must be below 1e-28 relative.
  auto f = [](const Inputs& in) {
    const Tensor<f50>& x = in[0];
    const f50& y = in[1][0];
    f50 s = 0;
    for (index_t i = 0; i < x.numel(); ++i) s += x[i] * x[i] * x[i];
    return y * s + 2 * y * y * x[0];
  };
  Inputs in = {vec50({f50(0.5), f50(-1.25), f50(2)}), Tensor<f50>::scalar(1.5)};
  FiniteDiffResult fd = finite_diff(f, in);
  Inputs exact = {vec50({f50(5.625), f50(7.03125), f50(18)}),
                  Tensor<f50>::scalar(9.171875)};
  expect_within_estimate(fd, exact, 1e-28);
  EXPECT_EQ(fd.kinks, 0);
  EXPECT_EQ(fd.evaluations, 1 + 4 * 4);  // f0 shared, 4 stencil points per element
  EXPECT_EQ(to_d(fd.value), 1.5 * 6.171875 + 2 * 2.25 * 0.5);  // y * sum x^3 + 2 y^2 x0
}

TEST(FiniteDiff, TranscendentalGradientIsWithinItsErrorEstimate) {
  // f(a, b) = log(1 + a^2) * tanh(b) + exp(a b):
  //   df/da = 2a/(1+a^2) tanh(b) + b e^(ab),  df/db = log(1+a^2) (1 - tanh^2 b) + a e^(ab).
  // The formula is evaluated in f50 (error ~1e-49), far below the FD error ~1e-30.
  auto f = [](const Inputs& in) {
    const f50& a = in[0][0];
    const f50& b = in[1][0];
    return log(1 + a * a) * tanh(b) + exp(a * b);
  };
  const f50 a = f50(0.75), b = f50(-0.375);
  FiniteDiffResult fd = finite_diff(f, {Tensor<f50>::scalar(a), Tensor<f50>::scalar(b)});
  const f50 t = tanh(b), e = exp(a * b);
  Inputs exact = {Tensor<f50>::scalar(2 * a / (1 + a * a) * t + b * e),
                  Tensor<f50>::scalar(log(1 + a * a) * (1 - t * t) + a * e)};
  expect_within_estimate(fd, exact, 1e-28);
}

TEST(FiniteDiff, LargeInputsScaleTheStep) {
  // f(x) = x^2 at x = 1e6: h = 2^floor(log2(1e-15 * 1e6)) = 2^-30; df/dx = 2e6 (exact).
  auto f = [](const Inputs& in) { return in[0][0] * in[0][0]; };
  EXPECT_EQ(to_d(finite_diff_step(f50(1e6))), std::ldexp(1.0, -30));
  FiniteDiffResult fd = finite_diff(f, {Tensor<f50>::scalar(1e6)});
  expect_within_estimate(fd, {Tensor<f50>::scalar(2e6)}, 1e-28);
}

TEST(FiniteDiff, AbsAtZeroIsFlaggedAsKink) {
  // |x| at 0: one-sided slopes -1 and +1, the stencil straddles the kink.
  auto f = [](const Inputs& in) { return abs(in[0][0]); };
  FiniteDiffResult fd = finite_diff(f, {Tensor<f50>::scalar(0)});
  EXPECT_EQ(fd.kink[0][0], 1);
  EXPECT_EQ(fd.kinks, 1);
}

TEST(FiniteDiff, AbsAtOneIsNotFlaggedAndHasSlopeOne) {
  auto f = [](const Inputs& in) { return abs(in[0][0]); };
  FiniteDiffResult fd = finite_diff(f, {Tensor<f50>::scalar(1)});
  EXPECT_EQ(fd.kinks, 0);
  expect_within_estimate(fd, {Tensor<f50>::scalar(1)}, 1e-28);
}

TEST(FiniteDiff, ReluAtZeroIsFlaggedAndAtOneIsNot) {
  // relu(x) * 3 + x: slope 3 + 1 right of 0, 1 left of it.
  auto f = [](const Inputs& in) { return relu50(in[0][0]) * 3 + in[0][0]; };
  FiniteDiffResult at0 = finite_diff(f, {Tensor<f50>::scalar(0)});
  EXPECT_EQ(at0.kink[0][0], 1);
  FiniteDiffResult at1 = finite_diff(f, {Tensor<f50>::scalar(1)});
  EXPECT_EQ(at1.kinks, 0);
  expect_within_estimate(at1, {Tensor<f50>::scalar(4)}, 1e-28);
}

TEST(FiniteDiff, ReluKinkAnywhereInsideTheStencilIsFlagged) {
  // f(x) = relu(x - c) + x with the kink c at x +- d, d = k h/16 for k = 0..15 (h = 2^-50 at
  // x = 0.5), and d = h/3, 2h/7: the blind spots of each single test (T1 at d = h/3, T3 at
  // d = 0; see finite_diff.hpp) and the point where both are weakest (max(T1, T3) = J/7) --
  // every position must be flagged. Kinks at x +- 2h lie outside the stencil: not flagged,
  // and the slope is exact (1 left of a kink, 2 right of it).
  const f50 x = f50(0.5);
  const f50 h = finite_diff_step(x);
  ASSERT_EQ(to_d(h), std::ldexp(1.0, -50));
  for (int sign : {1, -1}) {
    std::vector<f50> ds;
    for (int k = 0; k < 16; ++k) ds.push_back(k * h / 16);
    ds.push_back(h / 3);
    ds.push_back(2 * h / 7);
    for (const f50& d : ds) {
      const f50 c = x + sign * d;
      auto f = [c](const Inputs& in) { return relu50(in[0][0] - c) + in[0][0]; };
      FiniteDiffResult fd = finite_diff(f, {Tensor<f50>::scalar(x)});
      EXPECT_EQ(fd.kink[0][0], 1) << "kink at x + " << sign * to_d(d / h) << " h";
    }
    const f50 c = x + sign * 2 * h;
    auto f = [c](const Inputs& in) { return relu50(in[0][0] - c) + in[0][0]; };
    FiniteDiffResult fd = finite_diff(f, {Tensor<f50>::scalar(x)});
    EXPECT_EQ(fd.kinks, 0);
    expect_within_estimate(fd, {Tensor<f50>::scalar(sign > 0 ? 1 : 2)}, 1e-28);
  }
}

TEST(FiniteDiff, MaxPoolNearTieIsFlagged) {
  // max(a, b) with b = a + h/4: moving either by h swaps the winner, so both are kinks.
  // With b = a + 1 (no tie) the gradient is (0, 1) and nothing is flagged.
  auto f = [](const Inputs& in) { return in[0][0] > in[0][1] ? in[0][0] : in[0][1]; };
  const f50 a = f50(1);
  const f50 h = finite_diff_step(a);
  FiniteDiffResult tie = finite_diff(f, {vec50({a, a + h / 4})});
  EXPECT_EQ(tie.kink[0][0], 1);
  EXPECT_EQ(tie.kink[0][1], 1);
  FiniteDiffResult clear = finite_diff(f, {vec50({a, a + 1})});
  expect_within_estimate(clear, {vec50({f50(0), f50(1)})}, 1e-28);
}

TEST(FiniteDiff, StationaryPointIsNotAKink) {
  // x^2 + 1 and cos(x) at 0: derivative 0 and one-sided slopes -+h f'' -- smooth, so not
  // flagged (a plain one-sided comparison would flag them). grad_scale_floor = 1: the
  // expected gradient magnitude of this problem (see the NOTE in finite_diff.hpp).
  auto f = [](const Inputs& in) { return in[0][0] * in[0][0] + 1 + cos(in[1][0]); };
  FiniteDiffOptions opt;
  opt.grad_scale_floor = 1;
  FiniteDiffResult fd = finite_diff(f, {Tensor<f50>::scalar(0), Tensor<f50>::scalar(0)}, opt);
  EXPECT_EQ(fd.kinks, 0);
  expect_within_estimate(fd, {Tensor<f50>::scalar(0), Tensor<f50>::scalar(0)}, 1e-28);
}

TEST(FiniteDiff, WrtSkipsInputsWithoutEvaluatingThem) {
  // d/dx (x . w) = w; w not requested: empty result, and only 1 + 4 * 3 evaluations.
  auto f = [](const Inputs& in) {
    f50 s = 0;
    for (index_t i = 0; i < 3; ++i) s += in[0][i] * in[1][i];
    return s;
  };
  FiniteDiffOptions opt;
  opt.wrt = {true, false};
  Tensor<f50> w(Shape{3}, {f50(2), f50(-3), f50(0.25)});
  FiniteDiffResult fd = finite_diff(f, {Tensor<f50>(Shape{3}, f50(1)), w}, opt);
  EXPECT_EQ(fd.evaluations, 1 + 4 * 3);
  EXPECT_EQ(fd.grad[1].numel(), 0);
  expect_within_estimate(FiniteDiffResult{fd.value, {fd.grad[0]}, {fd.error[0]}, {fd.kink[0]}},
                         {w}, 1e-28);
  opt.wrt = {true};
  EXPECT_THROW(finite_diff(f, {w, w}, opt), std::invalid_argument);
}

TEST(FiniteDiff, NonFiniteValueThrowsDomainError) {
  // log at x = 1e-20: x - h < 0, log of a negative number is NaN.
  auto f = [](const Inputs& in) { return log(in[0][0]); };
  EXPECT_THROW(finite_diff(f, {Tensor<f50>::scalar(1e-20)}), std::domain_error);
}

// ------------------------------------------------------------------ tolerance model

TEST(Tolerance, GammaIsNuOverOneMinusNu) {
  // gamma(10, 2^-53) = 10u / (1 - 10u); void (+inf) once n u >= 1.
  const double u = 0x1p-53;
  EXPECT_DOUBLE_EQ(gamma(10, u), 10 * u / (1 - 10 * u));
  EXPECT_DOUBLE_EQ(gamma<float>(3), 3 * 0x1p-24 / (1 - 3 * 0x1p-24));
  EXPECT_TRUE(std::isinf(gamma(1 << 24, 0x1p-24)));
  EXPECT_EQ(unit_roundoff<double>(), u);
  EXPECT_EQ(unit_roundoff<float>(), 0x1p-24);
  EXPECT_LT(unit_roundoff<f50>(), 1e-50);
}

TEST(Tolerance, ReductionBoundHoldsForFloatAndDoubleSums) {
  // sum_k a_k b_k over K = 4096 terms of mixed sign, computed left to right in float and in
  // double, against the f50 value of the same (already rounded) inputs, exact to ~1e-46. The
  // error must be within gamma(K) * S, S = sum |a_k b_k|. The data cancel heavily
  // (S ~ 5057, |sum| ~ 2.7), so the bound must scale with S: the float error is ~30 u |sum|
  // (measured), so a tolerance relative to the result would reject a correct sum -- checked
  // below. (The gamma(K) bound is a worst case: the measured error is ~0.02 u S.)
  const int K = 4096;
  std::vector<double> a(K), b(K);
  for (int k = 0; k < K; ++k) {
    a[k] = std::sin(0.37 * k + 0.1);
    b[k] = std::cos(1.3 * k) * (1 + 0.001 * k);
  }
  float sf = 0;
  double sd = 0;
  f50 exact_d = 0, abs_sum_d = 0, exact_f = 0, abs_sum_f = 0;
  for (int k = 0; k < K; ++k) {
    const float af = static_cast<float>(a[k]), bf = static_cast<float>(b[k]);
    sf += af * bf;
    sd += a[k] * b[k];
    exact_d += f50(a[k]) * f50(b[k]);
    abs_sum_d += abs(f50(a[k]) * f50(b[k]));
    exact_f += f50(af) * f50(bf);
    abs_sum_f += abs(f50(af) * f50(bf));
  }
  const double err_d = to_d(abs(f50(sd) - exact_d)), err_f = to_d(abs(f50(sf) - exact_f));
  EXPECT_LE(err_d, reduction_tolerance<double>(K, to_d(abs_sum_d)));
  EXPECT_LE(err_f, reduction_tolerance<float>(K, to_d(abs_sum_f)));
  EXPECT_GT(err_f, 4 * unit_roundoff<float>() * std::fabs(to_d(exact_f)));
}

// ------------------------------------------------------------------ Richardson black box

namespace {
double smooth_f(const std::vector<double>& x) {
  return std::sin(x[0]) * std::exp(x[1]) + x[2] * x[2] * x[2] + std::exp(-x[0] * x[2]);
}
// The analytic gradient, evaluated in T (double: what a user would pass; f50: the truth).
template <class T>
std::vector<double> smooth_grad(const std::vector<double>& xd) {
  using std::cos;
  using std::exp;
  using std::sin;
  const T x0(xd[0]), x1(xd[1]), x2(xd[2]);
  const T e = exp(x1), g = exp(-x0 * x2);
  return {static_cast<double>(T(cos(x0) * e - x2 * g)), static_cast<double>(T(sin(x0) * e)),
          static_cast<double>(T(3 * x2 * x2 - x0 * g))};
}
}  // namespace

TEST(Richardson, ErrorEstimatesBoundTheTrueErrorOnSmoothFunctions) {
  // Over a grid of points, the extrapolated estimate's distance to the exact gradient
  // (analytic, evaluated in f50 and rounded: within u relative) stays below the reported
  // error (measured: at most 0.7 of it), and that error is small: < 1e-11 relative (~1e-13
  // measured; plain central differences manage ~1e-8 at best). The user gradient is the same
  // formula in double.
  for (int p = 0; p < 12; ++p) {
    const std::vector<double> x = {-1.5 + 0.27 * p, 0.8 - 0.13 * p, 0.3 + 0.11 * p};
    const std::vector<double> g = smooth_grad<f50>(x);
    BlackboxReport rep = gradcheck_blackbox(smooth_f, x, smooth_grad<double>(x));
    EXPECT_TRUE(rep.pass) << "point " << p << " worst " << rep.worst << " ratio "
                          << rep.worst_ratio;
    for (std::size_t k = 0; k < 3; ++k) {
      const auto& el = rep.elements[k];
      // g is the exact value rounded once: within u |g|.
      EXPECT_LE(std::fabs(el.estimate - g[k]), el.error + 0x1p-53 * std::fabs(g[k]))
          << "point " << p << " element " << k;
      EXPECT_LT(el.error, 1e-11 * std::fmax(1.0, std::fabs(g[k])))
          << "point " << p << " element " << k;
    }
  }
}

TEST(Richardson, CatchesAGradientOffByOnePartPerMillion) {
  const std::vector<double> x = {0.4, -0.2, 1.1};
  std::vector<double> g = smooth_grad<double>(x);
  g[1] *= 1 + 1e-6;
  BlackboxReport rep = gradcheck_blackbox(smooth_f, x, g);
  EXPECT_FALSE(rep.pass);
  EXPECT_EQ(rep.worst, 1);
  EXPECT_EQ(rep.failing, 1);
  EXPECT_TRUE(rep.elements[0].pass);
  EXPECT_TRUE(rep.elements[2].pass);
}

TEST(Richardson, SizeMismatchThrowsNamingBothSizes) {
  try {
    gradcheck_blackbox(smooth_f, {1, 2, 3}, {1, 2});
    FAIL() << "expected a throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "gradcheck_blackbox: user_grad has 2 elements, expected 3 = x size");
  }
}
