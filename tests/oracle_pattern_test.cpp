// The reports' pattern lines (OracleReport::pattern, src/oracle/pattern.hpp): kernels with a
// planted bug whose footprint is known from how the bug is written, and the line the report
// must print for it. The kernels are naive loops written here from the definitions (NCHW,
// cross-correlation, PyTorch shapes); each bug's footprint is derived in its comment.
#include <gtest/gtest.h>

#include <cmath>
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

using tapegrad::test::printed;
bool has_line(const OracleReport& r, const std::string& start) {
  for (const auto& l : r.pattern)
    if (l.rfind(start, 0) == 0) return true;
  return false;
}

enum class Bug { none, clamp_pad, group0, batch0, skip_last_q, channel3, first_of_group, scale_all };

// conv2d forward, NCHW / KCRS, with one planted bug:
//   clamp_pad    a tap in the padding reads the nearest edge element instead of 0: only outputs
//                whose window reaches into the padding change
//   group0       every group reads group 0's input channels: groups > 0 wrong, group 0 right
//   batch0       every image reads image 0: n > 0 wrong
//   skip_last_q  the column loop stops one short: the last output column is never written
//   channel3     output channel 3 gets its bias twice
//   first_of_group  the first output channel of every group gets its bias twice
//   scale_all    every output off by 0.5 (the allowed error is ~ 19 u S, S <= 19: far below)
struct NaiveConv {
  index_t n, c, h, w, k, cg, r, s, p, q, kg, sh, sw, ph, pw, dh, dw;
  Bug bug = Bug::none;
  explicit NaiveConv(const Conv2dProblem& pr, Bug b = Bug::none)
      : n(pr.x[0]), c(pr.x[1]), h(pr.x[2]), w(pr.x[3]), k(pr.w[0]), cg(pr.w[1]), r(pr.w[2]),
        s(pr.w[3]), sh(pr.params.stride[0]), sw(pr.params.stride[1]), ph(pr.params.pad[0]),
        pw(pr.params.pad[1]), dh(pr.params.dilation[0]), dw(pr.params.dilation[1]), bug(b) {
    p = (h + 2 * ph - dh * (r - 1) - 1) / sh + 1;
    q = (w + 2 * pw - dw * (s - 1) - 1) / sw + 1;
    kg = k / (c / cg);
  }
  template <class T>
  void forward(const T* x, const T* wt, const T* b, T* y) const {
    for (index_t a = 0; a < n; ++a)
      for (index_t o = 0; o < k; ++o)
        for (index_t pp = 0; pp < p; ++pp)
          for (index_t qq = 0; qq < (bug == Bug::skip_last_q ? q - 1 : q); ++qq) {
            T acc = b ? b[o] : T(0);
            if (bug == Bug::channel3 && o == 3 && b) acc += b[o];
            if (bug == Bug::first_of_group && o % kg == 0 && b) acc += b[o];
            for (index_t ch = 0; ch < cg; ++ch)
              for (index_t rr = 0; rr < r; ++rr)
                for (index_t ss = 0; ss < s; ++ss) {
                  index_t iy = pp * sh - ph + rr * dh, ix = qq * sw - pw + ss * dw;
                  if (bug == Bug::clamp_pad) {
                    iy = std::clamp<index_t>(iy, 0, h - 1);
                    ix = std::clamp<index_t>(ix, 0, w - 1);
                  }
                  if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                  const index_t img = bug == Bug::batch0 ? 0 : a;
                  const index_t in_c = (bug == Bug::group0 ? 0 : (o / kg) * cg) + ch;
                  acc += x[((img * c + in_c) * h + iy) * w + ix] *
                         wt[((o * cg + ch) * r + rr) * s + ss];
                }
            if (bug == Bug::scale_all) acc += T(0.5);
            y[((a * k + o) * p + pp) * q + qq] = acc;
          }
  }
  // Gather form: dx[i] = sum over the (output, tap) pairs that read i. With `skip_unread` the
  // planted bug: an element no window reads is left alone instead of being set to 0.
  template <class T>
  void backward_data(const T* dy, const T* wt, T* dx, bool skip_unread) const {
    for (index_t a = 0; a < n; ++a)
      for (index_t ci = 0; ci < c; ++ci)
        for (index_t iy = 0; iy < h; ++iy)
          for (index_t ix = 0; ix < w; ++ix) {
            T acc(0);
            bool read = false;
            const index_t grp = ci / cg;
            for (index_t o = grp * kg; o < (grp + 1) * kg; ++o)
              for (index_t rr = 0; rr < r; ++rr)
                for (index_t ss = 0; ss < s; ++ss) {
                  const index_t ny = iy + ph - rr * dh, nx = ix + pw - ss * dw;
                  if (ny < 0 || nx < 0 || ny % sh || nx % sw) continue;
                  const index_t pp = ny / sh, qq = nx / sw;
                  if (pp >= p || qq >= q) continue;
                  read = true;
                  acc += dy[((a * k + o) * p + pp) * q + qq] *
                         wt[((o * cg + ci % cg) * r + rr) * s + ss];
                }
            if (skip_unread && !read) continue;
            dx[((a * c + ci) * h + iy) * w + ix] = acc;
          }
  }
};

