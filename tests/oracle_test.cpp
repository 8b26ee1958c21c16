// The oracle as a user sees it: raw-buffer kernels checked by oracle::check_conv2d_*, and
// generic user functions checked by gradcheck::gradcheck.
//
// The "user" kernels below are written here from the conv2d definition with their own index
// arithmetic (scatter form for the backward passes, where the reference gathers), so they are
// an independent implementation; every expected verdict follows from how a kernel is broken.
// Tolerances are the oracle's derived default (gamma_T(K) * S per element, see raw.hpp): a
// correct kernel in T is inside it by construction (Higham eq. 3.5, any summation order).
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tapegrad/tapegrad.hpp"

namespace tapegrad {
namespace {

using oracle::Conv2dProblem;
using oracle::GradMode;
using oracle::Layout;
using oracle::OracleOptions;
using oracle::OracleReport;

// A naive conv2d on raw buffers, as someone outside tapegrad would write it.
struct UserConv {
  index_t n, c, h, w, k, cg, r, s, p, q, kg;
  index_t sh, sw, ph, pw, dh, dw;
  Layout layout;
  bool ignore_dilation = false;  // the planted bug: index with dilation 1

  UserConv(const Conv2dProblem& pr)
      : n(pr.x[0]), c(pr.x[1]), h(pr.x[2]), w(pr.x[3]), k(pr.w[0]), cg(pr.w[1]), r(pr.w[2]),
        s(pr.w[3]), sh(pr.params.stride[0]), sw(pr.params.stride[1]), ph(pr.params.pad[0]),
        pw(pr.params.pad[1]), dh(pr.params.dilation[0]), dw(pr.params.dilation[1]),
        layout(pr.layout) {
    p = (h + 2 * ph - dh * (r - 1) - 1) / sh + 1;
    q = (w + 2 * pw - dw * (s - 1) - 1) / sw + 1;
    kg = k / (c / cg);
  }
  bool nhwc() const { return layout == Layout::nhwc; }
  index_t xi(index_t a, index_t ch, index_t y, index_t x) const {
    return nhwc() ? ((a * h + y) * w + x) * c + ch : ((a * c + ch) * h + y) * w + x;
  }
  index_t yi(index_t a, index_t ch, index_t y, index_t x) const {
    return nhwc() ? ((a * p + y) * q + x) * k + ch : ((a * k + ch) * p + y) * q + x;
  }
  index_t wi(index_t o, index_t ch, index_t y, index_t x) const {
    return nhwc() ? ((o * r + y) * s + x) * cg + ch : ((o * cg + ch) * r + y) * s + x;
  }
  // The input row/column that tap (rr, ss) of output (pp, qq) reads; -1 when in the padding.
  index_t in_row(index_t pp, index_t rr) const {
    const index_t y = pp * sh - ph + rr * (ignore_dilation ? 1 : dh);
    return y >= 0 && y < h ? y : -1;
  }
  index_t in_col(index_t qq, index_t ss) const {
    const index_t x = qq * sw - pw + ss * (ignore_dilation ? 1 : dw);
    return x >= 0 && x < w ? x : -1;
  }

