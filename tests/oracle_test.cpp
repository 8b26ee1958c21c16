// The oracle as a user sees it: raw-buffer kernels checked by oracle::check_conv2d_*, and
// generic user functions checked by gradcheck::gradcheck.
//
// The "user" kernels below are written here from the conv2d definition with their own index
// arithmetic (scatter form for the backward passes, where the reference gathers), so they are
// an independent implementation; every expected verdict follows from how a kernel is broken.
// Tolerances are the oracle's derived default (gamma_T(K) * S per element, see raw.hpp): a
// correct kernel in T is inside it by construction (Higham eq. 3.5, any summation order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tapegrad/tapegrad.hpp"
#include "oracle_test_support.hpp"

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

using tapegrad::test::printed;

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

// ---------------------------------------------------------------- the derived bound, both sides
// Every check judges element i by |actual - exact| <= gamma_T(K) * S_i (raw.hpp), K per
// direction: forward C/G*R*S + 1 (bias), backward-data K/G*R*S, backward-weights and -bias
// N*P*Q; accumulate mode one more (the final "+=") with S_i + |P_i| (P the prefill). The
// kernels below compute the exact result from the buffers they are given (50-digit reference,
// rounded once to T), and at one element write the T value just below or just above
// exact + bound, the bound recomputed here from that formula (gamma(K) = K u / (1 - K u)). Just
// below must pass, just above must fail at exactly that element; a bound loosened by any
// factor above 1 + ulp / bound (K off by one, K*R*S instead of K/G*R*S for groups = 2, ...)
// lets the second through.
namespace bounds {

enum class Dir { forward, backward_data, backward_weights, backward_bias };

double gamma_of(double k, double u) { return k * u / (1 - k * u); }

Tensor<f50> abs50(const Tensor<f50>& t) {
  return map(t, [](const f50& v) { return f50(abs(v)); });
}
template <class T>
Tensor<f50> from_buffer(const T* p, const Shape& s) {
  Tensor<f50> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = f50(p[i]);
  return t;
}
template <class T>
T round_once(const f50& v) {
  if constexpr (std::is_same_v<T, float>)
    return io::round_to_float(v);
  else
    return io::round_to_double(v);
}
// The largest T <= b, and the smallest T > b.
template <class T>
T at_most(const f50& b) {
  T t = round_once<T>(b);
  while (f50(t) > b) t = std::nextafter(t, -std::numeric_limits<T>::infinity());
  return t;
}
template <class T>
T above(const f50& b) {
  T t = round_once<T>(b);
  while (f50(t) <= b) t = std::nextafter(t, std::numeric_limits<T>::infinity());
  return t;
}

// What a placing kernel did (kept across the oracle's calls of it).
struct Placement {
  bool above = false;   // the placed error just above the bound (else at most the bound)
  index_t at = -1;      // the element
  double allowed = 0;   // the bound there, as computed here
  double ratio = 0;     // the placed error / allowed
};

// out = exact (or out += exact when accumulating), rounded once, except element pl.at (chosen
// on the first call: where the T grid is finest relative to the bound), placed next to the
// bound.
template <class T>
void place(T* out, const Tensor<f50>& exact, const Tensor<f50>& s, index_t k, bool accumulate,
           Placement& pl) {
  const double u = ScalarTraits<T>::unit_roundoff();
  const index_t n = exact.numel();
  std::vector<f50> value(static_cast<std::size_t>(n));
  std::vector<double> allowed(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    const f50 base = accumulate ? f50(out[i]) : f50(0);
    value[std::size_t(i)] = base + exact[i];
    // as raw.hpp: gamma(K) * S, S rounded to double (accumulate: K + 1 and S + |P|)
    const double mass = static_cast<double>(s[i] + abs(base));
    allowed[std::size_t(i)] = gamma_of(double(accumulate ? k + 1 : k), u) * mass;
  }
  // (a NaN-filled buffer, accumulated into, stays NaN: nothing to place on that call)
  if (pl.at < 0) {
    double best = 0;
    for (index_t i = 0; i < n; ++i) {
      const T v = round_once<T>(value[std::size_t(i)]);
      const double ulp = double(std::nextafter(v, std::numeric_limits<T>::infinity()) - v);
      const double fine = allowed[std::size_t(i)] / ulp;
      if (exact[i] != 0 && std::isfinite(fine) && fine > best) best = fine, pl.at = i;
    }
  }
  for (index_t i = 0; i < n; ++i) out[i] = round_once<T>(value[std::size_t(i)]);
  if (pl.at < 0 || !std::isfinite(allowed[std::size_t(pl.at)])) return;
  const std::size_t a = std::size_t(pl.at);
  const f50 bound = value[a] + f50(allowed[a]);
  out[pl.at] = pl.above ? above<T>(bound) : at_most<T>(bound);
  pl.allowed = allowed[a];
  pl.ratio = static_cast<double>(abs(f50(out[pl.at]) - value[a])) / allowed[a];
}

// The exact result of a direction from its input buffers (NCHW, as the problem says), and S.
struct Exact {
  Tensor<f50> value, s;
  index_t k = 0;
};
Exact exact_forward(const Conv2dGeom& g, const Tensor<f50>& x, const Tensor<f50>& w,
                    const Tensor<f50>& b) {
  const Tensor<f50> ab = abs50(b);
  return {ref::conv2d_forward(g, x, w, &b), ref::conv2d_forward(g, abs50(x), abs50(w), &ab),
          g.c_per_group() * g.r * g.s + 1};
}

// Runs the check of `dir` on problem() (NCHW, groups 2) with a kernel that declares `mode`
// and behaves as `accumulates` says, placing one error next to the bound.
template <class T>
OracleReport run_placed(Dir dir, GradMode mode, bool accumulates, Placement& pl) {
  const Conv2dProblem pr = problem(Layout::nchw);
  const Shape bs{pr.w[0]};
  const Conv2dGeom g = make_conv2d_geom(pr.x, pr.w, &bs, pr.params);
  const index_t npq = g.n * g.p * g.q;
  OracleOptions opt;
  opt.grad_mode = mode;
  opt.tier = oracle::Tier::sound;  // the bound placed against is gamma(K) S (the probabilistic
                                   // tier's placement: oracle_tiers_test.cpp)
  switch (dir) {
    case Dir::forward:
      return oracle::check_conv2d_forward<T>(
          pr, [&](const T* x, const T* w, const T* b, T* y) {
            const Exact e = exact_forward(g, from_buffer(x, g.x_shape()),
                                          from_buffer(w, g.w_shape()), from_buffer(b, bs));
            place(y, e.value, e.s, e.k, false, pl);
          });
    case Dir::backward_data:
      return oracle::check_conv2d_backward_data<T>(
          pr,
          [&](const T* dy, const T* w, T* dx) {
            const Tensor<f50> d = from_buffer(dy, g.y_shape()), wt = from_buffer(w, g.w_shape());
            place(dx, ref::conv2d_backward_data(g, d, wt),
                  ref::conv2d_backward_data(g, abs50(d), abs50(wt)),
                  g.k_per_group() * g.r * g.s, accumulates, pl);
          },
          opt);
    case Dir::backward_weights:
      return oracle::check_conv2d_backward_weights<T>(
          pr,
          [&](const T* x, const T* dy, T* dw) {
            const Tensor<f50> xs = from_buffer(x, g.x_shape()), d = from_buffer(dy, g.y_shape());
            place(dw, ref::conv2d_backward_weights(g, xs, d),
                  ref::conv2d_backward_weights(g, abs50(xs), abs50(d)), npq, accumulates, pl);
          },
          opt);
    case Dir::backward_bias:
      return oracle::check_conv2d_backward_bias<T>(
          pr,
          [&](const T* dy, T* db) {
            const Tensor<f50> d = from_buffer(dy, g.y_shape());
            place(db, ref::conv2d_backward_bias(g, d), ref::conv2d_backward_bias(g, abs50(d)),
                  npq, accumulates, pl);
          },
          opt);
  }
  return {};
}

const char* dir_name(Dir d) {
  switch (d) {
    case Dir::forward: return "forward";
    case Dir::backward_data: return "backward_data";
    case Dir::backward_weights: return "backward_weights";
    case Dir::backward_bias: return "backward_bias";
  }
  return "";
}

template <class T>
void expect_bound_is_tight(Dir dir, GradMode mode) {
  const bool acc = mode == GradMode::accumulate;
  SCOPED_TRACE(std::string(dir_name(dir)) + " " + ScalarTraits<T>::name + " " +
               oracle::grad_mode_name(mode));
  Placement below, over;
  over.above = true;
  const OracleReport pass = run_placed<T>(dir, mode, acc, below);
  const OracleReport fail = run_placed<T>(dir, mode, acc, over);
  ASSERT_GE(below.at, 0);
  ASSERT_EQ(below.at, over.at);
  // The placement is as close to the bound as T allows, and on the intended side.
  EXPECT_LE(below.ratio, 1.0);
  EXPECT_GT(below.ratio, 0.75);
  EXPECT_GT(over.ratio, 1.0);
  EXPECT_LT(over.ratio, 1.25);
  EXPECT_TRUE(pass.passed()) << printed(pass);
  EXPECT_FALSE(fail.passed());
  EXPECT_EQ(fail.failing, 1) << printed(fail);
  ASSERT_TRUE(fail.worst_ratio_index.has_value());
  EXPECT_EQ(*fail.worst_ratio_index, over.at);
  EXPECT_GT(fail.max_ratio, 1.0);
  EXPECT_NEAR(fail.max_ratio, over.ratio, 1e-6 * over.ratio);
  EXPECT_NEAR(pass.max_ratio, below.ratio, 1e-6);  // the placed element is the worst
}

}  // namespace bounds