Conv2dProblem grouped(index_t groups = 2) {
  Conv2dProblem pr;
  pr.x = Shape{2, 2 * groups, 7, 6};
  pr.w = Shape{2 * groups, 2, 3, 3};
  pr.params.pad = {1, 1};
  pr.params.groups = groups;
  pr.bias = true;
  return pr;
}

OracleReport forward_with(Bug bug, const Conv2dProblem& pr = grouped()) {
  const NaiveConv u(pr, bug);
  return oracle::check_conv2d_forward<float>(
      pr, [&](const float* x, const float* w, const float* b, float* y) { u.forward(x, w, b, y); });
}

TEST(OraclePattern, CorrectKernelHasNoPatternLines) {
  const OracleReport r = forward_with(Bug::none);
  EXPECT_TRUE(r.passed()) << printed(r);
  EXPECT_TRUE(r.pattern.empty());
  EXPECT_EQ(printed(r).find("pattern"), std::string::npos);
}

TEST(OraclePattern, EdgeClampedPaddingFailsOnlyWhereTheWindowTouchesPadding) {
  // pad 1, 3x3 windows, stride 1: output rows 0 and P-1 and columns 0 and Q-1 reach into the
  // padding, the inner (P-2) x do not. The clamped read changes exactly the former.
  const OracleReport r = forward_with(Bug::clamp_pad);
  ASSERT_FALSE(r.passed());
  EXPECT_TRUE(has_line(r, "only where the window touches padding")) << printed(r);
  // 7x6 output, 5x4 inner: 42 - 20 = 22 border positions per plane, 2 images x 4 channels.
  EXPECT_EQ(r.failing, 2 * 4 * 22) << printed(r);
  EXPECT_NE(printed(r).find("  pattern          "), std::string::npos);
}

TEST(OraclePattern, WrongGroupOffsetFailsOnlyInTheLaterGroups) {
  // Group 0's channel offset is 0 anyway, so group 0 is right; with 2 groups of 2 output
  // channels, channels 2..3 are wrong.
  const OracleReport r2 = forward_with(Bug::group0);
  ASSERT_FALSE(r2.passed());
  EXPECT_TRUE(has_line(r2, "only group 1 of 2 (c 2..3)")) << printed(r2);
  const OracleReport r3 = forward_with(Bug::group0, grouped(3));
  EXPECT_TRUE(has_line(r3, "only groups {1,2} of 3")) << printed(r3);
}

TEST(OraclePattern, BatchOffsetBugFailsOnlyForLaterImages) {
  const OracleReport r = forward_with(Bug::batch0);
  ASSERT_FALSE(r.passed());
  EXPECT_TRUE(has_line(r, "only the last n (n = 1)")) << printed(r);
  Conv2dProblem pr = grouped();
  pr.x = Shape{3, 4, 7, 6};
  const OracleReport r3 = forward_with(Bug::batch0, pr);
  EXPECT_TRUE(has_line(r3, "only n > 0")) << printed(r3);
}

