// Example-based tests of the reference conv2d (kernels/conv2d_ref.hpp).
//
// Forward cases use small integer data: every product and partial sum is an integer of
// magnitude < 2^24, so float, double and f50 all compute it exactly and the tests compare with
// ==. Backward passes are tied to the forward by the adjoint identity in 50 digits.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tapegrad/kernels/conv2d.hpp"
#include "tapegrad/kernels/linear.hpp"

#include "ref_test_support.hpp"

using namespace tapegrad;
using namespace tapegrad::test;

namespace {

// Small random integers in [-3, 3]: products and sums stay exact in every precision.
template <class T>
Tensor<T> random_ints(Shape s, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-3, 3);
  Tensor<T> t(std::move(s));
  for (auto& v : t) v = T(dist(rng));
  return t;
}

template <class T>
void expect_same(const Tensor<T>& got, const Tensor<T>& want) {
  ASSERT_EQ(got.shape(), want.shape());
  for (index_t i = 0; i < got.numel(); ++i)
    EXPECT_TRUE(got[i] == want[i]) << "element " << i << ": got " << static_cast<double>(got[i])
                                   << ", want " << static_cast<double>(want[i]);
}

Conv2dParams params(Pair stride, Pair pad, Pair dilation, index_t groups) {
  Conv2dParams p;
  p.stride = stride;
  p.pad = pad;
  p.dilation = dilation;
  p.groups = groups;
  return p;
}

// Channels [c0, c0 + count) of a (N,C,H,W) or (K,C,R,S) tensor along dim `dim` (0 or 1).
template <class T>
Tensor<T> slice(const Tensor<T>& t, int dim, index_t c0, index_t count) {
  std::vector<index_t> d = t.shape().dims();
  d[static_cast<std::size_t>(dim)] = count;
  Tensor<T> out{Shape(d)};
  const index_t a = d[0], b = d[1], hw = d[2] * d[3];
  for (index_t i = 0; i < a; ++i)
    for (index_t j = 0; j < b; ++j)
      for (index_t e = 0; e < hw; ++e) {
        const index_t si = dim == 0 ? i + c0 : i, sj = dim == 1 ? j + c0 : j;
        out[(i * b + j) * hw + e] = t[(si * t.size(1) + sj) * hw + e];
      }
  return out;
}

}  // namespace

// ------------------------------------------------------------ forward, in three precisions

template <class T>
class RefConv2dTyped : public ::testing::Test {};
using Precisions = ::testing::Types<float, double, f50>;
TYPED_TEST_SUITE(RefConv2dTyped, Precisions);

TYPED_TEST(RefConv2dTyped, OneHotKernelShiftsInput) {
  using T = TypeParam;
  // x = 1..16 as a 4x4 image; w is 3x3 with a single 1 at (r,s) = (0,2); pad 1, stride 1.
  // y[p,q] = x[p - 1 + 0, q - 1 + 2] = x[p-1, q+1] (zero outside):
  //   row 0 reads x row -1 (padding); column 3 reads x column 4 (padding).
  auto x = iota<T>({1, 1, 4, 4});
  auto w = make<T>({1, 1, 3, 3}, {0, 0, 1, 0, 0, 0, 0, 0, 0});
  auto g = make_conv2d_geom(x.shape(), w.shape(), nullptr, params({1, 1}, {1, 1}, {1, 1}, 1));
  expect_exact(ref::conv2d_forward<T>(g, x, w, nullptr), Shape{1, 1, 4, 4},
               {0, 0, 0, 0,  //
                2, 3, 4, 0,  //
                6, 7, 8, 0,  //
                10, 11, 12, 0});
}