TEST(RawOracleBound, ForwardFailsJustAboveTheDerivedBoundAndPassesJustBelow) {
  bounds::expect_bound_is_tight<float>(bounds::Dir::forward, GradMode::overwrite);
  bounds::expect_bound_is_tight<double>(bounds::Dir::forward, GradMode::overwrite);
}

// Groups 2: K = K/G*R*S = 3*3*2 = 18, not K*R*S = 36 (a bound `groups` times looser fails
// this test).
TEST(RawOracleBound, GroupedBackwardDataFailsJustAboveTheDerivedBoundAndPassesJustBelow) {
  for (GradMode m : {GradMode::overwrite, GradMode::accumulate}) {
    bounds::expect_bound_is_tight<float>(bounds::Dir::backward_data, m);
    bounds::expect_bound_is_tight<double>(bounds::Dir::backward_data, m);
  }
}

TEST(RawOracleBound, BackwardWeightsFailsJustAboveTheDerivedBoundAndPassesJustBelow) {
  for (GradMode m : {GradMode::overwrite, GradMode::accumulate}) {
    bounds::expect_bound_is_tight<float>(bounds::Dir::backward_weights, m);
    bounds::expect_bound_is_tight<double>(bounds::Dir::backward_weights, m);
  }
}

TEST(RawOracleBound, BackwardBiasFailsJustAboveTheDerivedBoundAndPassesJustBelow) {
  for (GradMode m : {GradMode::overwrite, GradMode::accumulate}) {
    bounds::expect_bound_is_tight<float>(bounds::Dir::backward_bias, m);
    bounds::expect_bound_is_tight<double>(bounds::Dir::backward_bias, m);
  }
}