  template <class T>
  void forward(const T* x, const T* wt, const T* b, T* y, index_t skip = -1) const {
    for (index_t a = 0; a < n; ++a)
      for (index_t o = 0; o < k; ++o)
        for (index_t pp = 0; pp < p; ++pp)
          for (index_t qq = 0; qq < q; ++qq) {
            if (yi(a, o, pp, qq) == skip) continue;
            T acc = b ? b[o] : T(0);
            for (index_t ch = 0; ch < cg; ++ch)
              for (index_t rr = 0; rr < r; ++rr)
                for (index_t ss = 0; ss < s; ++ss) {
                  const index_t iy = in_row(pp, rr), ix = in_col(qq, ss);
                  if (iy < 0 || ix < 0) continue;
                  acc += x[xi(a, (o / kg) * cg + ch, iy, ix)] * wt[wi(o, ch, rr, ss)];
                }
            y[yi(a, o, pp, qq)] = acc;
          }
  }
  // Scatter form: every dy element pushes into the dx elements it came from.
  template <class T>
  void backward_data(const T* dy, const T* wt, T* dx, bool accumulate, index_t skip = -1) const {
    if (!accumulate)
      for (index_t i = 0; i < n * c * h * w; ++i)
        if (i != skip) dx[i] = T(0);
    for (index_t a = 0; a < n; ++a)
      for (index_t o = 0; o < k; ++o)
        for (index_t pp = 0; pp < p; ++pp)
          for (index_t qq = 0; qq < q; ++qq)
            for (index_t ch = 0; ch < cg; ++ch)
              for (index_t rr = 0; rr < r; ++rr)
                for (index_t ss = 0; ss < s; ++ss) {
                  const index_t iy = in_row(pp, rr), ix = in_col(qq, ss);
                  if (iy < 0 || ix < 0) continue;
                  const index_t d = xi(a, (o / kg) * cg + ch, iy, ix);
                  if (d == skip) continue;
                  dx[d] += dy[yi(a, o, pp, qq)] * wt[wi(o, ch, rr, ss)];
                }
  }
  template <class T>
  void backward_weights(const T* x, const T* dy, T* dwt, bool accumulate) const {
    if (!accumulate)
      for (index_t i = 0; i < k * cg * r * s; ++i) dwt[i] = T(0);
    for (index_t a = 0; a < n; ++a)
      for (index_t o = 0; o < k; ++o)
        for (index_t pp = 0; pp < p; ++pp)
          for (index_t qq = 0; qq < q; ++qq)
            for (index_t ch = 0; ch < cg; ++ch)
              for (index_t rr = 0; rr < r; ++rr)
                for (index_t ss = 0; ss < s; ++ss) {
                  const index_t iy = in_row(pp, rr), ix = in_col(qq, ss);
                  if (iy < 0 || ix < 0) continue;
                  dwt[wi(o, ch, rr, ss)] +=
                      dy[yi(a, o, pp, qq)] * x[xi(a, (o / kg) * cg + ch, iy, ix)];
                }
  }
  template <class T>
  void backward_bias(const T* dy, T* db) const {
    for (index_t o = 0; o < k; ++o) {
      T acc(0);
      for (index_t a = 0; a < n; ++a)
        for (index_t pp = 0; pp < p; ++pp)
          for (index_t qq = 0; qq < q; ++qq) acc += dy[yi(a, o, pp, qq)];
      db[o] = acc;
    }
  }
};

// Stride, padding, dilation and groups all non-trivial, small enough for 50 digits.
Conv2dProblem problem(Layout layout, bool bias = true) {
  Conv2dProblem pr;
  pr.x = Shape{2, 4, 9, 8};
  pr.w = Shape{6, 2, 3, 2};  // groups 2: C/g = 2, K/g = 3
  pr.params.stride = {2, 1};
  pr.params.pad = {2, 1};
  pr.params.dilation = {2, 3};
  pr.params.groups = 2;
  pr.layout = layout;
  pr.bias = bias;
  return pr;
}

std::string printed(const OracleReport& r) {
  std::ostringstream os;
  r.print(os);
  return os.str();
}

template <class T>
void expect_correct_kernel_passes(Layout layout) {
  const Conv2dProblem pr = problem(layout);
  const UserConv u(pr);
  const OracleReport fwd = oracle::check_conv2d_forward<T>(
      pr, [&](const T* x, const T* w, const T* b, T* y) { u.forward(x, w, b, y); });
  EXPECT_TRUE(fwd.passed()) << printed(fwd);
  // P = (9 + 2*2 - 2*(3-1) - 1)/2 + 1 = 5, Q = (8 + 2*1 - 3*(2-1) - 1)/1 + 1 = 7.
  EXPECT_EQ(fwd.numel, 2 * 6 * 5 * 7);
  const OracleReport bd = oracle::check_conv2d_backward_data<T>(
      pr, [&](const T* dy, const T* w, T* dx) { u.backward_data(dy, w, dx, false); });
  EXPECT_TRUE(bd.passed()) << printed(bd);
  const OracleReport bw = oracle::check_conv2d_backward_weights<T>(
      pr, [&](const T* x, const T* dy, T* dw) { u.backward_weights(x, dy, dw, false); });
  EXPECT_TRUE(bw.passed()) << printed(bw);
  const OracleReport bb = oracle::check_conv2d_backward_bias<T>(
      pr, [&](const T* dy, T* db) { u.backward_bias(dy, db); });
  EXPECT_TRUE(bb.passed()) << printed(bb);
  // The reports speak the user's layout.
  EXPECT_EQ(bd.letters, layout == Layout::nchw ? "NCHW" : "NHWC");
  EXPECT_EQ(bw.letters, layout == Layout::nchw ? "KCRS" : "KRSC");
  EXPECT_EQ(bd.shape, layout == Layout::nchw ? Shape({2, 4, 9, 8}) : Shape({2, 9, 8, 4}));
}

TEST(RawOracle, NaiveUserConvPassesInNchwFloat) {
  expect_correct_kernel_passes<float>(Layout::nchw);
}
TEST(RawOracle, NaiveUserConvPassesInNchwDouble) {
  expect_correct_kernel_passes<double>(Layout::nchw);
}
TEST(RawOracle, NaiveUserConvPassesInNhwcFloat) {
  expect_correct_kernel_passes<float>(Layout::nhwc);
}
TEST(RawOracle, NaiveUserConvPassesInNhwcDouble) {
  expect_correct_kernel_passes<double>(Layout::nhwc);
}

TEST(RawOracle, NchwKernelCheckedAsNhwcFails) {
  // The same correct NCHW kernel, declared NHWC: the buffers it reads are transposed, so the
  // result is wrong almost everywhere. Catches a layout transform that is a no-op.
  Conv2dProblem pr = problem(Layout::nchw);
  const UserConv u(pr);
  pr.layout = Layout::nhwc;
  const OracleReport r = oracle::check_conv2d_forward<double>(
      pr, [&](const double* x, const double* w, const double* b, double* y) {
        u.forward(x, w, b, y);
      });
  EXPECT_FALSE(r.passed());
  EXPECT_GT(r.failing, r.numel / 2);
}

TEST(RawOracle, SkippedForwardElementIsReportedNeverWritten) {
  const Conv2dProblem pr = problem(Layout::nchw);
  const UserConv u(pr);
  const index_t skip = u.yi(1, 4, 2, 3);  // y[1,4,2,3] is never written
  const OracleReport r = oracle::check_conv2d_forward<float>(
      pr, [&](const float* x, const float* w, const float* b, float* y) {
        u.forward(x, w, b, y, skip);
      });
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.failing, 1);
  ASSERT_EQ(r.unwritten.size(), 1u);
  EXPECT_EQ(r.unwritten[0], skip);
  EXPECT_EQ(*r.worst_ratio_index, skip);  // a NaN error ranks worst
  EXPECT_NE(printed(r).find("element y[1,4,2,3] was never written"), std::string::npos)
      << printed(r);
}

TEST(RawOracle, SkippedGradientElementIsReportedNeverWrittenInBothModes) {
  const Conv2dProblem pr = problem(Layout::nhwc);
  const UserConv u(pr);
  const index_t skip = u.xi(0, 3, 4, 5);  // dx[0,4,5,3] in NHWC
  for (GradMode mode : {GradMode::overwrite, GradMode::accumulate}) {
    OracleOptions opt;
    opt.grad_mode = mode;
    const bool acc = mode == GradMode::accumulate;
    const OracleReport r = oracle::check_conv2d_backward_data<double>(
        pr, [&](const double* dy, const double* w, double* dx) {
          u.backward_data(dy, w, dx, acc, skip);
        },
        opt);
    EXPECT_FALSE(r.passed());
    EXPECT_EQ(r.failing, 1);
    ASSERT_EQ(r.unwritten.size(), 1u) << printed(r);
    EXPECT_EQ(r.unwritten[0], skip);
    EXPECT_TRUE(r.accumulated.empty() && r.overwritten.empty());
    EXPECT_NE(printed(r).find("element dx[0,4,5,3] was never written"), std::string::npos)
        << printed(r);
  }
}

TEST(RawOracle, AccumulatingKernelPassesWhenDeclaredAccumulate) {
  const Conv2dProblem pr = problem(Layout::nchw);
  const UserConv u(pr);
  OracleOptions opt;
  opt.grad_mode = GradMode::accumulate;
  const OracleReport r = oracle::check_conv2d_backward_weights<float>(
      pr, [&](const float* x, const float* dy, float* dw) { u.backward_weights(x, dy, dw, true); },
      opt);
  EXPECT_TRUE(r.passed()) << printed(r);
  // K = N*P*Q plus the final += onto the prefill: 2*5*7 + 1.
  EXPECT_EQ(r.reduction_length, 2 * 5 * 7 + 1);
}

TEST(RawOracle, OverwritingKernelDeclaredAccumulateIsCaught) {
  const Conv2dProblem pr = problem(Layout::nchw);
  const UserConv u(pr);
  OracleOptions opt;
  opt.grad_mode = GradMode::accumulate;
  const OracleReport r = oracle::check_conv2d_backward_weights<float>(
      pr, [&](const float* x, const float* dy, float* dw) { u.backward_weights(x, dy, dw, false); },
      opt);
  EXPECT_FALSE(r.passed());
  // Every element came out as the bare gradient (prefill in [1,2) is never absorbed).
  EXPECT_EQ(static_cast<index_t>(r.overwritten.size()), r.numel);
  EXPECT_NE(printed(r).find("was overwritten"), std::string::npos);
}

TEST(RawOracle, AccumulatingKernelDeclaredOverwriteIsCaught) {
  const Conv2dProblem pr = problem(Layout::nhwc);
  const UserConv u(pr);
  const OracleReport r = oracle::check_conv2d_backward_data<float>(
      pr, [&](const float* dy, const float* w, float* dx) { u.backward_data(dy, w, dx, true); });
  EXPECT_FALSE(r.passed());
  // Elements with a non-zero gradient are "accumulated"; any dx element that no tap reaches
  // has gradient 0 and stays NaN + 0 = NaN, so it counts as never written.
  EXPECT_FALSE(r.accumulated.empty());
  EXPECT_EQ(static_cast<index_t>(r.accumulated.size() + r.unwritten.size()), r.failing);
  EXPECT_EQ(r.failing, r.numel);
  EXPECT_NE(printed(r).find("was accumulated into"), std::string::npos);
}

// Does dilation change which (output, tap) pairs reach input row y? Compares the sets
// {(pp, rr) : pp*stride - pad + rr*dil = y} for the true dilation and for dilation 1.
bool dilation_affects(index_t y, index_t in, index_t out, index_t taps, index_t stride,
                      index_t pad, index_t dil) {
  auto reach = [&](index_t d) {
    std::set<std::pair<index_t, index_t>> set;
    for (index_t pp = 0; pp < out; ++pp)
      for (index_t rr = 0; rr < taps; ++rr) {
        const index_t at = pp * stride - pad + rr * d;
        if (at == y && at >= 0 && at < in) set.insert({pp, rr});
      }
    return set;
  };
  return reach(dil) != reach(1);
}

TEST(RawOracle, DilationIgnoringBackwardIsCaughtAtAnElementDilationAffects) {
  // Dilation on the height only, stride 1, no vertical padding: then input row 0 is reached
  // only by tap r = 0 with or without dilation (r >= 1 would need output row -r*dil < 0), so
  // some elements are unaffected by the bug and the statement below has content.
  Conv2dProblem pr = problem(Layout::nchw);
  pr.params.stride = {1, 1};
  pr.params.pad = {0, 1};
  pr.params.dilation = {2, 1};
  UserConv u(pr);
  u.ignore_dilation = true;
  const OracleReport r = oracle::check_conv2d_backward_data<double>(
      pr, [&](const double* dy, const double* w, double* dx) {
        u.backward_data(dy, w, dx, false);
      });
  ASSERT_FALSE(r.passed());
  ASSERT_TRUE(r.worst_ratio_index);
  // Decode the worst element (NCHW) and every failing one: all must be rows/columns whose
  // contributing taps change with dilation; and some elements are unaffected (so the
  // statement has content).
  auto affected = [&](index_t flat) {
    const index_t x = flat % u.w, y = (flat / u.w) % u.h;
    return dilation_affects(y, u.h, u.p, u.r, u.sh, u.ph, u.dh) ||
           dilation_affects(x, u.w, u.q, u.s, u.sw, u.pw, u.dw);
  };
  EXPECT_TRUE(affected(*r.worst_ratio_index)) << printed(r);
  index_t unaffected = 0;
  for (index_t i = 0; i < r.numel; ++i) unaffected += affected(i) ? 0 : 1;
  EXPECT_GT(unaffected, 0);
  EXPECT_LE(r.failing, r.numel - unaffected);
  EXPECT_GT(r.max_ratio, 1e6);  // an O(1) error against a ~1e-15 tolerance
}

// The two engines (OracleOptions::engine) judge alike: the same verdict, the same failing
// elements, the same worst element and ULP errors, and max errors and ratios equal to far below
// any printed digit (the exact engine's value is within ~2^-90 S of exact, the f50 engine's
// within ~2^-160 S). Checked on the correct kernel and on the dilation-ignoring one, every
// direction, in double (the tighter tolerance).
TEST(RawOracle, ExactAndFiftyDigitEnginesJudgeAlike) {
  const Conv2dProblem pr = problem(Layout::nhwc);
  for (bool buggy : {false, true}) {
    UserConv u(pr);
    u.ignore_dilation = buggy;
    OracleOptions ex, f;
    ex.engine = oracle::Engine::exact;
    f.engine = oracle::Engine::f50;
    auto same = [&](const OracleReport& a, const OracleReport& b) {
      EXPECT_EQ(a.passed(), b.passed());
      EXPECT_EQ(a.failing, b.failing);
      EXPECT_EQ(a.worst_ratio_index, b.worst_ratio_index);
      EXPECT_EQ(a.max_ulp_error, b.max_ulp_error);
      EXPECT_EQ(a.histogram, b.histogram);
      EXPECT_NEAR(a.max_abs_error, b.max_abs_error, 1e-12 * (1 + std::fabs(b.max_abs_error)));
      if (std::isinf(a.max_ratio) || std::isinf(b.max_ratio))  // an error where S = 0
        EXPECT_EQ(a.max_ratio, b.max_ratio);
      else
        EXPECT_NEAR(a.max_ratio, b.max_ratio, 1e-9 * (1 + b.max_ratio));
      EXPECT_EQ(a.engine, oracle::Engine::exact);
      EXPECT_EQ(b.engine, oracle::Engine::f50);
    };
    auto fwd = [&](const double* x, const double* w, const double* b, double* y) {
      u.forward(x, w, b, y);
    };
    same(oracle::check_conv2d_forward<double>(pr, fwd, ex),
         oracle::check_conv2d_forward<double>(pr, fwd, f));
    auto bd = [&](const double* dy, const double* w, double* dx) {
      u.backward_data(dy, w, dx, false);
    };
    same(oracle::check_conv2d_backward_data<double>(pr, bd, ex),
         oracle::check_conv2d_backward_data<double>(pr, bd, f));
    auto bw = [&](const double* x, const double* dy, double* dw) {
      u.backward_weights(x, dy, dw, false);
    };
    same(oracle::check_conv2d_backward_weights<double>(pr, bw, ex),
         oracle::check_conv2d_backward_weights<double>(pr, bw, f));
    auto bb = [&](const double* dy, double* db) { u.backward_bias(dy, db); };
    same(oracle::check_conv2d_backward_bias<double>(pr, bb, ex),
         oracle::check_conv2d_backward_bias<double>(pr, bb, f));
  }
}

TEST(RawOracle, KernelThatModifiesAnInputFails) {
  const Conv2dProblem pr = problem(Layout::nchw, false);
  const UserConv u(pr);
  const OracleReport r = oracle::check_conv2d_forward<double>(
      pr, [&](const double* x, const double* w, const double*, double* y) {
        u.forward(x, w, static_cast<const double*>(nullptr), y);
        const_cast<double*>(w)[0] = 0;  // a kernel that scribbles on its input
      });
  EXPECT_EQ(r.failing, 0);  // y itself is right (w was changed after use)
  EXPECT_FALSE(r.passed());
  ASSERT_EQ(r.modified_inputs.size(), 1u);
  EXPECT_EQ(r.modified_inputs[0], "w");
}

TEST(RawOracle, CallerToleranceReplacesTheDerivedOne) {
  // y[0,0,0,0] off by 1e-3: far outside the derived bound (~1e-6 in float), inside atol 1e-2.
  const Conv2dProblem pr = problem(Layout::nchw);
  const UserConv u(pr);
  auto kernel = [&](const float* x, const float* w, const float* b, float* y) {
    u.forward(x, w, b, y);
    y[0] += 1e-3f;
  };
  EXPECT_FALSE(oracle::check_conv2d_forward(pr, kernel).passed());
  OracleOptions opt;
  opt.tolerance = gradcheck::CompareOptions{};
  opt.tolerance->atol = 1e-2;
  const OracleReport r = oracle::check_conv2d_forward(pr, kernel, opt);
  EXPECT_TRUE(r.passed()) << printed(r);
  EXPECT_FALSE(r.derived_tolerance);
}

TEST(RawOracle, InvalidProblemThrowsNamingTheCheck) {
  Conv2dProblem pr = problem(Layout::nchw);
  pr.w = Shape{6, 3, 3, 2};  // in-channels 3, expected C/groups = 2
  try {
    oracle::check_conv2d_backward_data<float>(pr, [](const float*, const float*, float*) {});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("check_conv2d_backward_data: w in-channels is 3"),
              std::string::npos)
        << e.what();
  }
}

