// Example-based tests of the reference linear, activation, pooling, flatten and loss kernels
// (kernels/{linear,activation,pool,loss}_ref.hpp).
//
// Hand-worked cases use data whose results are exact in binary (small integers, halves,
// quarters) and compare with ==. Every backward pass is also tied to its forward pass by
// central differences in 50 digits (BackwardMatchesFiftyDigitCentralDifferences).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tapegrad/kernels/activation.hpp"
#include "tapegrad/kernels/linear.hpp"
#include "tapegrad/kernels/loss.hpp"
#include "tapegrad/kernels/pool.hpp"

#include "ref_test_support.hpp"

using namespace tapegrad;
using namespace tapegrad::test;

namespace {

// |got[i] - want[i]| <= tol for all i.
template <class T>
void expect_near(const Tensor<T>& got, const std::vector<T>& want, const T& tol) {
  ASSERT_EQ(got.numel(), static_cast<index_t>(want.size()));
  for (index_t i = 0; i < got.numel(); ++i) {
    const T diff = got[i] - want[static_cast<std::size_t>(i)];
    EXPECT_TRUE(diff <= tol && -diff <= tol)
        << "element " << i << ": got " << got[i] << ", want "
        << want[static_cast<std::size_t>(i)] << ", tol " << tol;
  }
}

f50 gamma50(double m) {
  const f50 u = f50(ScalarTraits<f50>::unit_roundoff());
  return m * u / (1 - m * u);
}

template <class F>
void expect_throws_with(F f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected std::invalid_argument containing '" << needle << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

Pool2dParams pool_params(Pair kernel, Pair stride, Pair pad) {
  Pool2dParams p;
  p.kernel = kernel;
  p.stride = stride;
  p.pad = pad;
  return p;
}

}  // namespace

// ================================================================= linear

TEST(RefLinear, HandWorkedWithBias) {
  // x = [[1,2,3],[4,5,6]], w = [[1,0,-1],[2,1,0]], b = [10,20]:
  //   y[0] = [1 - 3 + 10, 2 + 2 + 20] = [8, 24];  y[1] = [4 - 6 + 10, 8 + 5 + 20] = [8, 33].
  auto x = iota<double>({2, 3});
  auto w = make<double>({2, 3}, {1, 0, -1, 2, 1, 0});
  auto b = make<double>({2}, {10, 20});
  const Shape bs{2};
  auto g = make_linear_geom(x.shape(), w.shape(), &bs);
  EXPECT_EQ(g.str(), "x[2,3] w[2,3] b[2] -> y[2,2]");
  expect_exact(kernels::linear_forward(g, x, w, &b), Shape{2, 2}, {8, 24, 8, 33});
}

TEST(RefLinear, BackwardPassesHandWorked) {
  // Same x, w; dy = [[1,0],[0,1]] picks rows: dx = dy w = w, dw = dy^T x = x, db = [1,1].
  auto x = iota<double>({2, 3});
  auto w = make<double>({2, 3}, {1, 0, -1, 2, 1, 0});
  auto dy = make<double>({2, 2}, {1, 0, 0, 1});
  const Shape bs{2};
  auto g = make_linear_geom(x.shape(), w.shape(), &bs);
  expect_exact(ref::linear_backward_data(g, dy, w), Shape{2, 3}, {1, 0, -1, 2, 1, 0});
  expect_exact(ref::linear_backward_weights(g, x, dy), Shape{2, 3}, {1, 2, 3, 4, 5, 6});
  expect_exact(ref::linear_backward_bias(g, dy), Shape{2}, {1, 1});
}

TEST(RefLinear, AdjointIdentityHoldsInFiftyDigits) {
  // <x w^T, g> = <x, g w> = <w, g^T x>: the same sum of products x*w*g in three orders, so
  // |difference| <= 2 gamma(m) A, A = sum |x w g| = <|x| |w|^T, |g|>, m = 2 + in + n + out.
  const index_t n = 3, in = 7, out = 5;
  auto x = random_reals<f50>({n, in}, 1);
  auto w = random_reals<f50>({out, in}, 2);
  auto dy = random_reals<f50>({n, out}, 3);
  auto g = make_linear_geom(x.shape(), w.shape(), nullptr);
  const f50 i_fwd = dot(ref::linear_forward<f50>(g, x, w, nullptr), dy);
  const f50 i_data = dot(x, ref::linear_backward_data(g, dy, w));
  const f50 i_wts = dot(w, ref::linear_backward_weights(g, x, dy));
  const f50 a = dot(ref::linear_forward<f50>(g, abs_of(x), abs_of(w), nullptr), abs_of(dy));
  const f50 tol = 2 * gamma50(double(2 + in + n + out)) * a;
  EXPECT_LE(abs(i_fwd - i_data), tol);
  EXPECT_LE(abs(i_fwd - i_wts), tol);
}

TEST(RefLinear, BadShapesThrow) {
  const Shape b3{3};
  expect_throws_with([] { make_linear_geom({2, 3}, {4, 5}, nullptr); },
                     "linear: w in-features is 5, expected 3");
  expect_throws_with([&] { make_linear_geom({2, 3}, {4, 3}, &b3); },
                     "linear: b has shape [3], expected [4]");
  expect_throws_with([] { make_linear_geom({2, 3, 1}, {4, 3}, nullptr); }, "x must be 2-d");
  expect_throws_with([] { make_linear_geom({2, 3}, {12}, nullptr); }, "w must be 2-d");
  expect_throws_with([] { make_linear_geom({0, 3}, {4, 3}, nullptr); }, "empty dimension");
}

// ================================================================= activations

TEST(RefActivation, ReluZeroesNegativesAndHasZeroSlopeAtZero) {
  // NOTE: relu'(0) = 0 by convention, so dy at x = 0 is dropped.
  auto x = make<double>({4}, {-2, 0, 3, -0.5});
  expect_exact(kernels::relu_forward(x), Shape{4}, {0, 0, 3, 0});
  auto dy = make<double>({4}, {1, 2, 4, 8});
  expect_exact(kernels::relu_backward(x, dy), Shape{4}, {0, 0, 4, 0});
}

template <class T>
class RefActivationTyped : public ::testing::Test {};
using Precisions = ::testing::Types<float, double, f50>;
TYPED_TEST_SUITE(RefActivationTyped, Precisions);

TYPED_TEST(RefActivationTyped, SigmoidOfZeroIsExactlyHalf) {
  using T = TypeParam;
  // 1 / (1 + exp(-0)) = 1 / 2, exact in binary; backward at y = 1/2: dy y (1-y) = 4 * 1/4 = 1.
  auto y = kernels::sigmoid_forward(make<T>({1}, {0}));
  expect_exact(y, Shape{1}, {0.5});
  expect_exact(kernels::sigmoid_backward(y, make<T>({1}, {4})), Shape{1}, {1});
}

TYPED_TEST(RefActivationTyped, SigmoidSaturatesWithoutOverflow) {
  using T = TypeParam;
  // sigmoid(1000) = 1 / (1 + e^-1000); e^-1000 ~ 5e-435 is below half an ulp of 1 in every
  // precision (and underflows to 0 in float/double), so the result rounds to exactly 1.
  // sigmoid(-1000) = e^-1000 / (1 + e^-1000): exactly 0 in float/double (exp underflows);
  // in f50 (exponent range ~1e+-646456992) it is e^-1000 to within a few ulps.
  auto y = kernels::sigmoid_forward(make<T>({2}, {1000, -1000}));
  EXPECT_TRUE(y[0] == T(1));
  EXPECT_TRUE(is_finite(y[1]));
  if constexpr (std::is_same_v<T, f50>) {
    using std::exp;
    const f50 e = exp(f50(-1000));
    EXPECT_GT(y[1], f50(0));
    EXPECT_LE(abs(y[1] - e), 8 * f50(ScalarTraits<f50>::unit_roundoff()) * e);
  } else {
    EXPECT_TRUE(y[1] == T(0));
  }
}

TEST(RefActivation, SigmoidBranchesAgreeBySymmetry) {
  // sigmoid(-x) = 1 - sigmoid(x); x >= 0 and x < 0 take different formulas, so this checks
  // the two branches against each other. Each sigmoid is exp, add, divide: relative error
  // <= ~4u; 1 - s adds one more rounding; values <= 1, so |difference| <= 10u absolute.
  const double u = ScalarTraits<double>::unit_roundoff();
  auto x = make<double>({4}, {0.5, 3, 17, 1e-3});
  auto neg = map(x, [](double v) { return -v; });
  auto sp = kernels::sigmoid_forward(x), sn = kernels::sigmoid_forward(neg);
  for (index_t i = 0; i < 4; ++i) EXPECT_NEAR(sn[i], 1 - sp[i], 10 * u) << i;
}

TEST(RefActivation, TanhHandValues) {
  // tanh(0) = 0; backward at y = 0.5, dy = 2: 2 (1 - 1/4) = 1.5 (exact).
  expect_exact(kernels::tanh_forward(make<double>({1}, {0})), Shape{1}, {0});
  expect_exact(kernels::tanh_backward(make<double>({1}, {0.5}), make<double>({1}, {2})),
               Shape{1}, {1.5});
  // tanh saturates: tanh(+-1000) = +-1 exactly in double.
  expect_exact(kernels::tanh_forward(make<double>({2}, {1000, -1000})), Shape{2}, {1, -1});
}

template <class T>
void check_softmax_of_log_123() {
  using std::log;
  // x = [0, ln 2, ln 3]: exp(x) = [1, 2, 3], sum 6 -> softmax = [1/6, 2/6, 3/6].
  // Rounding: ln 2, ln 3 are rounded (rel. u), x - max is exact (Sterbenz), exp adds ~1u plus
  // the input error |dx| <= u ln 3 (rel. 1.1u of the result), the sum of 3 terms 2u, the
  // division 1u: ~6u relative; tolerance 16u leaves room for a libm exp that is not
  // correctly rounded. Values <= 1/2, so absolute tol = 8u.
  const T u = T(ScalarTraits<T>::unit_roundoff());
  // As rank 4 (1, 3, 1, 2): softmax runs over dim 1 at each of the two pixels; the second
  // pixel holds the reversed row.
  const T l2 = log(T(2)), l3 = log(T(3));
  Tensor<T> x(Shape{1, 3, 1, 2}, std::vector<T>{T(0), l3, l2, l2, l3, T(0)});
  auto y = ref::softmax_forward(x);
  const T s = T(1) / T(6);
  expect_near(y, {s, 3 * s, 2 * s, 2 * s, 3 * s, s}, T(8) * u);
}

TEST(RefActivation, SoftmaxOfLogOneTwoThreeIsOneTwoThreeSixths) {
  check_softmax_of_log_123<double>();
  check_softmax_of_log_123<f50>();
}

TEST(RefActivation, SoftmaxRowsSumToOne) {
  // Each y_c = e_c / s has relative error <= ~3u beyond the exact ratio of the computed e's,
  // and the computed s differs from the true sum of the e's by <= (C-1)u s; summing the C
  // outputs adds (C-1)u: |sum - 1| <= (2C + 3) u.
  const double u = ScalarTraits<double>::unit_roundoff();
  const index_t c = 7;
  auto x = random_reals<double>({4, c, 3}, 11, 20.0);
  auto y = kernels::softmax_forward(x);
  for (index_t n = 0; n < 4; ++n)
    for (index_t i = 0; i < 3; ++i) {
      double sum = 0;
      for (index_t k = 0; k < c; ++k) sum += y(n, k, i);
      EXPECT_NEAR(sum, 1.0, double(2 * c + 3) * u) << n << "," << i;
    }
}

TEST(RefActivation, SoftmaxOfHugeLogitsIsFinite) {
  // Max subtraction: [1000, 1000] -> [1/2, 1/2]; [1000, 0] -> [1, e^-1000] = [1, 0] in double.
  expect_exact(kernels::softmax_forward(make<double>({2, 2}, {1000, 1000, 1000, 0})),
               Shape{2, 2}, {0.5, 0.5, 1, 0});
}

TEST(RefActivation, LogSoftmaxOfThousandAndZeroIsFinite) {
  // log_softmax([1000, 0]) = [-log(1 + e^-1000), -1000 - log(1 + e^-1000)]; 1 + e^-1000
  // rounds to 1 in double and f50, so the result is exactly [0, -1000].
  expect_exact(kernels::log_softmax_forward(make<double>({1, 2}, {1000, 0})), Shape{1, 2},
               {0, -1000});
  expect_exact(kernels::log_softmax_forward(make<f50>({1, 2}, {1000, 0})), Shape{1, 2},
               {0, -1000});
}

TEST(RefActivation, LogSoftmaxEqualsLogOfSoftmaxInFiftyDigits) {
  // Two different formulas for the same function; each has relative error <= ~(C+4)u on
  // results of magnitude <= ~2*8 + log C, so |difference| <= 1e-45 with lots of margin.
  using std::log;
  auto x = random_reals<f50>({3, 5, 2}, 12, 8.0);
  auto ls = ref::log_softmax_forward(x);
  auto s = ref::softmax_forward(x);
  for (index_t i = 0; i < x.numel(); ++i) EXPECT_LE(abs(ls[i] - log(s[i])), f50(1e-45)) << i;
}

TEST(RefActivation, SoftmaxBackwardHandWorked) {
  // y = softmax([0,0]) = [1/2, 1/2]; dy = [1, 0]: sum y dy = 1/2,
  // dx = y (dy - 1/2) = [1/4, -1/4] (exact).
  auto y = kernels::softmax_forward(make<double>({1, 2}, {0, 0}));
  expect_exact(kernels::softmax_backward(y, make<double>({1, 2}, {1, 0})), Shape{1, 2},
               {0.25, -0.25});
}

TEST(RefActivation, LogSoftmaxBackwardHandWorked) {
  // y = log_softmax([0,0]) = [-ln 2, -ln 2] (rounded); dy = [1, 0]: dx = dy - exp(y) * 1
  // = [1/2, -1/2]. exp(-ln 2 rounded) = 1/2 within ~2u relative -> |error| <= 2u.
  const double u = ScalarTraits<double>::unit_roundoff();
  auto y = kernels::log_softmax_forward(make<double>({1, 2}, {0, 0}));
  auto dx = kernels::log_softmax_backward(y, make<double>({1, 2}, {1, 0}));
  EXPECT_NEAR(dx[0], 0.5, 2 * u);
  EXPECT_NEAR(dx[1], -0.5, 2 * u);
}

TEST(RefActivation, BadShapesThrow) {
  expect_throws_with([] { check_softmax(Shape{5}); }, "softmax: x must have rank >= 2");
  expect_throws_with([] { check_softmax(Shape{2, 0}, "log_softmax"); },
                     "log_softmax: x has no classes");
  expect_throws_with([] { check_flatten(Shape{5}); }, "flatten: x must have rank >= 2");
  expect_throws_with([] { check_activation_backward(Shape{2, 3}, Shape{3, 2}, "relu"); },
                     "relu: dy has shape [3,2], expected [2,3]");
}

TEST(RefFlatten, KeepsElementsAndBatch) {
  // (2,3,4,5) -> (2, 60), same row-major order; backward restores the shape.
  auto x = iota<double>({2, 3, 4, 5});
  auto y = kernels::flatten_forward(x);
  ASSERT_EQ(y.shape(), (Shape{2, 60}));
  EXPECT_EQ(y.vec(), x.vec());
  auto dx = kernels::flatten_backward(x.shape(), y);
  ASSERT_EQ(dx.shape(), x.shape());
  EXPECT_EQ(dx.vec(), x.vec());
}

// ================================================================= pooling

TEST(RefPool, MaxPoolTiesGoToFirstMaximumInRowMajorWindowOrder) {
  // x = [[1,3,3,0],[3,2,5,5],[0,0,1,1],[0,0,1,1]], kernel 2, stride 2:
  //   window (0,0) = [1,3;3,2]: max 3 at (0,1) and (1,0) -> first: (0,1)
  //   window (0,1) = [3,0;5,5]: max 5 at (1,2) and (1,3) -> (1,2)
  //   window (1,0) = all 0 -> (2,0);  window (1,1) = all 1 -> (2,2)
  // y = [[3,5],[0,1]]; with dy = [[10,20],[30,40]], dx is dy at those four positions.
  auto x = make<double>({1, 1, 4, 4}, {1, 3, 3, 0, 3, 2, 5, 5, 0, 0, 1, 1, 0, 0, 1, 1});
  auto g = make_pool2d_geom(x.shape(), pool_params({2, 2}, {2, 2}, {0, 0}), "max_pool2d");
  expect_exact(kernels::max_pool2d_forward(g, x), Shape{1, 1, 2, 2}, {3, 5, 0, 1});
  auto dy = make<double>({1, 1, 2, 2}, {10, 20, 30, 40});
  expect_exact(kernels::max_pool2d_backward(g, x, dy), Shape{1, 1, 4, 4},
               {0, 10, 0, 0,  //
                0, 0, 20, 0,  //
                30, 0, 40, 0,  //
                0, 0, 0, 0});
}

TEST(RefPool, MaxPoolPaddingNeverWins) {
  // All-negative x = [[-1,-2],[-3,-4]], kernel 2, stride 1, pad 1 -> 3x3 windows over rows
  // p-1..p, cols q-1..q clipped to the input. Were padding a 0 candidate, every border
  // output would be 0; instead:
  //   y = [[-1,-1,-2],[-1,-1,-2],[-3,-3,-4]]
  // dy = ones: dx counts the windows each element wins: (0,0) wins (0,0),(0,1),(1,0),(1,1) -> 4;
  // (0,1) wins (0,2),(1,2) -> 2; (1,0) wins (2,0),(2,1) -> 2; (1,1) wins (2,2) -> 1.
  auto x = make<double>({1, 1, 2, 2}, {-1, -2, -3, -4});
  auto g = make_pool2d_geom(x.shape(), pool_params({2, 2}, {1, 1}, {1, 1}), "max_pool2d");
  expect_exact(kernels::max_pool2d_forward(g, x), Shape{1, 1, 3, 3},
               {-1, -1, -2, -1, -1, -2, -3, -3, -4});
  Tensor<double> dy(Shape{1, 1, 3, 3}, 1.0);
  expect_exact(kernels::max_pool2d_backward(g, x, dy), Shape{1, 1, 2, 2}, {4, 2, 2, 1});
}

TEST(RefPool, AvgPoolWithPaddingDividesByKernelArea) {
  // x = [[1,2],[3,4]], kernel 2, stride 1, pad 1 (count_include_pad=True: always / 4):
  //   (0,0): 1/4   (0,1): (1+2)/4   (0,2): 2/4
  //   (1,0): (1+3)/4   (1,1): 10/4   (1,2): (2+4)/4
  //   (2,0): 3/4   (2,1): (3+4)/4   (2,2): 4/4
  // Backward with dy = ones: every input lies in 4 windows -> dx = 4/4 = 1.
  auto x = make<double>({1, 1, 2, 2}, {1, 2, 3, 4});
  auto g = make_pool2d_geom(x.shape(), pool_params({2, 2}, {1, 1}, {1, 1}), "avg_pool2d");
  expect_exact(kernels::avg_pool2d_forward(g, x), Shape{1, 1, 3, 3},
               {0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1});
  Tensor<double> dy(Shape{1, 1, 3, 3}, 1.0);
  expect_exact(kernels::avg_pool2d_backward(g, dy), Shape{1, 1, 2, 2}, {1, 1, 1, 1});
}

TEST(RefPool, AvgPoolAdjointIdentityHoldsInFiftyDigits) {
  // <avg(x), g> = <x, avg_backward(g)>: the same sum of x*g/(kh kw) in two orders;
  // |difference| <= 2 gamma(m) A with A = <avg(|x|), |g|>, m = 3 + kh kw + numel(x) + numel(y).
  for (const auto& prm : {pool_params({3, 2}, {2, 1}, {1, 1}), pool_params({2, 3}, {3, 2}, {0, 1}),
                          pool_params({3, 3}, {1, 1}, {1, 0})}) {
    auto x = random_reals<f50>({2, 3, 7, 8}, 21);
    auto g = make_pool2d_geom(x.shape(), prm, "avg_pool2d");
    SCOPED_TRACE(g.str());
    auto dy = random_reals<f50>(g.y_shape(), 22);
    const f50 i_fwd = dot(ref::avg_pool2d_forward(g, x), dy);
    const f50 i_bwd = dot(x, ref::avg_pool2d_backward(g, dy));
    const f50 a = dot(ref::avg_pool2d_forward(g, abs_of(x)), abs_of(dy));
    const double m = 3.0 + double(prm.kernel[0] * prm.kernel[1] + x.numel() + dy.numel());
    EXPECT_LE(abs(i_fwd - i_bwd), 2 * gamma50(m) * a);
  }
}

TEST(RefPool, BadConfigurationsThrow) {
  expect_throws_with(
      [] { make_pool2d_geom({1, 1, 3, 3}, pool_params({4, 4}, {1, 1}, {0, 0}), "max_pool2d"); },
      "larger than the padded input");
  expect_throws_with(
      [] { make_pool2d_geom({1, 1, 4, 4}, pool_params({2, 2}, {1, 1}, {2, 0}), "max_pool2d"); },
      "must be at most half the kernel");
  expect_throws_with(
      [] { make_pool2d_geom({1, 1, 4, 4}, pool_params({2, 2}, {0, 1}, {0, 0}), "avg_pool2d"); },
      "avg_pool2d: stride (height) must be positive, got 0");
  expect_throws_with(
      [] { make_pool2d_geom({1, 1, 4, 4}, pool_params({2, 2}, {1, 1}, {0, -1}), "avg_pool2d"); },
      "pad (width) must be non-negative");
  expect_throws_with(
      [] { make_pool2d_geom({1, 4, 4}, pool_params({2, 2}, {1, 1}, {0, 0}), "max_pool2d"); },
      "x must be 4-d");
}

// ================================================================= losses

TEST(RefLoss, MseHandValue) {
  // x - t = [0, 2, 0, 4]: loss = (0 + 4 + 0 + 16) / 4 = 5;
  // dx = dloss * 2 (x - t) / 4 = 3 * [0, 1, 0, 2] = [0, 3, 0, 6] for dloss = 3.
  auto x = make<double>({2, 2}, {1, 2, 3, 4});
  auto t = make<double>({2, 2}, {1, 0, 3, 0});
  auto loss = kernels::mse_loss_forward(x, t, x.numel());
  EXPECT_EQ(loss.rank(), 0);
  expect_exact(loss, Shape{}, {5});
  expect_exact(kernels::mse_loss_backward(x, t, 3.0, x.numel()), Shape{2, 2}, {0, 3, 0, 6});
}

TEST(RefLoss, CrossEntropyHandValue) {
  // row 0: logits [0, ln 2, ln 3], target 2: -log(3/6) = ln 2
  // row 1: logits [0, 0, 0],       target 0: -log(1/3) = ln 3
  // loss = (ln 2 + ln 3) / 2 = ln 6 / 2. In f50, each step is within a few ulps: tol 1e-48.
  // Backward (dloss = 1): (1/2)(softmax - onehot):
  //   row 0: (1/2)([1/6, 2/6, 3/6] - [0,0,1]) = [1/12, 1/6, -1/4]
  //   row 1: (1/2)([1/3, 1/3, 1/3] - [1,0,0]) = [-1/3, 1/6, 1/6]
  using std::log;
  Tensor<f50> x(Shape{2, 3}, std::vector<f50>{0, log(f50(2)), log(f50(3)), 0, 0, 0});
  const std::vector<index_t> t{2, 0};
  check_cross_entropy(x.shape(), t);
  auto loss = kernels::cross_entropy_forward(x, t, x.size(0));
  EXPECT_EQ(loss.rank(), 0);
  EXPECT_LE(abs(loss[0] - log(f50(6)) / 2), f50(1e-48));
  const f50 one = 1;
  expect_near(kernels::cross_entropy_backward(x, t, one, x.size(0)),
              {one / 12, one / 6, -one / 4, -one / 3, one / 6, one / 6}, f50(1e-48));
}

TEST(RefLoss, CrossEntropyIsMinusMeanLogSoftmaxAtTarget) {
  // Independent formula through log_softmax: both are within ~(C+5)u relative of magnitudes
  // <= ~20, so they agree to 1e-45.
  auto x = random_reals<f50>({4, 5}, 31, 6.0);
  const std::vector<index_t> t{4, 0, 2, 2};
  auto ls = ref::log_softmax_forward(x);
  f50 want = 0;
  for (index_t n = 0; n < 4; ++n) want -= ls(n, t[static_cast<std::size_t>(n)]);
  want /= 4;
  EXPECT_LE(abs(ref::cross_entropy_forward(x, t)[0] - want), f50(1e-45));
}

TEST(RefLoss, TargetOutOfRangeThrowsOutOfRangeNamingIndexAndValue) {
  for (index_t bad : {index_t{-1}, index_t{3}, index_t{100}}) {
    try {
      check_cross_entropy(Shape{2, 3}, {0, bad});
      ADD_FAILURE() << "expected std::out_of_range for target " << bad;
    } catch (const std::out_of_range& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("cross_entropy: targets[1] is " + std::to_string(bad)),
                std::string::npos)
          << msg;
      EXPECT_NE(msg.find("[0, 3)"), std::string::npos) << msg;
    }
  }
}