// The guards label a failing element by what the kernel did, each with its own bound:
//   declared overwrite, kernel accumulates: "accumulated" iff the prefilled call's element
//     is within gamma(K+1) * (S + |P|) of P + exact (the NaN-filled call fails it anyway);
//   declared accumulate, kernel overwrites: "overwritten" iff within gamma(K) * S of exact.
// Just inside, the element is labelled; just outside it is only failing.
TEST(RawOracleBound, AccumulatedLabelHoldsJustInsideItsBoundAndNotJustOutside) {
  using bounds::Dir;
  for (bool out : {false, true}) {
    bounds::Placement pl;
    pl.above = out;
    const OracleReport r =
        bounds::run_placed<double>(Dir::backward_weights, GradMode::overwrite, true, pl);
    EXPECT_FALSE(r.passed());
    const bool labelled = std::find(r.accumulated.begin(), r.accumulated.end(), pl.at) !=
                          r.accumulated.end();
    EXPECT_EQ(labelled, !out) << "ratio " << pl.ratio << "\n" << printed(r);
    EXPECT_GT(pl.ratio, out ? 1.0 : 0.75);
    EXPECT_LT(pl.ratio, out ? 1.25 : 1.0);
    // every other element is a clean accumulation: labelled
    EXPECT_EQ(static_cast<index_t>(r.accumulated.size()), r.numel - (out ? 1 : 0));
  }
}