TEST(OraclePattern, ShortColumnLoopFailsOnlyTheLastColumn) {
  const OracleReport r = forward_with(Bug::skip_last_q);
  ASSERT_FALSE(r.passed());
  // Q = (6 + 2 - 2 - 1)/1 + 1 = 6: the last w index is 5; never written, so NaN.
  EXPECT_TRUE(has_line(r, "only the last w (w = 5)")) << printed(r);
  EXPECT_EQ(r.unwritten.size(), static_cast<std::size_t>(2 * 4 * 7));
}

TEST(OraclePattern, ChannelBugFailsOnlyThatChannel) {
  Conv2dProblem pr = grouped();
  pr.params.groups = 1;
  pr.w = Shape{4, 4, 3, 3};
  const OracleReport r = forward_with(Bug::channel3, pr);
  ASSERT_FALSE(r.passed());
  EXPECT_TRUE(has_line(r, "only the last c (c = 3)")) << printed(r);
  pr.w = Shape{6, 4, 3, 3};
  const OracleReport r6 = forward_with(Bug::channel3, pr);
  EXPECT_TRUE(has_line(r6, "only c = 3 (")) << printed(r6);
}

TEST(OraclePattern, BugAtTheSamePlaceInEveryGroupIsNamed) {
  // 3 groups of 2 output channels: channels 0, 2, 4 are the first of their group.
  const OracleReport r = forward_with(Bug::first_of_group, grouped(3));
  ASSERT_FALSE(r.passed());
  EXPECT_TRUE(has_line(r, "only c mod 2 = 0 (the same channel of every group)")) << printed(r);
  // A single channel is named as itself, not as a group.
  const OracleReport one = forward_with(Bug::channel3);
  EXPECT_TRUE(has_line(one, "only the last c (c = 3)")) << printed(one);
}

TEST(OraclePattern, ScaledOutputFailsEveryElement) {
  const OracleReport r = forward_with(Bug::scale_all);
  ASSERT_FALSE(r.passed());
  ASSERT_EQ(r.pattern.size(), 1u) << printed(r);
  EXPECT_EQ(r.pattern[0], "every element (336 of 336 fail)");  // 2*4*7*6
}

TEST(OraclePattern, NhwcReportNamesTheAxesOfTheUsersLayout) {
  // The same group bug seen through an NHWC kernel: the channel is the last axis there.
  Conv2dProblem pr = grouped();
  pr.layout = Layout::nhwc;
  const NaiveConv u(pr, Bug::group0);
  const OracleReport r = oracle::check_conv2d_forward<float>(
      pr, [&](const float* x, const float* w, const float* b, float* y) {
        // NHWC in and out, through the NCHW loops (transposes written out).
        std::vector<float> xn(static_cast<std::size_t>(pr.x.numel())), wn(xn.size());
        wn.resize(static_cast<std::size_t>(pr.w.numel()));
        for (index_t a = 0; a < u.n; ++a)
          for (index_t ch = 0; ch < u.c; ++ch)
            for (index_t i = 0; i < u.h; ++i)
              for (index_t j = 0; j < u.w; ++j)
                xn[static_cast<std::size_t>(((a * u.c + ch) * u.h + i) * u.w + j)] =
                    x[((a * u.h + i) * u.w + j) * u.c + ch];
        for (index_t o = 0; o < u.k; ++o)
          for (index_t ch = 0; ch < u.cg; ++ch)
            for (index_t i = 0; i < u.r; ++i)
              for (index_t j = 0; j < u.s; ++j)
                wn[static_cast<std::size_t>(((o * u.cg + ch) * u.r + i) * u.s + j)] =
                    w[((o * u.r + i) * u.s + j) * u.cg + ch];
        std::vector<float> yn(static_cast<std::size_t>(u.n * u.k * u.p * u.q));
        u.forward(xn.data(), wn.data(), b, yn.data());
        for (index_t a = 0; a < u.n; ++a)
          for (index_t o = 0; o < u.k; ++o)
            for (index_t i = 0; i < u.p; ++i)
              for (index_t j = 0; j < u.q; ++j)
                y[((a * u.p + i) * u.q + j) * u.k + o] =
                    yn[static_cast<std::size_t>(((a * u.k + o) * u.p + i) * u.q + j)];
      });
  ASSERT_FALSE(r.passed());
  EXPECT_TRUE(has_line(r, "only group 1 of 2 (c 2..3)")) << printed(r);
}