TEST(RefLoss, BadShapesThrow) {
  expect_throws_with([] { check_mse_loss(Shape{2, 3}, Shape{3, 2}); },
                     "mse_loss: target has shape [3,2], expected [2,3]");
  expect_throws_with([] { check_mse_loss(Shape{0, 3}, Shape{0, 3}); }, "mse_loss: x is empty");
  expect_throws_with([] { check_cross_entropy(Shape{2, 3, 1}, {0, 1}); },
                     "cross_entropy: logits must be 2-d");
  expect_throws_with([] { check_cross_entropy(Shape{2, 3}, {0}); },
                     "targets has 1 entries, expected 2");
  expect_throws_with([] { check_cross_entropy(Shape{2, 0}, {0, 0}); }, "empty dimension");
}

// ================================================================= backward vs forward

namespace {
using Fwd = std::function<Tensor<f50>(const Tensor<f50>&)>;
using Bwd = std::function<Tensor<f50>(const Tensor<f50>& x, const Tensor<f50>& dy)>;

// Directional derivative check: with L(x) = <fwd(x), dy>, the backward pass must satisfy
// <bwd(x, dy), v> = dL/dx . v ~ (L(x + h v) - L(x - h v)) / (2h).
// In f50 with h = 1e-17: truncation h^2/6 |L'''| <~ 2e-35 * |L'''| (|L'''| < 1e4 for these
// small smooth cases), rounding ~ 2 m u sum|terms| / (2h) <~ 100 * 6e-51 * 1e2 / 1e-17 = 6e-29.
// tol = 1e-25 absolute on gradients of size O(1): 1e9 below double's unit roundoff.
void check_backward(const char* name, const Tensor<f50>& x, const Fwd& fwd, const Bwd& bwd,
                    unsigned seed) {
  SCOPED_TRACE(name);
  const auto y = fwd(x);
  const auto dy = random_reals<f50>(y.shape(), seed);
  const auto v = random_reals<f50>(x.shape(), seed + 1);
  const f50 h("1e-17");
  Tensor<f50> xp = x, xm = x;
  for (index_t i = 0; i < x.numel(); ++i) {
    xp[i] += h * v[i];
    xm[i] -= h * v[i];
  }
  const f50 fd = (dot(fwd(xp), dy) - dot(fwd(xm), dy)) / (2 * h);
  const f50 an = dot(bwd(x, dy), v);
  EXPECT_LE(abs(fd - an), f50(1e-25)) << "analytic " << an << " vs central difference " << fd;
  EXPECT_GT(abs(an), f50(1e-3)) << "degenerate case: the check would be vacuous";
}
}  // namespace

