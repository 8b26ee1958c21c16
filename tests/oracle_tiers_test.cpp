// The two tolerance tiers of the oracle (oracle/raw.hpp "Tiers", gradcheck/tolerance.hpp):
//  - the formulas: lambda and gamma~ as Higham and Mary define them, numbers worked out by hand;
//  - the probabilistic bound is the one claimed: a result placed just inside
//    min(gamma(K), gamma~(K, lambda)) * S passes it, the next float past it fails it (and the
//    sound tier passes both), with the bound recomputed HERE from the paper's formula;
//  - both ways on a real low-precision bug: an accumulator that rounds its running sum to
//    bfloat16 after every add, over K = 524,288 terms, is far off yet inside the sound bound
//    (it PASSES the sound tier) and is CAUGHT by the probabilistic one; the same loop with a
//    float accumulator passes both;
//  - the verdict follows OracleOptions::tier, and the report names both tiers;
//  - where the model does not apply (a libm op, exact-input mode) the tiers coincide.
// The property that correct float kernels never fail the probabilistic tier over many random
// runs is in property_tests/tiers_props.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "tapegrad/half.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/tapegrad.hpp"
#include "oracle_test_support.hpp"

namespace tapegrad {
namespace {

using oracle::OracleOptions;
using oracle::OracleReport;
using oracle::Tier;

using tapegrad::test::printed;

const double u32 = std::ldexp(1.0, -24);

// ln(2e9) = ln 2 + 9 ln 10 = 0.69314718 + 20.72326584 = 21.41641302, so at K = 1, p = 1e-9:
// lambda = sqrt(2 * 21.41641302) / (1 - u) = sqrt(42.83282604) = 6.5447 (the 1/(1-u) moves the
// 8th digit). At K = 2^19: ln(2^20 * 1e9) = 20 * 0.69314718 + 20.72326584 = 34.58620944,
// lambda = sqrt(69.17241888) = 8.3170. gamma~(2^19, 8.3170) = exp(8.3170 * 724.0773 * 2^-24 +
// 2^19 * 2^-48 / (1 - u)) - 1 = exp(3.5895e-4 + 1.9e-9) - 1 = 3.5901e-4 (expm1 adds x^2/2 =
// 6.4e-8). The failure probability 2 K exp(-lambda^2 (1 - u)^2 / 2) is back at 1e-9.
TEST(ProbabilisticTier, LambdaAndGammaTildeAreHighamAndMarysNumbers) {
  EXPECT_NEAR(gradcheck::probabilistic_lambda(1, 1e-9, u32), 6.5447, 1e-4);
  const double lam = gradcheck::probabilistic_lambda(524288, 1e-9, u32);
  EXPECT_NEAR(lam, 8.3170, 1e-4);
  EXPECT_NEAR(gradcheck::gamma_tilde(524288, lam, u32), 3.5901e-4, 2e-8);
  EXPECT_NEAR(gradcheck::probabilistic_failure(524288, lam, u32), 1e-9, 1e-14);
  // gamma~ grows like sqrt(K), gamma like K: they cross near K = lambda^2 (~45 here).
  const double lam40 = gradcheck::probabilistic_lambda(40, 1e-9, u32);
  const double lam60 = gradcheck::probabilistic_lambda(60, 1e-9, u32);
  EXPECT_GT(gradcheck::gamma_tilde(40, lam40, u32), gradcheck::gamma(40, u32));
  EXPECT_LT(gradcheck::gamma_tilde(60, lam60, u32), gradcheck::gamma(60, u32));
}

// ---------------------------------------------------------------- the bound is the claimed one
// linear forward, no bias: y[n,o] = sum_i x[n,i] w[o,i], K = in = 2048 (gamma~ < gamma there:
// lambda = sqrt(2 ln(4096e9)) = 7.62, gamma~ ~ 7.62 * 45.25 u = 345 u against gamma ~ 2048 u).
struct Placed {
  index_t at = -1;
  double allowed_prob = 0, allowed_sound = 0;
  double step = 0;  // the T grid at the placed value
};

template <class T>
OracleReport run_placed(bool above, Placed& pl, const OracleOptions& opt) {
  const oracle::LinearProblem prob{Shape{3, 2048}, Shape{2, 2048}, false};
  const LinearGeom g = make_linear_geom(prob.x, prob.w, nullptr);
  const double u = ScalarTraits<T>::unit_roundoff();
  return oracle::check_linear_forward<T>(
      prob,
      [&](const T* x, const T* w, const T*, T* y) {
        const Tensor<f50> xs = Tensor<T>(g.x_shape(), std::vector<T>(x, x + g.x_shape().numel()))
                                   .template cast<f50>();
        const Tensor<f50> ws = Tensor<T>(g.w_shape(), std::vector<T>(w, w + g.w_shape().numel()))
                                   .template cast<f50>();
        const auto absf = [](const Tensor<f50>& t) {
          return map(t, [](const f50& v) { return f50(abs(v)); });
        };
        const Tensor<f50> exact = ref::linear_forward(g, xs, ws, nullptr);
        const Tensor<f50> s = ref::linear_forward(g, absf(xs), absf(ws), nullptr);
        // The paper's formula, written out here (not the library's functions).
        const double k = 2048;
        const double lambda = std::sqrt(2 * std::log(2 * k / 1e-9)) / (1 - u);
        // exp(x) - 1 in 50 digits: in double it would cancel (x ~ 4e-14 for double's u)
        using std::exp;
        const double gt = static_cast<double>(
            exp(f50(lambda) * sqrt(f50(k)) * f50(u) + f50(k) * f50(u) * f50(u) / (1 - f50(u))) -
            1);
        const double gs = k * u / (1 - k * u);
        for (index_t i = 0; i < exact.numel(); ++i) y[i] = io::round_to<T>(exact[i]);
        pl.at = 1;
        const double sv = static_cast<double>(s[pl.at]);
        pl.allowed_prob = std::min(gt, gs) * sv;
        pl.allowed_sound = gs * sv;
        const f50 bound = exact[pl.at] + f50(pl.allowed_prob);
        T v = io::round_to<T>(bound);
        if (above)
          while (f50(v) <= bound) v = std::nextafter(v, std::numeric_limits<T>::infinity());
        else
          while (f50(v) > bound) v = std::nextafter(v, -std::numeric_limits<T>::infinity());
        y[pl.at] = v;
        pl.step = static_cast<double>(std::nextafter(v, std::numeric_limits<T>::infinity()) - v);
      },
      opt);
}

template <class T>
void expect_probabilistic_bound_is_tight() {
  SCOPED_TRACE(ScalarTraits<T>::name);
  Placed below, over;
  const OracleReport pass = run_placed<T>(false, below, {});
  const OracleReport fail = run_placed<T>(true, over, {});
  EXPECT_TRUE(pass.passed()) << printed(pass);
  EXPECT_FALSE(fail.passed()) << printed(fail);
  EXPECT_EQ(fail.failing, 1);
  EXPECT_EQ(fail.probabilistic_failing, 1);
  EXPECT_EQ(fail.sound_failing, 0);  // 6x inside the sound bound
  ASSERT_TRUE(fail.worst_ratio_index.has_value());
  EXPECT_EQ(*fail.worst_ratio_index, over.at);
  EXPECT_GT(fail.max_ratio, 1.0);
  EXPECT_LT(fail.max_ratio, 1.0 + 2 * over.step / over.allowed_prob);  // one grid step past
  EXPECT_LT(over.allowed_prob, over.allowed_sound / 4);
  EXPECT_EQ(fail.probabilistic_elements, 6);
  // sqrt(2 ln(4096e9)) = sqrt(2 (12 ln 2 + 9 ln 10)) = sqrt(2 * 29.041032) = 7.62116
  EXPECT_NEAR(fail.lambda_max, 7.6212, 1e-4);
}
TEST(ProbabilisticTier, FailsJustAboveItsBoundAndPassesJustBelowInFloat) {
  expect_probabilistic_bound_is_tight<float>();
}
TEST(ProbabilisticTier, FailsJustAboveItsBoundAndPassesJustBelowInDouble) {
  expect_probabilistic_bound_is_tight<double>();
}

// ---------------------------------------------------------------- the bfloat16 accumulator
// linear backward-weights: dw[o,i] = sum_n dy[n,o] x[n,i], K = N = 2^19 = 524,288 products of
// inputs uniform in [-1, 1). S = sum |dy x| ~ K/4 = 131072; the exact sum is ~ N(0, K/9), about
// 240 in size. A float accumulator errs by ~ sqrt(K) u |partial sums| ~ 1e-2. A bfloat16
// accumulator (u = 2^-8) errs by up to ulp/2 = 1 per add once the sum is past 128: a random
// walk of ~ sqrt(K/3) ~ 400, as large as the result itself. Sound: gamma(K) S = 0.0323 * 131072
// ~ 4200 -- the bfloat16 sum is inside it. Probabilistic: gamma~ S = 3.59e-4 * 131072 ~ 47.
constexpr index_t bf16_k = 524288;

OracleReport run_accumulator(bool bf16, const OracleOptions& opt) {
  const oracle::LinearProblem prob{Shape{bf16_k, 4}, Shape{1, 4}, false};
  return oracle::check_linear_backward_weights<float>(
      prob,
      [&](const float* x, const float* dy, float* dw) {
        for (index_t i = 0; i < 4; ++i) {
          float acc = 0;
          for (index_t n = 0; n < bf16_k; ++n) {
            acc += dy[n] * x[n * 4 + i];
            if (bf16) acc = round_to_bfloat16(acc);
          }
          dw[i] = acc;
        }
      },
      opt);
}

TEST(ProbabilisticTier, Bf16AccumulatorPassesTheSoundTierButIsCaughtByTheProbabilisticOne) {
  const OracleReport r = run_accumulator(true, {});
  const std::string text = printed(r);
  std::printf("%s", text.c_str());
  // error / (gamma S) = (error / (gamma~ S)) * gamma~ / gamma
  const double k = double(bf16_k);
  std::printf("bf16 accumulator, K = %lld: worst relative error %.3g, %.3g x the probabilistic "
              "bound, %.3g x the sound bound\n",
              static_cast<long long>(bf16_k), r.max_rel_error, r.max_ratio,
              r.max_ratio * gradcheck::gamma_tilde(k, r.lambda_max, u32) /
                  gradcheck::gamma(k, u32));
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.tier, Tier::probabilistic);
  EXPECT_EQ(r.sound_failing, 0) << text;        // inside gamma(K) S at every element
  EXPECT_EQ(r.probabilistic_failing, 4) << text;  // outside gamma~(K) S at every element
  EXPECT_GT(r.max_ratio, 2.0);
  EXPECT_GT(r.max_rel_error, 0.1);  // and really wrong: more than 10 % off
  EXPECT_NE(text.find("probabilistic (lambda = 8.32, P(false fail) < 1e-09 per element, < "
                      "4e-09 for the 4 elements): FAIL; sound: PASS; verdict by probabilistic"),
            std::string::npos)
      << text;
  // Declared sound, the same kernel passes: the sound tier cannot see it.
  OracleOptions sound;
  sound.tier = Tier::sound;
  const OracleReport rs = run_accumulator(true, sound);
  EXPECT_TRUE(rs.passed()) << printed(rs);
  EXPECT_LT(rs.max_ratio, 0.5);
  EXPECT_EQ(rs.probabilistic_failing, 4);  // still counted, and printed
  EXPECT_NE(printed(rs).find("FAIL; sound: PASS; verdict by sound"), std::string::npos);
}

TEST(ProbabilisticTier, FloatAccumulatorOfTheSameLoopPassesBothTiers) {
  const OracleReport r = run_accumulator(false, {});
  EXPECT_TRUE(r.passed()) << printed(r);
  EXPECT_EQ(r.sound_failing, 0);
  EXPECT_EQ(r.probabilistic_failing, 0);
  EXPECT_LT(r.max_ratio, 0.25);
  std::printf("float accumulator, K = %lld: worst at %.3g of the probabilistic bound\n",
              static_cast<long long>(bf16_k), r.max_ratio);
}

// ---------------------------------------------------------------- where the model stops
// tanh: one libm call per element; the probabilistic tier is the sound one, and says so.
TEST(ProbabilisticTier, IsTheSoundBoundWhereTheOpIsNotASumOfRoundings) {
  const OracleReport r = oracle::check_tanh_forward<float>(
      oracle::ActivationProblem{Shape{4, 64}}, [](const float* x, float* y) {
        for (int i = 0; i < 256; ++i) y[i] = std::tanh(x[i]);
      });
  EXPECT_TRUE(r.passed()) << printed(r);
  EXPECT_FALSE(r.probabilistic_model);
  EXPECT_EQ(r.probabilistic_elements, 0);
  EXPECT_NE(printed(r).find("probabilistic (= sound here): PASS; sound: PASS"), std::string::npos)
      << printed(r);
}

// The model's limit, shown: on structured data rounding errors are not random. K = 65536 equal
// terms 0.1f summed one by one in float round the same way at every step: the float sum is
// 6557.6465 against 6553.6001 (0.06 % off; NumPy's float32 cumsum gives the same). Sound:
// gamma(K) S = 0.0039 * 6553.6 = 25.7, the error 4.05 is at 0.16 of it. Probabilistic: lambda =
// sqrt(2 ln(2^17 / 1e-9)) = 8.06, gamma~ S = 8.06 * 256 * 2^-24 * 6553.6 = 0.81: the CORRECT
// kernel fails it, 5x over. (Why the generated checks draw random inputs, and why verify's
// report keeps the sound verdict beside the probabilistic one.)
TEST(ProbabilisticTier, CanFailACorrectSumOnStructuredData) {
  constexpr index_t k = 65536;
  const Tensor<double> dy(Shape{k, 1}, std::vector<double>(k, double(0.1f)));
  const LinearGeom g = make_linear_geom(Shape{k, 1}, Shape{1, 1}, nullptr);
  float acc = 0;
  for (index_t n = 0; n < k; ++n) acc += 0.1f;
  EXPECT_EQ(acc, 6557.6465f);
  const Tensor<float> db(Shape{1}, std::vector<float>{acc});
  const OracleReport r = oracle::judge_bound(oracle::linear_backward_bias_bound(g, dy), db,
                                             "linear_backward_bias", "0.1f x 65536", "db");
  EXPECT_EQ(r.sound_failing, 0) << printed(r);
  EXPECT_EQ(r.probabilistic_failing, 1) << printed(r);
  EXPECT_GT(r.max_ratio, 4.0);
  EXPECT_LT(r.max_ratio, 6.0);
}

// Exact-input mode: K = 0, equality in both tiers.
TEST(ProbabilisticTier, ExactInputModeStaysEquality) {
  OracleOptions opt;
  opt.exact_inputs = true;
  const oracle::LinearProblem prob{Shape{2, 300}, Shape{3, 300}, false};
  const LinearGeom g = make_linear_geom(prob.x, prob.w, nullptr);
  const auto one_off = [&](const float* x, const float* w, const float*, float* y) {
    for (index_t n = 0; n < g.n; ++n)
      for (index_t o = 0; o < g.out; ++o) {
        float acc = 0;
        for (index_t i = 0; i < g.in; ++i) acc += x[n * g.in + i] * w[o * g.in + i];
        y[n * g.out + o] = acc;
      }
    y[4] += 1;  // an integer result off by one: within any gamma * S, not equality
  };
  const OracleReport r = oracle::check_linear_forward<float>(prob, one_off, opt);
  EXPECT_EQ(r.reduction_length, 0);
  EXPECT_EQ(r.probabilistic_failing, 1) << printed(r);
  EXPECT_EQ(r.sound_failing, 1);
  EXPECT_EQ(r.probabilistic_elements, 0);
}

}  // namespace
}  // namespace tapegrad