TEST(RawOracleBound, OverwrittenLabelHoldsJustInsideItsBoundAndNotJustOutside) {
  using bounds::Dir;
  for (bool out : {false, true}) {
    bounds::Placement pl;
    pl.above = out;
    const OracleReport r =
        bounds::run_placed<float>(Dir::backward_data, GradMode::accumulate, false, pl);
    EXPECT_FALSE(r.passed());
    const bool labelled = std::find(r.overwritten.begin(), r.overwritten.end(), pl.at) !=
                          r.overwritten.end();
    EXPECT_EQ(labelled, !out) << "ratio " << pl.ratio << "\n" << printed(r);
    EXPECT_GT(pl.ratio, out ? 1.0 : 0.75);
    EXPECT_LT(pl.ratio, out ? 1.25 : 1.0);
  }
}

// A caller tolerance replaces the derived bound: atol alone, rtol alone (relative to the
// expected value, the exact result rounded once to T) and max_ulps, each just inside and
// just outside, at one element of an otherwise exact forward.
TEST(RawOracleBound, CallerToleranceOptionsFailJustOutsideAndPassJustInside) {
  const Conv2dProblem pr = problem(Layout::nchw);
  const Shape bs{pr.w[0]};
  const Conv2dGeom g = make_conv2d_geom(pr.x, pr.w, &bs, pr.params);
  const index_t at = 7;
  // shift(e, y): the value written at `at` given the exact value e and its rounding y
  auto run = [&](const gradcheck::CompareOptions& co, auto shift) {
    OracleOptions opt;
    opt.tolerance = co;
    return oracle::check_conv2d_forward<double>(
        pr,
        [&](const double* x, const double* w, const double* b, double* y) {
          const bounds::Exact e = bounds::exact_forward(g, bounds::from_buffer(x, g.x_shape()),
                                                        bounds::from_buffer(w, g.w_shape()),
                                                        bounds::from_buffer(b, bs));
          for (index_t i = 0; i < e.value.numel(); ++i) y[i] = io::round_to_double(e.value[i]);
          y[at] = shift(e.value[at], y[at]);
        },
        opt);
  };
  for (bool out : {false, true}) {
    SCOPED_TRACE(out ? "just outside" : "just inside");
    gradcheck::CompareOptions atol;
    atol.atol = 1e-9;
    const OracleReport ra = run(atol, [&](const f50& e, double) {
      const f50 b = e + f50(1e-9);
      return out ? bounds::above<double>(b) : bounds::at_most<double>(b);
    });
    EXPECT_EQ(ra.passed(), !out) << printed(ra);
    gradcheck::CompareOptions rtol;
    rtol.rtol = 1e-9;
    const OracleReport rr = run(rtol, [&](const f50& e, double y) {
      const f50 b = e + f50(1e-9 * std::fabs(y));  // relative to the expected value y
      return out ? bounds::above<double>(b) : bounds::at_most<double>(b);
    });
    EXPECT_EQ(rr.passed(), !out) << printed(rr);
    gradcheck::CompareOptions ulps;
    ulps.max_ulps = 3;
    const OracleReport ru = run(ulps, [&](const f50&, double y) {
      for (int i = 0; i < (out ? 4 : 3); ++i) y = std::nextafter(y, INFINITY);
      return y;
    });
    EXPECT_EQ(ru.passed(), !out) << printed(ru);
    if (out) {
      EXPECT_EQ(ra.failing, 1);
      EXPECT_EQ(rr.failing, 1);
      EXPECT_EQ(ru.failing, 1);
      EXPECT_EQ(ru.max_ulp_error, 4u);
    }
  }
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