TEST(RefOps, BackwardMatchesFiftyDigitCentralDifferences) {
  using T = f50;
  const auto x4 = random_reals<T>({2, 3, 5, 6}, 40, 3.0);  // (N,C,H,W)
  check_backward("relu", x4, [](const auto& x) { return ref::relu_forward(x); },
                 [](const auto& x, const auto& dy) { return ref::relu_backward(x, dy); }, 41);
  check_backward(
      "sigmoid", x4, [](const auto& x) { return ref::sigmoid_forward(x); },
      [](const auto& x, const auto& dy) {
        return ref::sigmoid_backward(ref::sigmoid_forward(x), dy);
      },
      42);
  check_backward(
      "tanh", x4, [](const auto& x) { return ref::tanh_forward(x); },
      [](const auto& x, const auto& dy) { return ref::tanh_backward(ref::tanh_forward(x), dy); },
      43);
  check_backward(
      "softmax", x4, [](const auto& x) { return ref::softmax_forward(x); },
      [](const auto& x, const auto& dy) {
        return ref::softmax_backward(ref::softmax_forward(x), dy);
      },
      44);
  check_backward(
      "log_softmax", x4, [](const auto& x) { return ref::log_softmax_forward(x); },
      [](const auto& x, const auto& dy) {
        return ref::log_softmax_backward(ref::log_softmax_forward(x), dy);
      },
      45);
  check_backward("flatten", x4, [](const auto& x) { return ref::flatten_forward(x); },
                 [](const auto& x, const auto& dy) { return ref::flatten_backward(x.shape(), dy); },
                 46);

  const auto mp = make_pool2d_geom(x4.shape(), pool_params({3, 2}, {1, 2}, {1, 1}), "max_pool2d");
  check_backward("max_pool2d", x4, [&](const auto& x) { return ref::max_pool2d_forward(mp, x); },
                 [&](const auto& x, const auto& dy) { return ref::max_pool2d_backward(mp, x, dy); },
                 47);
  const auto ap = make_pool2d_geom(x4.shape(), pool_params({2, 3}, {2, 1}, {1, 1}), "avg_pool2d");
  check_backward("avg_pool2d", x4, [&](const auto& x) { return ref::avg_pool2d_forward(ap, x); },
                 [&](const auto&, const auto& dy) { return ref::avg_pool2d_backward(ap, dy); }, 48);

  const auto target = random_reals<T>(x4.shape(), 49);
  check_backward(
      "mse_loss", x4, [&](const auto& x) { return ref::mse_loss_forward(x, target); },
      [&](const auto& x, const auto& dy) { return ref::mse_loss_backward(x, target, dy[0]); },
      50);
  const auto logits = random_reals<T>({4, 6}, 51, 4.0);
  const std::vector<index_t> labels{5, 0, 3, 3};
  check_backward(
      "cross_entropy", logits, [&](const auto& x) { return ref::cross_entropy_forward(x, labels); },
      [&](const auto& x, const auto& dy) { return ref::cross_entropy_backward(x, labels, dy[0]); },
      52);

  const auto lx = random_reals<T>({3, 5}, 53);
  const auto lw = random_reals<T>({4, 5}, 54);
  const auto lb = random_reals<T>({4}, 55);
  const Shape lbs{4};
  const auto lg = make_linear_geom(lx.shape(), lw.shape(), &lbs);
  check_backward("linear (x)", lx, [&](const auto& x) { return ref::linear_forward(lg, x, lw, &lb); },
                 [&](const auto&, const auto& dy) { return ref::linear_backward_data(lg, dy, lw); },
                 56);
  check_backward("linear (w)", lw, [&](const auto& w) { return ref::linear_forward(lg, lx, w, &lb); },
                 [&](const auto&, const auto& dy) { return ref::linear_backward_weights(lg, lx, dy); },
                 57);
  check_backward("linear (b)", lb, [&](const auto& b) { return ref::linear_forward(lg, lx, lw, &b); },
                 [&](const auto&, const auto& dy) { return ref::linear_backward_bias(lg, dy); }, 58);
}