TYPED_TEST(RefConv2dTyped, StrideTwoPaddingOneHandWorked) {
  using T = TypeParam;
  // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]], stride 2, pad 1:
  //   P = floor((3 + 2 - 2) / 2) + 1 = 2; window (p,q) covers rows 2p-1..2p, cols 2q-1..2q.
  //   y00 = w11*x00 = 4*1 = 4
  //   y01 = w10*x01 + w11*x02 = 3*2 + 4*3 = 18
  //   y10 = w01*x10 + w11*x20 = 2*4 + 4*7 = 36
  //   y11 = 1*5 + 2*6 + 3*8 + 4*9 = 77
  auto x = iota<T>({1, 1, 3, 3});
  auto w = make<T>({1, 1, 2, 2}, {1, 2, 3, 4});
  auto g = make_conv2d_geom(x.shape(), w.shape(), nullptr, params({2, 2}, {1, 1}, {1, 1}, 1));
  expect_exact(ref::conv2d_forward<T>(g, x, w, nullptr), Shape{1, 1, 2, 2}, {4, 18, 36, 77});
}

TYPED_TEST(RefConv2dTyped, DilationTwoHandWorked) {
  using T = TypeParam;
  // x[h,w] = 5h + w + 1 on 5x5, w = [[1,2],[3,4]], dilation 2 (a 3x3 footprint), no pad:
  //   P = Q = 5 - 3 + 1 = 3;
  //   y[p,q] = 1*x[p,q] + 2*x[p,q+2] + 3*x[p+2,q] + 4*x[p+2,q+2]
  //          = (5p+q+1) + 2(5p+q+3) + 3(5p+q+11) + 4(5p+q+13) = 50p + 10q + 92.
  auto x = iota<T>({1, 1, 5, 5});
  auto w = make<T>({1, 1, 2, 2}, {1, 2, 3, 4});
  auto g = make_conv2d_geom(x.shape(), w.shape(), nullptr, params({1, 1}, {0, 0}, {2, 2}, 1));
  std::vector<double> want;
  for (int p = 0; p < 3; ++p)
    for (int q = 0; q < 3; ++q) want.push_back(50 * p + 10 * q + 92);
  expect_exact(ref::conv2d_forward<T>(g, x, w, nullptr), Shape{1, 1, 3, 3}, want);
}

TYPED_TEST(RefConv2dTyped, GroupsTwoScalesEachChannelByItsOwnFilter) {
  using T = TypeParam;
  // C = K = 2, groups 2, 1x1 kernels w0 = 10, w1 = 100: output channel k sees only input
  // channel k, so y0 = 10 * x0 = [10,20,30,40], y1 = 100 * x1 = [500,600,700,800].
  auto x = iota<T>({1, 2, 2, 2});
  auto w = make<T>({2, 1, 1, 1}, {10, 100});
  auto g = make_conv2d_geom(x.shape(), w.shape(), nullptr, params({1, 1}, {0, 0}, {1, 1}, 2));
  expect_exact(ref::conv2d_forward<T>(g, x, w, nullptr), Shape{1, 2, 2, 2},
               {10, 20, 30, 40, 500, 600, 700, 800});
}

TYPED_TEST(RefConv2dTyped, DepthwiseEqualsSeparateSingleChannelConvs) {
  using T = TypeParam;
  // groups = C = K = 3: output channel c is the single-channel conv of x[:,c] with w[c].
  auto x = random_ints<T>({2, 3, 5, 6}, 1);
  auto w = random_ints<T>({3, 1, 3, 3}, 2);
  const auto prm = params({2, 1}, {1, 2}, {1, 2}, 3);
  auto g = make_conv2d_geom(x.shape(), w.shape(), nullptr, prm);
  auto y = ref::conv2d_forward<T>(g, x, w, nullptr);
  for (index_t c = 0; c < 3; ++c) {
    auto xc = slice(x, 1, c, 1), wc = slice(w, 0, c, 1);
    auto gc = make_conv2d_geom(xc.shape(), wc.shape(), nullptr, params({2, 1}, {1, 2}, {1, 2}, 1));
    SCOPED_TRACE("channel " + std::to_string(c));
    expect_same(slice(y, 1, c, 1), ref::conv2d_forward<T>(gc, xc, wc, nullptr));
  }
}

