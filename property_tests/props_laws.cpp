// Laws of the reference ops, checked in 50 digits to near-exact tolerance, and the rejection
// of bad configurations at every entry point.
//
// In f50 (u50 = 2^-167 ~ 5e-51) a law that holds exactly in real arithmetic holds to
// gamma_f50(M) * (sum of |terms|), ~1e-45 relative for the sizes here. A bug in the indexing of
// one pass (padding, stride, dilation, groups) breaks a law by O(1) relative, 40 orders above
// that tolerance, so these laws pin the kernels to their definitions without any double or
// float noise.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <stdexcept>
#include <vector>

#include "cases.hpp"
#include "tapegrad/kernels/activation_ref.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/kernels/loss_ref.hpp"
#include "tapegrad/kernels/pool_ref.hpp"
#include "tapegrad/layers/layers.hpp"
#include "tapegrad/ops/ops.hpp"

namespace tapegrad::props {
namespace {

using T50 = Tensor<f50>;

f50 g50(double m) { return f50(gradcheck::gamma<f50>(m)); }

f50 dot(const T50& a, const T50& b) {
  f50 s = 0;
  for (index_t i = 0; i < a.numel(); ++i) s += a[i] * b[i];
  return s;
}

T50 axpby(const f50& a, const T50& x, const f50& b, const T50& y) {
  T50 z(x.shape());
  for (index_t i = 0; i < z.numel(); ++i) z[i] = a * x[i] + b * y[i];
  return z;
}

// |lhs - rhs| <= tol, or a report naming the law's two sides.
std::string near(const char* law, const f50& lhs, const f50& rhs, const f50& tol) {
  if (abs(lhs - rhs) <= tol) return {};
  std::ostringstream os;
  os << law << ": sides differ by " << sci(dbl(abs(lhs - rhs))) << " > tolerance "
     << sci(dbl(tol)) << "\n    lhs " << std::setprecision(20) << dbl(lhs) << "\n    rhs "
     << dbl(rhs) << "\n";
  return os.str();
}

// ---------------------------------------------------------------- conv2d
// conv(a x1 + b x2, w) = a conv(x1, w) + b conv(x2, w), element-wise.
// Catches: a forward that is not linear in x (a bias added per term, a stray constant).
// Tolerance: gamma_f50(Cg*R*S + 3) * (|a| conv(|x1|,|w|) + |b| conv(|x2|,|w|)).
RC_GTEST_PROP(Conv2dLaws, linearInInputInFiftyDigits, ()) {
  const Conv2dCase c = *gen_conv2d_case();
  classify_conv(c);
  const Conv2dGeom g = without_bias(c.g);
  const f50 a = 3, b = f50(-0.5);
  const T50 x1 = c.x.cast<f50>(), x2 = make_tensor(g.x_shape(), c.values, 7).cast<f50>();
  const T50 w = c.w.cast<f50>();
  const T50 lhs = ref::conv2d_forward(g, axpby(a, x1, b, x2), w, nullptr);
  const T50 rhs = axpby(a, ref::conv2d_forward(g, x1, w, nullptr), b,
                        ref::conv2d_forward(g, x2, w, nullptr));
  const T50 mass = axpby(abs(a), ref::conv2d_forward(g, abs50(x1), abs50(w), nullptr), abs(b),
                         ref::conv2d_forward(g, abs50(x2), abs50(w), nullptr));
  PROPS_CHECK(judge("conv2d(a x1 + b x2, w) vs a conv2d(x1, w) + b conv2d(x2, w)", lhs, rhs,
                    reduction_tol<f50>(mass, g.c_per_group() * g.r * g.s + 3)));
}

// conv(x, a w1 + b w2) = a conv(x, w1) + b conv(x, w2). Same tolerance.
RC_GTEST_PROP(Conv2dLaws, linearInWeightInFiftyDigits, ()) {
  const Conv2dCase c = *gen_conv2d_case();
  classify_conv(c);
  const Conv2dGeom g = without_bias(c.g);
  const f50 a = f50(-2), b = f50(0.75);
  const T50 x = c.x.cast<f50>();
  const T50 w1 = c.w.cast<f50>(), w2 = make_tensor(g.w_shape(), c.values, 8).cast<f50>();
  const T50 lhs = ref::conv2d_forward(g, x, axpby(a, w1, b, w2), nullptr);
  const T50 rhs = axpby(a, ref::conv2d_forward(g, x, w1, nullptr), b,
                        ref::conv2d_forward(g, x, w2, nullptr));
  const T50 mass = axpby(abs(a), ref::conv2d_forward(g, abs50(x), abs50(w1), nullptr), abs(b),
                         ref::conv2d_forward(g, abs50(x), abs50(w2), nullptr));
  PROPS_CHECK(judge("conv2d(x, a w1 + b w2) vs a conv2d(x, w1) + b conv2d(x, w2)", lhs, rhs,
                    reduction_tol<f50>(mass, g.c_per_group() * g.r * g.s + 3)));
}

// <conv(x, w), g> = <x, dx(g)> = <w, dw(x, g)>, and <b broadcast, g> = <b, db(g)>.
// Catches: any backward pass that is not the adjoint of the forward -- an off-by-one in
// padding, a stride or dilation ignored, a wrong group offset, a missing bias gradient.
// Tolerance: every side is a sum of the same products x*w*g, in different groupings; each
// product and partial sum rounds at most M = Cg*R*S + K/G*R*S + N*P*Q + numel(x, w, y) times,
// so |side - exact| <= gamma_f50(M) * S with S = <conv(|x|, |w|), |g|> (+ <|b|, db(|g|)>).
RC_GTEST_PROP(Conv2dLaws, adjointIdentityHoldsInFiftyDigits, ()) {
  const Conv2dCase c = *gen_conv2d_case();
  classify_conv(c);
  const Conv2dGeom g = without_bias(c.g);
  const T50 x = c.x.cast<f50>(), w = c.w.cast<f50>(), gy = c.gy.cast<f50>(), b = c.b.cast<f50>();
  const f50 y_g = dot(ref::conv2d_forward(g, x, w, nullptr), gy);
  const f50 x_dx = dot(x, ref::conv2d_backward_data(g, gy, w));
  const f50 w_dw = dot(w, ref::conv2d_backward_weights(g, x, gy));
  const f50 s = dot(ref::conv2d_forward(g, abs50(x), abs50(w), nullptr), abs50(gy));
  const double m = double(g.c_per_group() * g.r * g.s + g.k_per_group() * g.r * g.s +
                          g.n * g.p * g.q + g.x_shape().numel() + g.w_shape().numel() +
                          g.y_shape().numel());
  PROPS_CHECK(near("<conv2d(x,w), g> = <x, conv2d_backward_data(g,w)>", y_g, x_dx, g50(m) * s));
  PROPS_CHECK(near("<conv2d(x,w), g> = <w, conv2d_backward_weights(x,g)>", y_g, w_dw, g50(m) * s));
  // bias: conv(x, w, b) - conv(x, w) = b broadcast, exactly up to rounding of the sums.
  Conv2dGeom gb = g;
  gb.has_bias = true;
  const T50 yb = ref::conv2d_forward(gb, x, w, &b);
  const T50 y0 = ref::conv2d_forward(g, x, w, nullptr);
  const T50 db = ref::conv2d_backward_bias(gb, gy);
  const T50 ab = abs50(b);
  const f50 sb = s + dot(ref::conv2d_forward(gb, abs50(x), abs50(w), &ab), abs50(gy));
  PROPS_CHECK(near("<conv2d(x,w,b) - conv2d(x,w), g> = <b, conv2d_backward_bias(g)>",
                   dot(axpby(1, yb, -1, y0), gy), dot(b, db), g50(m) * sb));
}

// A 1x1 convolution (stride 1, no padding, groups 1) is linear() over the channels of every
// pixel: y[n,:,p,q] = linear(x[n,:,p,q], w[:,:,0,0], b).
// Catches: a conv that mixes pixels or transposes K and C. Tolerance gamma_f50(C+1) * sum|terms|.
RC_GTEST_PROP(Conv2dLaws, oneByOneConvIsLinearOverChannels, ()) {
  const index_t n = *rc::gen::inRange<index_t>(1, 3), ch = *rc::gen::inRange<index_t>(1, 5);
  const index_t k = *rc::gen::inRange<index_t>(1, 5), h = *rc::gen::inRange<index_t>(1, 5);
  const index_t wd = *rc::gen::inRange<index_t>(1, 5);
  const bool has_bias = *rc::gen::arbitrary<bool>();
  const Values v = *gen_values();
  const Shape bs{k};
  const Conv2dGeom g = make_conv2d_geom(Shape{n, ch, h, wd}, Shape{k, ch, 1, 1},
                                        has_bias ? &bs : nullptr, Conv2dParams{});
  const T50 x = make_tensor(g.x_shape(), v, 1).cast<f50>();
  const T50 w = make_tensor(g.w_shape(), v, 2).cast<f50>();
  const T50 b = make_tensor(bs, v, 3).cast<f50>();
  const T50 y = ref::conv2d_forward(g, x, w, has_bias ? &b : nullptr);
  // rows of xm: the pixels (n, p, q); columns: the channels
  T50 xm(Shape{n * h * wd, ch});
  for (index_t i = 0; i < n; ++i)
    for (index_t c = 0; c < ch; ++c)
      for (index_t p = 0; p < h; ++p)
        for (index_t q = 0; q < wd; ++q) xm((i * h + p) * wd + q, c) = x(i, c, p, q);
  const T50 wm = w.reshaped(Shape{k, ch});
  const LinearGeom lg = make_linear_geom(xm.shape(), wm.shape(), has_bias ? &bs : nullptr);
  const T50 ym = ref::linear_forward(lg, xm, wm, has_bias ? &b : nullptr);
  LinearGeom lg_nobias = lg;  // the magnitudes' sum has no bias term (added below)
  lg_nobias.has_bias = false;
  const T50 mass = ref::linear_forward(lg_nobias, abs50(xm), abs50(wm), nullptr);
  T50 got(Shape{n * h * wd, k}), tol(got.shape());
  for (index_t i = 0; i < n; ++i)
    for (index_t o = 0; o < k; ++o)
      for (index_t p = 0; p < h; ++p)
        for (index_t q = 0; q < wd; ++q) {
          const index_t row = (i * h + p) * wd + q;
          got(row, o) = y(i, o, p, q);
          tol(row, o) = g50(double(ch + 2)) * (mass(row, o) + (has_bias ? abs(b[o]) : f50(0)));
        }
  PROPS_CHECK(judge("1x1 conv2d vs linear over channels (" + g.descriptor() + ")", got, ym, tol));
}

// ---------------------------------------------------------------- linear
// <linear(x, w), g> = <x, dx(g)> = <w, dw(x, g)>; <b, db(g)> = <b broadcast, g>.
RC_GTEST_PROP(LinearLaws, adjointIdentityHoldsInFiftyDigits, ()) {
  const LinearCase c = *gen_linear_case();
  LinearGeom g = c.g;
  g.has_bias = false;
  const T50 x = c.x.cast<f50>(), w = c.w.cast<f50>(), gy = c.gy.cast<f50>(), b = c.b.cast<f50>();
  const f50 y_g = dot(ref::linear_forward(g, x, w, nullptr), gy);
  const f50 s = dot(ref::linear_forward(g, abs50(x), abs50(w), nullptr), abs50(gy));
  const double m = double(g.in + g.out + g.n + g.n * (g.in + g.out) + g.in * g.out);
  PROPS_CHECK(near("<linear(x,w), g> = <x, linear_backward_data(g,w)>", y_g,
                   dot(x, ref::linear_backward_data(g, gy, w)), g50(m) * s));
  PROPS_CHECK(near("<linear(x,w), g> = <w, linear_backward_weights(x,g)>", y_g,
                   dot(w, ref::linear_backward_weights(g, x, gy)), g50(m) * s));
  LinearGeom gb = g;
  gb.has_bias = true;
  const T50 diff = axpby(1, ref::linear_forward(gb, x, w, &b), -1, ref::linear_forward(g, x, w, nullptr));
  const T50 ab = abs50(b);
  const f50 sb = s + dot(ref::linear_forward(gb, abs50(x), abs50(w), &ab), abs50(gy));
  PROPS_CHECK(near("<linear(x,w,b) - linear(x,w), g> = <b, linear_backward_bias(g)>", dot(diff, gy),
                   dot(b, ref::linear_backward_bias(gb, gy)), g50(m) * sb));
}

// ---------------------------------------------------------------- pooling
// <avg_pool(x), g> = <x, avg_pool_backward(g)>.  Catches a backward that spreads dy over the
// wrong window (padding or stride off) or divides by the wrong count.
RC_GTEST_PROP(AvgPool2dLaws, adjointIdentityHoldsInFiftyDigits, ()) {
  const PoolCase c = *gen_pool_case();
  classify_pool(c);
  const T50 x = c.x.cast<f50>(), gy = c.gy.cast<f50>();
  const f50 lhs = dot(ref::avg_pool2d_forward(c.g, x), gy);
  const f50 rhs = dot(x, ref::avg_pool2d_backward(c.g, gy));
  const f50 s = dot(ref::avg_pool2d_forward(c.g, abs50(x)), abs50(gy));
  const double m = double(2 * c.g.prm.kernel[0] * c.g.prm.kernel[1] + 2 +
                          c.g.x_shape().numel() + c.g.y_shape().numel());
  PROPS_CHECK(near("<avg_pool2d(x), g> = <x, avg_pool2d_backward(g)>", lhs, rhs, g50(m) * s));
}

// avg_pool2d(x) = conv2d(x, w) with groups = C (depthwise), w = 1/(kh*kw) everywhere, same
// stride and padding (count_include_pad: padded zeros count). Catches a pool whose window or
// divisor differs from the conv's definition. Tolerance gamma_f50(kh*kw + 3) * avg_pool(|x|).
RC_GTEST_PROP(AvgPool2dLaws, equalsDepthwiseConvWithConstantKernel, ()) {
  const PoolCase c = *gen_pool_case();
  classify_pool(c);
  const Pool2dGeom& pg = c.g;
  Conv2dParams prm;
  prm.stride = pg.prm.stride;
  prm.pad = pg.prm.pad;
  prm.groups = pg.c;
  const Conv2dGeom cg = make_conv2d_geom(pg.x_shape(),
                                         Shape{pg.c, 1, pg.prm.kernel[0], pg.prm.kernel[1]},
                                         nullptr, prm);
  const T50 w(cg.w_shape(), f50(1) / f50(pg.prm.kernel[0] * pg.prm.kernel[1]));
  const T50 x = c.x.cast<f50>();
  PROPS_CHECK(judge("avg_pool2d vs depthwise conv2d with weights 1/(kh*kw) (" + cg.descriptor() + ")",
                    ref::avg_pool2d_forward(pg, x), ref::conv2d_forward(cg, x, w, nullptr),
                    reduction_tol<f50>(ref::avg_pool2d_forward(pg, abs50(x)),
                                       pg.prm.kernel[0] * pg.prm.kernel[1] + 3)));
}

// Max pooling picks an element of its window that no other in-bounds element exceeds, and its
// backward routes every dy to exactly one input: sum(dx) = sum(dy) (f50, gamma(M) * sum|dy|).
RC_GTEST_PROP(MaxPool2dLaws, picksTheWindowMaximumAndRoutesEveryGradientOnce, ()) {
  const PoolCase c = *gen_pool_case();
  classify_pool(c);
  const Pool2dGeom& g = c.g;
  const Tensor<double> y = ref::max_pool2d_forward(g, c.x);
  for (index_t n = 0; n < g.n; ++n)
    for (index_t ch = 0; ch < g.c; ++ch)
      for (index_t p = 0; p < g.p; ++p)
        for (index_t q = 0; q < g.q; ++q) {
          bool found = false;
          for (index_t i = 0; i < g.prm.kernel[0]; ++i)
            for (index_t j = 0; j < g.prm.kernel[1]; ++j) {
              const index_t h = p * g.prm.stride[0] - g.prm.pad[0] + i;
              const index_t w = q * g.prm.stride[1] - g.prm.pad[1] + j;
              if (h < 0 || h >= g.h || w < 0 || w >= g.w) continue;
              RC_ASSERT(c.x(n, ch, h, w) <= y(n, ch, p, q));
              found = found || c.x(n, ch, h, w) == y(n, ch, p, q);
            }
          RC_ASSERT(found);
        }
  const T50 gy = c.gy.cast<f50>();
  const T50 dx = ref::max_pool2d_backward(g, c.x.cast<f50>(), gy);
  f50 sdx = 0, sdy = 0, mass = 0;
  for (const f50& v : dx) sdx += v;
  for (const f50& v : gy) sdy += v, mass += abs(v);
  PROPS_CHECK(near("sum(max_pool2d_backward(x, g)) = sum(g)", sdx, sdy,
                   g50(double(dx.numel() + gy.numel() + g.prm.kernel[0] * g.prm.kernel[1])) * mass));
}

// ---------------------------------------------------------------- softmax family
// With m = max_c x_c, A = max_c |x_c - m|: exp(x_c - m) in f50 errs relatively by
// gamma(2) + u A (the rounding of x_c - m, amplified by exp), so
//   |sum_c softmax_c - 1| <= gamma_f50(2C + 10) (1 + A)
//   |log_softmax_c - log(softmax_c)| <= gamma_f50(2C + 10) (1 + A + |log_softmax_c|)
//   |cross_entropy - (-mean_n log_softmax[n, t_n])| <= gamma_f50(2C + N + 10) mean_n (1 + A_n + |ls|)
// Catches: a softmax not normalised, normalised over the wrong dimension, a log_softmax or a
// cross_entropy that is not the log of the softmax at the target.
RC_GTEST_PROP(SoftmaxLaws, rowsSumToOneAndLogSoftmaxIsItsLog, ()) {
  const ActCase a = *gen_act_case(11);
  const T50 x = a.x.cast<f50>();
  const T50 sm = ref::softmax_forward(x), ls = ref::log_softmax_forward(x);
  const ref::detail::Dim1View v(x.shape());
  for (index_t o = 0; o < v.outer; ++o)
    for (index_t i = 0; i < v.inner; ++i) {
      f50 m = x[v.at(o, 0, i)], lo = m;
      for (index_t c = 1; c < v.c; ++c) {
        if (x[v.at(o, c, i)] > m) m = x[v.at(o, c, i)];
        if (x[v.at(o, c, i)] < lo) lo = x[v.at(o, c, i)];
      }
      const f50 spread = m - lo;
      const f50 gam = g50(double(2 * v.c + 10));
      f50 s = 0;
      for (index_t c = 0; c < v.c; ++c) {
        RC_ASSERT(sm[v.at(o, c, i)] >= 0);
        s += sm[v.at(o, c, i)];
        PROPS_CHECK(near("log_softmax = log(softmax)", ls[v.at(o, c, i)],
                         f50(log(sm[v.at(o, c, i)])),
                         gam * (1 + spread + abs(ls[v.at(o, c, i)]))));
      }
      PROPS_CHECK(near("sum over dim 1 of softmax = 1", s, f50(1), gam * (1 + spread)));
    }
  RC_CLASSIFY(a.values.scale > 6, "large logits");
  RC_CLASSIFY(a.shape.rank() > 2, "rank>2");
}

RC_GTEST_PROP(CrossEntropyLaws, isMinusMeanLogSoftmaxAtTheTargets, ()) {
  const LossCase c = *gen_loss_case();
  const T50 x = c.logits.cast<f50>();
  const T50 ls = ref::log_softmax_forward(x);
  f50 expect = 0, mass = 0;
  for (index_t n = 0; n < c.n; ++n) {
    f50 m = x(n, 0), lo = m;
    for (index_t k = 1; k < c.c; ++k) {
      if (x(n, k) > m) m = x(n, k);
      if (x(n, k) < lo) lo = x(n, k);
    }
    const f50 l = ls(n, c.labels[static_cast<std::size_t>(n)]);
    expect -= l;
    mass += 1 + (m - lo) + abs(l) + abs(m);
  }
  expect /= f50(c.n);
  mass /= f50(c.n);
  const f50 got = ref::cross_entropy_forward(x, c.labels)[0];
  PROPS_CHECK(near("cross_entropy = -mean(log_softmax[target])", got, expect,
                   g50(double(2 * c.c + c.n + 10)) * mass));
  RC_CLASSIFY(c.values.scale > 6, "large logits");
}

// flatten -> (N, prod rest) keeps every element in place, and its backward restores the shape:
// both exact (no arithmetic at all).
RC_GTEST_PROP(FlattenLaws, roundTripsExactly, ()) {
  const ActCase a = *gen_act_case();
  const Tensor<double> y = ref::flatten_forward(a.x);
  RC_ASSERT(y.shape() == (Shape{a.shape[0], a.shape.numel() / a.shape[0]}));
  RC_ASSERT(y.vec() == a.x.vec());
  const Tensor<double> back = ref::flatten_backward(a.shape, y);
  RC_ASSERT(back.shape() == a.shape);
  RC_ASSERT(back.vec() == a.x.vec());
}

// ---------------------------------------------------------------- rejection
// Every invalid configuration throws at the entry point -- the geometry maker, the op (before
// anything is recorded) and the hand-written layer -- never UB. Generated by breaking ONE thing
// in an otherwise valid case, so the error is that thing's.
enum class ConvBreak {
  zero_stride, negative_pad, zero_dilation, zero_groups, groups_not_dividing_c,
  w_channels_mismatch, kernel_too_big, bias_wrong_shape, x_rank_3, empty_batch, count
};
const char* conv_break_name(ConvBreak b) {
  static const char* names[] = {"zero stride", "negative pad", "zero dilation", "zero groups",
                                "groups not dividing C", "w channels mismatch",
                                "kernel larger than padded input", "bias wrong shape",
                                "x rank 3", "empty batch"};
  return names[static_cast<int>(b)];
}

RC_GTEST_PROP(Conv2dConfig, invalidConfigurationIsRejectedEverywhere, ()) {
  const Conv2dCase c = *gen_conv2d_case();
  const auto brk = static_cast<ConvBreak>(*rc::gen::inRange(0, static_cast<int>(ConvBreak::count)));
  RC_TAG(conv_break_name(brk));
  Conv2dParams prm = c.g.prm;
  std::vector<index_t> xs = c.g.x_shape().dims(), ws = c.g.w_shape().dims();
  std::vector<index_t> bs{c.g.k};
  const int axis = *rc::gen::inRange(0, 2);
  switch (brk) {
    case ConvBreak::zero_stride: prm.stride[axis] = *rc::gen::inRange<index_t>(-2, 1); break;
    case ConvBreak::negative_pad: prm.pad[axis] = *rc::gen::inRange<index_t>(-3, 0); break;
    case ConvBreak::zero_dilation: prm.dilation[axis] = *rc::gen::inRange<index_t>(-1, 1); break;
    case ConvBreak::zero_groups: prm.groups = 0; break;
    case ConvBreak::groups_not_dividing_c:
      // C+1 never divides C; keep w consistent with "C/groups" as the caller might compute it
      prm.groups = xs[1] + 1;
      break;
    case ConvBreak::w_channels_mismatch: ws[1] += *rc::gen::inRange<index_t>(1, 3); break;
    case ConvBreak::kernel_too_big: {
      // dilated span = padded input + 1
      const index_t padded = (axis ? xs[3] : xs[2]) + 2 * prm.pad[axis];
      prm.dilation[axis] = 1;
      ws[static_cast<std::size_t>(2 + axis)] = padded + 1;
      break;
    }
    case ConvBreak::bias_wrong_shape: bs[0] += 1; break;
    case ConvBreak::x_rank_3: xs.pop_back(); break;
    case ConvBreak::empty_batch: xs[0] = 0; break;
    case ConvBreak::count: break;
  }
  const bool with_bias = c.g.has_bias || brk == ConvBreak::bias_wrong_shape;
  const Shape x_shape(xs), w_shape(ws), b_shape(bs);
  RC_ASSERT_THROWS_AS(make_conv2d_geom(x_shape, w_shape, with_bias ? &b_shape : nullptr, prm),
                      std::invalid_argument);
  Tape<double> tape;
  const auto x = tape.leaf(Tensor<double>(x_shape)), w = tape.leaf(Tensor<double>(w_shape));
  const auto b = tape.leaf(Tensor<double>(b_shape));
  const std::size_t values_before = tape.num_values();
  RC_ASSERT_THROWS_AS(ops::conv2d(x, w, with_bias ? ops::Opt<double>(b) : std::nullopt, prm),
                      std::invalid_argument);
  RC_ASSERT(tape.num_values() == values_before);  // nothing recorded
  RC_ASSERT(tape.num_records() == 0u);
  if (w_shape.rank() == 4) {
    layers::Conv2d<double> layer("conv", Tensor<double>(w_shape),
                                 with_bias ? std::optional<Tensor<double>>(Tensor<double>(b_shape))
                                           : std::nullopt,
                                 prm);
    RC_ASSERT_THROWS_AS(layer.forward(Tensor<double>(x_shape)), std::invalid_argument);
  }
}

RC_GTEST_PROP(Pool2dConfig, invalidConfigurationIsRejectedEverywhere, ()) {
  const PoolCase c = *gen_pool_case();
  Pool2dParams prm = c.g.prm;
  std::vector<index_t> xs = c.g.x_shape().dims();
  const int axis = *rc::gen::inRange(0, 2);
  const int what = *rc::gen::inRange(0, 5);
  const index_t in = axis ? xs[3] : xs[2];
  switch (what) {
    case 0: RC_TAG("zero kernel"); prm.kernel[axis] = 0; prm.pad[axis] = 0; break;
    case 1: RC_TAG("zero stride"); prm.stride[axis] = 0; break;
    case 2: RC_TAG("pad above kernel/2"); prm.pad[axis] = prm.kernel[axis] / 2 + 1; break;
    case 3:
      RC_TAG("kernel larger than padded input");
      prm.pad[axis] = 0;
      prm.kernel[axis] = in + 1;
      break;
    default: RC_TAG("x rank 3"); xs.pop_back(); break;
  }
  const Shape x_shape(xs);
  RC_ASSERT_THROWS_AS(make_pool2d_geom(x_shape, prm, "max_pool2d"), std::invalid_argument);
  Tape<double> tape;
  const auto x = tape.leaf(Tensor<double>(x_shape));
  RC_ASSERT_THROWS_AS(ops::max_pool2d(x, prm), std::invalid_argument);
  RC_ASSERT_THROWS_AS(ops::avg_pool2d(x, prm), std::invalid_argument);
  RC_ASSERT(tape.num_values() == 1u);
  layers::MaxPool2d<double> mp(prm);
  layers::AvgPool2d<double> ap(prm);
  RC_ASSERT_THROWS_AS(mp.forward(Tensor<double>(x_shape)), std::invalid_argument);
  RC_ASSERT_THROWS_AS(ap.forward(Tensor<double>(x_shape)), std::invalid_argument);
}

RC_GTEST_PROP(LinearAndLossConfig, invalidInputsAreRejected, ()) {
  const LinearCase c = *gen_linear_case();
  const index_t extra = *rc::gen::inRange<index_t>(1, 3);
  Tape<double> tape;
  const auto x = tape.leaf(Tensor<double>(Shape{c.g.n, c.g.in}));
  const auto w_bad = tape.leaf(Tensor<double>(Shape{c.g.out, c.g.in + extra}));
  const auto w = tape.leaf(Tensor<double>(Shape{c.g.out, c.g.in}));
  const auto b_bad = tape.leaf(Tensor<double>(Shape{c.g.out + extra}));
  RC_ASSERT_THROWS_AS(ops::linear(x, w_bad, std::nullopt), std::invalid_argument);
  RC_ASSERT_THROWS_AS(ops::linear(x, w, ops::Opt<double>(b_bad)), std::invalid_argument);
  // cross_entropy: a label outside [0, C) is out_of_range; a wrong label count invalid
  const index_t bad_label = *rc::gen::element<index_t>(-1, c.g.in, c.g.in + 5);
  std::vector<index_t> labels(static_cast<std::size_t>(c.g.n), 0);
  labels[static_cast<std::size_t>(*rc::gen::inRange<index_t>(0, c.g.n))] = bad_label;
  RC_ASSERT_THROWS_AS(ops::cross_entropy(x, labels), std::out_of_range);
  labels.assign(static_cast<std::size_t>(c.g.n + extra), 0);
  RC_ASSERT_THROWS_AS(ops::cross_entropy(x, labels), std::invalid_argument);
  // mse: target of another shape; softmax: rank 1
  const auto t_bad = tape.constant(Tensor<double>(Shape{c.g.n, c.g.in + extra}));
  RC_ASSERT_THROWS_AS(ops::mse_loss(x, t_bad), std::invalid_argument);
  const auto v1 = tape.leaf(Tensor<double>(Shape{c.g.in}));
  RC_ASSERT_THROWS_AS(ops::softmax(v1), std::invalid_argument);
  RC_ASSERT_THROWS_AS(ops::log_softmax(v1), std::invalid_argument);
  RC_ASSERT(tape.num_records() == 0u);
}

}  // namespace
}  // namespace tapegrad::props