TEST(OraclePattern, BackwardDataThatSkipsUnreadElementsFailsOnlyWhereNoWindowReads) {
  // 1x1 kernel, stride 2, no padding on a 5x5 input: outputs read rows/columns 0, 2, 4 only,
  // so the 25 - 9 = 16 elements in odd rows or columns have gradient 0 -- and are never
  // written by the planted bug.
  Conv2dProblem pr;
  pr.x = Shape{1, 2, 5, 5};
  pr.w = Shape{3, 2, 1, 1};
  pr.params.stride = {2, 2};
  const NaiveConv u(pr);
  const auto bug = [&](const float* dy, const float* w, float* dx) {
    u.backward_data(dy, w, dx, true);
  };
  const OracleReport r = oracle::check_conv2d_backward_data<float>(pr, bug);
  ASSERT_FALSE(r.passed());
  EXPECT_TRUE(has_line(r, "only where no window reads it (gradient 0) (32 of its 32"))
      << printed(r);
  const OracleReport ok = oracle::check_conv2d_backward_data<float>(
      pr, [&](const float* dy, const float* w, float* dx) { u.backward_data(dy, w, dx, false); });
  EXPECT_TRUE(ok.passed()) << printed(ok);
}

TEST(OraclePattern, AccumulatingKernelReportDoesNotClaimZeroError) {
  // Declared overwrite, the kernel adds: on the NaN-prefilled buffer every element comes out
  // NaN. The report must not also say "max abs error 0" (it has no finite element to measure).
  Conv2dProblem pr;
  pr.x = Shape{1, 2, 4, 4};
  pr.w = Shape{2, 2, 3, 3};
  pr.params.pad = {1, 1};
  const NaiveConv u(pr);
  const OracleReport r = oracle::check_conv2d_backward_data<float>(
      pr, [&](const float* dy, const float* w, float* dx) {
        std::vector<float> g(static_cast<std::size_t>(pr.x.numel()));
        u.backward_data(dy, w, g.data(), false);
        for (std::size_t i = 0; i < g.size(); ++i) dx[i] += g[i];
      });
  ASSERT_FALSE(r.passed());
  const std::string text = printed(r);
  EXPECT_EQ(r.accumulated.size(), static_cast<std::size_t>(pr.x.numel())) << text;
  EXPECT_NE(text.find("actual nan"), std::string::npos) << text;
  EXPECT_EQ(text.find("max abs error    0"), std::string::npos) << text;
  EXPECT_NE(text.find("max abs error    none: no element is finite (32 NaN/Inf)"),
            std::string::npos)
      << text;
  EXPECT_EQ(r.pattern[0], "every element (32 of 32 fail)");
}

TEST(OraclePattern, PartlyNanOutputSaysTheErrorsAreOverTheFiniteElements) {
  // skip_last_q leaves one column NaN: 2*4*7 of 336 elements are not finite.
  const std::string text = printed(forward_with(Bug::skip_last_q));
  EXPECT_NE(text.find("(the max errors are over the 280 finite elements; 56 are NaN/Inf)"),
            std::string::npos)
      << text;
}