TYPED_TEST(RefConv2dTyped, GroupedConvEqualsConvsOnChannelSlices) {
  using T = TypeParam;
  // C = 4, K = 6, groups 2: output channels [3g, 3g+3) are the groups=1 conv of input
  // channels [2g, 2g+2) with filters w[3g .. 3g+3).
  auto x = random_ints<T>({2, 4, 5, 5}, 3);
  auto w = random_ints<T>({6, 2, 2, 3}, 4);
  auto g = make_conv2d_geom(x.shape(), w.shape(), nullptr, params({1, 2}, {1, 0}, {2, 1}, 2));
  auto y = ref::conv2d_forward<T>(g, x, w, nullptr);
  for (index_t grp = 0; grp < 2; ++grp) {
    auto xg = slice(x, 1, 2 * grp, 2), wg = slice(w, 0, 3 * grp, 3);
    auto gg = make_conv2d_geom(xg.shape(), wg.shape(), nullptr, params({1, 2}, {1, 0}, {2, 1}, 1));
    SCOPED_TRACE("group " + std::to_string(grp));
    expect_same(slice(y, 1, 3 * grp, 3), ref::conv2d_forward<T>(gg, xg, wg, nullptr));
  }
}

TYPED_TEST(RefConv2dTyped, BiasAddsConstantPerChannel) {
  using T = TypeParam;
  // conv(x, w, b)[n,k,p,q] - conv(x, w)[n,k,p,q] = b[k] exactly (integer data).
  auto x = random_ints<T>({2, 2, 4, 4}, 5);
  auto w = random_ints<T>({3, 2, 3, 3}, 6);
  auto b = make<T>({3}, {7, -11, 13});
  const auto prm = params({1, 1}, {1, 1}, {1, 1}, 1);
  const Shape bs{3};
  auto gb = make_conv2d_geom(x.shape(), w.shape(), &bs, prm);
  auto g0 = make_conv2d_geom(x.shape(), w.shape(), nullptr, prm);
  auto yb = ref::conv2d_forward<T>(gb, x, w, &b);
  auto y0 = ref::conv2d_forward<T>(g0, x, w, nullptr);
  for (index_t n = 0; n < 2; ++n)
    for (index_t k = 0; k < 3; ++k)
      for (index_t p = 0; p < 4; ++p)
        for (index_t q = 0; q < 4; ++q)
          EXPECT_TRUE(yb(n, k, p, q) - y0(n, k, p, q) == b[k]) << n << k << p << q;
}

TYPED_TEST(RefConv2dTyped, OneByOneConvEqualsLinearOverChannels) {
  using T = TypeParam;
  // A 1x1 conv is a linear layer applied at each pixel: rows (n,h,w), features c,
  // weight w[k,c,0,0] as a (K,C) matrix: y[n,k,h,w] = linear(X, W, b)[(n,h,w), k].
  auto x = random_ints<T>({2, 3, 4, 5}, 7);
  auto w = random_ints<T>({4, 3, 1, 1}, 8);
  auto b = random_ints<T>({4}, 9);
  const Shape bs{4};
  auto g = make_conv2d_geom(x.shape(), w.shape(), &bs, params({1, 1}, {0, 0}, {1, 1}, 1));
  auto y = ref::conv2d_forward<T>(g, x, w, &b);
  Tensor<T> rows(Shape{2 * 4 * 5, 3});
  for (index_t n = 0; n < 2; ++n)
    for (index_t c = 0; c < 3; ++c)
      for (index_t h = 0; h < 4; ++h)
        for (index_t ww = 0; ww < 5; ++ww) rows((n * 4 + h) * 5 + ww, c) = x(n, c, h, ww);
  auto wm = w.reshaped(Shape{4, 3});
  auto lg = make_linear_geom(rows.shape(), wm.shape(), &bs);
  auto yl = ref::linear_forward<T>(lg, rows, wm, &b);
  for (index_t n = 0; n < 2; ++n)
    for (index_t k = 0; k < 4; ++k)
      for (index_t h = 0; h < 4; ++h)
        for (index_t ww = 0; ww < 5; ++ww)
          EXPECT_TRUE(y(n, k, h, ww) == yl((n * 4 + h) * 5 + ww, k)) << n << k << h << ww;
}