TEST(RawOracle, GeneratedInputsAreSeededAndInRange) {
  const auto a = oracle::oracle_values<float>(1000, 7, 0);
  EXPECT_EQ(a, oracle::oracle_values<float>(1000, 7, 0));
  EXPECT_NE(a, oracle::oracle_values<float>(1000, 8, 0));
  EXPECT_NE(a, oracle::oracle_values<float>(1000, 7, 1));
  for (float v : a) EXPECT_TRUE(v >= -1 && v < 1);
  for (double v : oracle::oracle_values<double>(1000, 7, 4)) EXPECT_TRUE(v >= 1 && v < 2);
}

// ---------------------------------------------------------------- generic gradcheck

// f(x, w) = sum_i exp(x_i) * w_i + (sum_i x_i * w_i)^2 / 2, written once for any S.
struct UserFunction {
  template <class S>
  S operator()(const std::vector<Tensor<S>>& in) const {
    using std::exp;
    S acc(0), dot(0);
    for (index_t i = 0; i < in[0].numel(); ++i) {
      acc += exp(in[0][i]) * in[1][i];
      dot += in[0][i] * in[1][i];
    }
    return acc + dot * dot / S(2);
  }
};

// Its gradient by hand: df/dx_i = exp(x_i) w_i + dot * w_i,  df/dw_i = exp(x_i) + dot * x_i.
std::vector<Tensor<double>> hand_gradient(const Tensor<double>& x, const Tensor<double>& w) {
  double dot = 0;
  for (index_t i = 0; i < x.numel(); ++i) dot += x[i] * w[i];
  Tensor<double> dx(x.shape()), dw(w.shape());
  for (index_t i = 0; i < x.numel(); ++i) {
    dx[i] = std::exp(x[i]) * w[i] + dot * w[i];
    dw[i] = std::exp(x[i]) + dot * x[i];
  }
  return {dx, dw};
}