TEST(OraclePattern, WeightGradientBugOnPaddedTapsIsNamed) {
  // pad 1, 3x3 taps, stride 1 on 5x5: tap row 0 reads row -1 for output row 0, tap row 2 reads
  // row 5 for output row 4; only the centre tap (1,1) never reads padding. The planted bug
  // zeroes dw for every tap but the centre: exactly the taps that read padding fail.
  Conv2dProblem pr;
  pr.x = Shape{2, 2, 5, 5};
  pr.w = Shape{2, 2, 3, 3};
  pr.params.pad = {1, 1};
  const auto ok = [&](const float* x, const float* dy, float* dw) {
    const Conv2dGeom g = make_conv2d_geom(pr.x, pr.w, nullptr, pr.params);
    Tensor<float> xt(pr.x, std::vector<float>(x, x + pr.x.numel()));
    Tensor<float> dyt(g.y_shape(), std::vector<float>(dy, dy + g.y_shape().numel()));
    const Tensor<float> d = kernels::conv2d_backward_weights(g, xt, dyt);
    for (index_t i = 0; i < d.numel(); ++i) dw[i] = d[i];
  };
  const OracleReport good = oracle::check_conv2d_backward_weights<float>(pr, ok);
  EXPECT_TRUE(good.passed()) << printed(good);
  const OracleReport r = oracle::check_conv2d_backward_weights<float>(
      pr, [&](const float* x, const float* dy, float* dw) {
        ok(x, dy, dw);
        for (index_t i = 0; i < pr.w.numel(); ++i)
          if (i % 9 != 4) dw[i] = 0;  // every tap but the centre (1,1) of the 3x3
      });
  ASSERT_FALSE(r.passed());
  EXPECT_TRUE(has_line(r, "only where the tap reads padding (for some output)")) << printed(r);
}

TEST(OraclePattern, MaxPoolWhosePaddingWinsFailsOnlyWherePaddingIsTouched) {
  // A max pool that lets the padding (value 0) take part: a window touching padding whose
  // inputs are all negative gives 0 instead of its maximum. Windows inside never change.
  oracle::Pool2dProblem pr{.x = {2, 3, 6, 6},
                           .params = {.kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1}}};
  const Pool2dGeom g = make_pool2d_geom(pr.x, pr.params, "test");
  const auto pool = [&](const float* x, float* y) {
    for (index_t a = 0; a < g.n * g.c; ++a)
      for (index_t p = 0; p < g.p; ++p)
        for (index_t q = 0; q < g.q; ++q) {
          float m = -INFINITY;
          for (index_t i = 0; i < 3; ++i)
            for (index_t j = 0; j < 3; ++j) {
              const index_t iy = p - 1 + i, ix = q - 1 + j;
              const bool in = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
              m = std::max(m, in ? x[(a * g.h + iy) * g.w + ix] : 0.0f);  // the bug
            }
          y[(a * g.p + p) * g.q + q] = m;
        }
  };
  const OracleReport r = oracle::check_max_pool2d_forward<float>(pr, pool);
  ASSERT_FALSE(r.passed());
  EXPECT_TRUE(has_line(r, "only where the window touches padding")) << printed(r);
}

TEST(OraclePattern, LinearWeightGradientBugInTheLastColumnIsNamed) {
  oracle::LinearProblem pr{.x = {4, 5}, .w = {3, 5}};
  const auto bug = [&](const float* x, const float* dy, float* dw) {
    for (index_t o = 0; o < 3; ++o)
      for (index_t i = 0; i < 5; ++i) {
        float acc = 0;
        for (index_t a = 0; a < 4; ++a) acc += dy[a * 3 + o] * x[a * 5 + (i == 4 ? 3 : i)];
        dw[o * 5 + i] = acc;  // the planted bug: the last column reads column 3
      }
  };
  const OracleReport r = oracle::check_linear_backward_weights<float>(pr, bug);
  ASSERT_FALSE(r.passed());
  EXPECT_TRUE(has_line(r, "only the last in (in = 4) (3 of its 3 elements fail)")) << printed(r);
}

}  // namespace
}  // namespace tapegrad