TYPED_TEST(RefConv2dTyped, DispatchGivesTheReferenceResult) {
  using T = TypeParam;
  // kernels:: is the entry the tape uses; on integer data any correct kernel is exact, so the
  // dispatched result must equal the reference bit for bit.
  auto x = random_ints<T>({2, 4, 6, 5}, 10);
  auto w = random_ints<T>({4, 2, 3, 2}, 11);
  auto b = random_ints<T>({4}, 12);
  auto dy = random_ints<T>({2, 4, 3, 5}, 13);
  const Shape bs{4};
  auto g = make_conv2d_geom(x.shape(), w.shape(), &bs, params({2, 1}, {1, 1}, {1, 2}, 2));
  ASSERT_EQ(g.y_shape(), dy.shape());
  expect_same(kernels::conv2d_forward<T>(g, x, w, &b), ref::conv2d_forward<T>(g, x, w, &b));
  expect_same(kernels::conv2d_backward_data<T>(g, dy, w), ref::conv2d_backward_data<T>(g, dy, w));
  expect_same(kernels::conv2d_backward_weights<T>(g, x, dy),
              ref::conv2d_backward_weights<T>(g, x, dy));
  expect_same(kernels::conv2d_backward_bias<T>(g, dy), ref::conv2d_backward_bias<T>(g, dy));
}

// ------------------------------------------------------------ backward, hand-worked

TEST(RefConv2d, BackwardDataOfOneHotKernelShiftsBack) {
  // Forward with the one-hot kernel at (0,2), pad 1 reads y[p,q] = x[p-1,q+1]; its adjoint
  // writes dx[h,w] = dy[h+1, w-1] (zero where (h+1, w-1) is outside the 4x4 output).
  auto w = make<double>({1, 1, 3, 3}, {0, 0, 1, 0, 0, 0, 0, 0, 0});
  auto dy = iota<double>({1, 1, 4, 4});
  auto g = make_conv2d_geom(Shape{1, 1, 4, 4}, w.shape(), nullptr,
                            params({1, 1}, {1, 1}, {1, 1}, 1));
  expect_exact(ref::conv2d_backward_data(g, dy, w), Shape{1, 1, 4, 4},
               {0, 5, 6, 7,     //
                0, 9, 10, 11,   //
                0, 13, 14, 15,  //
                0, 0, 0, 0});
}

TEST(RefConv2d, BackwardBiasSumsOverBatchAndPixels) {
  // db[k] = sum_{n,p,q} dy: dy = 1..16 as (2,2,2,2): k=0 takes 1..4 and 9..12 -> 10 + 42 = 52,
  // k=1 takes 5..8 and 13..16 -> 26 + 58 = 84.
  auto dy = iota<double>({2, 2, 2, 2});
  const Shape bs{2};
  auto g = make_conv2d_geom(Shape{2, 1, 2, 2}, Shape{2, 1, 1, 1}, &bs,
                            params({1, 1}, {0, 0}, {1, 1}, 1));
  expect_exact(ref::conv2d_backward_bias(g, dy), Shape{2}, {52, 84});
}

// ------------------------------------------------------------ adjoint identity in 50 digits