Tensor<double> values_of(Shape s, std::uint64_t stream) {
  return Tensor<double>(s, oracle::oracle_values<double>(s.numel(), 3, stream));
}

TEST(GenericGradcheck, TapeAgreesWithFiniteDifferencesOnASmoothFunction) {
  const Tensor<double> x = values_of({2, 3}, 0), w = values_of({2, 3}, 1);
  const auto rep = gradcheck::gradcheck(UserFunction{}, {x, w});
  EXPECT_TRUE(rep.passed());
  ASSERT_EQ(rep.tensors.size(), 2u);
  EXPECT_EQ(rep.tensors[0].fd_checked, 6);
  EXPECT_EQ(rep.tensors[0].kinks, 0);
  EXPECT_EQ(rep.fd_evaluations, 1 + 4 * 12);
  // The reference is the hand gradient to double rounding: |ref - hand| <= ~1e-15 * S.
  const auto hand = hand_gradient(x, w);
  EXPECT_NEAR(static_cast<double>(rep.reference[1][4]), hand[1][4], 1e-13);
}

TEST(GenericGradcheck, CorrectUserGradientPasses) {
  const Tensor<double> x = values_of({2, 3}, 0), w = values_of({2, 3}, 1);
  const auto hand = hand_gradient(x, w);
  const auto rep = gradcheck::gradcheck(UserFunction{}, {x, w}, {hand[0], hand[1]});
  std::ostringstream os;
  rep.print(os);
  EXPECT_TRUE(rep.passed()) << os.str();
  EXPECT_TRUE(rep.tensors[1].has_user);
}