namespace {
// <conv(x,w), g> = <x, dx(g)> = <w, dw(x,g)>: backward_data and backward_weights are the
// adjoints of the forward map in x and in w. All three are the same sum of products
// x*w*g, in different association orders, so they agree up to rounding:
//   |I_a - I_b| <= 2 * gamma(m) * A,   A = sum |x*w*g| = <conv(|x|,|w|), |g|>,
// with m an upper bound on the number of roundings any one product passes through
// (2 multiplications + the longest reduction chain), gamma(m) = m u / (1 - m u),
// u = 2^-167 for f50. For these sizes that is ~1e-47 * A.
void check_conv_adjoint(const Shape& xs, const Shape& ws, const Conv2dParams& prm, unsigned seed) {
  const Shape bs{ws[0]};
  auto g = make_conv2d_geom(xs, ws, &bs, prm);
  SCOPED_TRACE(g.str());
  auto x = random_reals<f50>(xs, seed);
  auto w = random_reals<f50>(ws, seed + 1);
  auto b = random_reals<f50>(bs, seed + 2);
  auto dy = random_reals<f50>(g.y_shape(), seed + 3);
  auto g0 = g;
  g0.has_bias = false;

  const f50 i_fwd = dot(ref::conv2d_forward<f50>(g0, x, w, nullptr), dy);
  const f50 i_data = dot(x, ref::conv2d_backward_data(g, dy, w));
  const f50 i_wts = dot(w, ref::conv2d_backward_weights(g, x, dy));
  const f50 a = dot(ref::conv2d_forward<f50>(g0, abs_of(x), abs_of(w), nullptr), abs_of(dy));

  const double m = 2.0 + double(g.c * g.r * g.s + g.k * g.r * g.s + g.n * g.p * g.q) +
                   double(xs.numel() + ws.numel() + g.y_shape().numel());
  const f50 u = f50(ScalarTraits<f50>::unit_roundoff());
  const f50 tol = 2 * (m * u / (1 - m * u)) * a;
  EXPECT_LE(abs(i_fwd - i_data), tol) << "I_fwd " << i_fwd << " I_data " << i_data;
  EXPECT_LE(abs(i_fwd - i_wts), tol) << "I_fwd " << i_fwd << " I_wts " << i_wts;
  EXPECT_GT(a, f50(0));

  // Bias: conv(0, w, b) = b broadcast, so <conv(0,w,b), dy> = <b, db(dy)>; sums of b*dy with
  // the same rounding bound, A_b = <|b| broadcast, |dy|>.
  Tensor<f50> zeros(xs);
  const auto b_broadcast = ref::conv2d_forward(g, zeros, w, &b);
  const f50 i_bfwd = dot(b_broadcast, dy);
  const f50 i_bias = dot(b, ref::conv2d_backward_bias(g, dy));
  const f50 ab = dot(abs_of(b_broadcast), abs_of(dy));
  EXPECT_LE(abs(i_bfwd - i_bias), 2 * (m * u / (1 - m * u)) * ab);
}
}  // namespace

TEST(RefConv2d, AdjointIdentityHoldsInFiftyDigitsPlain) {
  check_conv_adjoint({2, 3, 7, 6}, {4, 3, 3, 3}, params({1, 1}, {0, 0}, {1, 1}, 1), 100);
}
TEST(RefConv2d, AdjointIdentityHoldsInFiftyDigitsStrideAndPadding) {
  check_conv_adjoint({2, 2, 8, 7}, {3, 2, 3, 2}, params({2, 3}, {1, 2}, {1, 1}, 1), 200);
}
TEST(RefConv2d, AdjointIdentityHoldsInFiftyDigitsDilation) {
  check_conv_adjoint({1, 2, 9, 9}, {2, 2, 3, 2}, params({1, 2}, {2, 1}, {2, 3}, 1), 300);
}
TEST(RefConv2d, AdjointIdentityHoldsInFiftyDigitsGroups) {
  check_conv_adjoint({2, 6, 6, 5}, {4, 3, 2, 3}, params({2, 1}, {1, 1}, {1, 2}, 2), 400);
}
TEST(RefConv2d, AdjointIdentityHoldsInFiftyDigitsDepthwiseWithStrideLeftovers) {
  // stride 3 on width 8 leaves input columns that no window reaches: their dx must be 0 and
  // the identity still holds.
  check_conv_adjoint({1, 3, 5, 8}, {3, 1, 2, 2}, params({2, 3}, {0, 0}, {1, 1}, 3), 500);
}

// ------------------------------------------------------------ invalid configurations

namespace {
void expect_invalid(const Shape& x, const Shape& w, const Shape* b, const Conv2dParams& prm,
                    const std::string& needle) {
  try {
    (void)make_conv2d_geom(x, w, b, prm);
    ADD_FAILURE() << "expected std::invalid_argument containing '" << needle << "'";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("conv2d: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}
}  // namespace

TEST(RefConv2d, KernelBiggerThanPaddedInputThrows) {
  // A 5x5 kernel fits a 3x3 input padded by 1 (5 <= 3 + 2) but not an unpadded one (5 > 3);
  // a 2x2 kernel with dilation 3 spans 3*(2-1) + 1 = 4 > 3.
  EXPECT_NO_THROW(make_conv2d_geom({1, 1, 3, 3}, {1, 1, 5, 5}, nullptr,
                                   params({1, 1}, {1, 1}, {1, 1}, 1)));
  expect_invalid({1, 1, 3, 3}, {1, 1, 5, 5}, nullptr, params({1, 1}, {0, 0}, {1, 1}, 1),
                 "larger than the padded input");
  expect_invalid({1, 1, 3, 3}, {1, 1, 2, 2}, nullptr, params({1, 1}, {0, 0}, {3, 3}, 1),
                 "larger than the padded input");
}

TEST(RefConv2d, GroupsNotDividingChannelsThrows) {
  expect_invalid({1, 3, 4, 4}, {4, 1, 3, 3}, nullptr, params({1, 1}, {0, 0}, {1, 1}, 2),
                 "does not divide x channels 3");
  expect_invalid({1, 4, 4, 4}, {3, 2, 3, 3}, nullptr, params({1, 1}, {0, 0}, {1, 1}, 2),
                 "does not divide w out-channels 3");
  expect_invalid({1, 4, 4, 4}, {4, 4, 3, 3}, nullptr, params({1, 1}, {0, 0}, {1, 1}, 2),
                 "w in-channels is 4, expected 2");
  expect_invalid({1, 4, 4, 4}, {4, 4, 3, 3}, nullptr, params({1, 1}, {0, 0}, {1, 1}, 0),
                 "groups must be positive");
}

TEST(RefConv2d, NonPositiveStrideOrDilationAndNegativePadThrow) {
  const Shape x{1, 1, 4, 4}, w{1, 1, 2, 2};
  expect_invalid(x, w, nullptr, params({0, 1}, {0, 0}, {1, 1}, 1), "stride (height) must be");
  expect_invalid(x, w, nullptr, params({1, -2}, {0, 0}, {1, 1}, 1), "stride (width) must be");
  expect_invalid(x, w, nullptr, params({1, 1}, {-1, 0}, {1, 1}, 1), "pad (height)");
  expect_invalid(x, w, nullptr, params({1, 1}, {0, 0}, {1, 0}, 1), "dilation (width)");
}

TEST(RefConv2d, WrongBiasShapeThrows) {
  const Shape b3{3}, b22{2, 2};
  expect_invalid({1, 1, 4, 4}, {2, 1, 2, 2}, &b3, params({1, 1}, {0, 0}, {1, 1}, 1),
                 "b has shape [3], expected [2]");
  expect_invalid({1, 1, 4, 4}, {2, 1, 2, 2}, &b22, params({1, 1}, {0, 0}, {1, 1}, 1),
                 "b has shape [2,2], expected [2]");
}

TEST(RefConv2d, RankMismatchThrows) {
  expect_invalid({1, 4, 4}, {1, 1, 2, 2}, nullptr, params({1, 1}, {0, 0}, {1, 1}, 1),
                 "x must be 4-d");
  expect_invalid({1, 1, 4, 4}, {1, 2, 2}, nullptr, params({1, 1}, {0, 0}, {1, 1}, 1),
                 "w must be 4-d");
}