TEST(GenericGradcheck, PerturbedUserGradientFailsAtThePerturbedElement) {
  const Tensor<double> x = values_of({2, 3}, 0), w = values_of({2, 3}, 1);
  auto hand = hand_gradient(x, w);
  // 1e-9 relative: 10^5 x above the derived tolerance gamma_double(K) * S ~ K * 1.1e-16 * S
  // with K ~ 50 tape nodes.
  hand[0][4] *= 1 + 1e-9;
  const auto rep = gradcheck::gradcheck(UserFunction{}, {x, w}, {hand[0], hand[1]});
  std::ostringstream os;
  rep.print(os);
  EXPECT_FALSE(rep.passed()) << os.str();
  EXPECT_TRUE(rep.tensors[0].fd_pass);  // the reference itself is fine
  EXPECT_FALSE(rep.tensors[0].user_pass);
  EXPECT_EQ(rep.tensors[0].user_worst, 4);
  EXPECT_EQ(rep.tensors[0].user_failing, 1);
  EXPECT_TRUE(rep.tensors[1].user_pass);
  EXPECT_NE(os.str().find("worst element [1,1]"), std::string::npos) << os.str();
}

TEST(GenericGradcheck, SingleTensorGenericLambdaWorks) {
  // f(x) = sum tanh(x_i)^2: df/dx_i = 2 tanh(x_i) (1 - tanh(x_i)^2).
  auto f = [](const auto& x) {
    using S = typename std::decay_t<decltype(x)>::value_type;
    using std::tanh;
    S acc(0);
    for (const S& v : x) acc += tanh(v) * tanh(v);
    return acc;
  };
  const Tensor<double> x = values_of({5}, 2);
  Tensor<double> g(x.shape());
  for (index_t i = 0; i < 5; ++i) {
    const double t = std::tanh(x[i]);
    g[i] = 2 * t * (1 - t * t);
  }
  EXPECT_TRUE(gradcheck::gradcheck(f, x, g).passed());
  g[2] = -g[2];
  EXPECT_FALSE(gradcheck::gradcheck(f, x, g).passed());
}

}  // namespace
}  // namespace tapegrad
