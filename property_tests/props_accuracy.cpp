// Forward (and backward-kernel) accuracy: every op computed in T (float, double) through the
// reference kernels AND through the dispatch kernels (what the op tape and the layers call)
// is within its derived error bound of the same op on the same inputs in 50 digits.
//
// Bounds, per element (u = unit roundoff of T, gamma(n) = n u / (1 - n u); Higham eq. 3.5 for
// reductions, "a libm call counts 2 roundings" as in gradcheck/tolerance.hpp):
//   conv2d  y:  gamma(Cg*R*S + 1) * (conv(|x|, |w|) + |b|)
//           dx: gamma(K/G*R*S) * conv_backward_data(|gy|, |w|);  dw: gamma(N*P*Q) * ...(|x|,|gy|)
//           db: gamma(N*P*Q) * sum |gy|
//   linear  likewise with in, out, N
//   avg_pool2d  gamma(kh*kw + 1) * avg_pool(|x|);   max_pool2d, relu: exact
//   sigmoid gamma(5) |y| (exp, +, /);   tanh gamma(3) |y|
//   softmax gamma(C + 6) y_c (1 + |x_c - m| + sum_j y_j |x_j - m|): the rounding of x - m is
//           amplified by exp (relative error u |x - m|), the normaliser sums C such terms
//   log_softmax gamma(C + 6) (1 + |x_c - m| + sum_j p_j |x_j - m| + 2 |lse| + |y_c|)
//   mse_loss gamma(M + 4) * loss;  cross_entropy gamma(C + N + 8) mean_n (1 + |m_n| + |lse_n|
//           + |x_{n,t}| + max_c |x_{n,c} - m_n|)
// Catches: a kernel that is wrong only in low precision (an accumulator of the wrong type, a
// float constant), an unstable formula (softmax without the max subtracted overflows at the
// 2^11 logits the generator produces; sigmoid via exp(-x) for x << 0), a dispatch to a fast
// kernel that is off.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "cases.hpp"
#include "tapegrad/kernels/activation.hpp"
#include "tapegrad/kernels/conv2d.hpp"
#include "tapegrad/kernels/linear.hpp"
#include "tapegrad/kernels/loss.hpp"
#include "tapegrad/kernels/pool.hpp"

namespace tapegrad::props {
namespace {

using T50 = Tensor<f50>;

template <class T>
T50 up(const Tensor<T>& t) {
  return t.template cast<f50>();
}

// Judges the same op through ref:: and kernels:: in T.
template <class T>
std::string judge_both(const std::string& what, const Tensor<T>& by_ref, const Tensor<T>& by_dispatch,
                       const T50& exact, const T50& tol) {
  const std::string name = what + " in " + ScalarTraits<T>::name;
  PROPS_RETURN_IF(judge(name + " (ref::)", up(by_ref), exact, tol));
  return judge(name + " (kernels::)", up(by_dispatch), exact, tol);
}

template <class T>
void conv2d_is_accurate() {
  const Conv2dCase c = *gen_conv2d_case();
  classify_conv(c);
  const Conv2dGeom& g = c.g;
  const Tensor<T> x = to<T>(c.x), w = to<T>(c.w), b = to<T>(c.b), gy = to<T>(c.gy);
  const T50 x5 = up(x), w5 = up(w), b5 = up(b), gy5 = up(gy);
  const Tensor<T>* bp = g.has_bias ? &b : nullptr;
  const T50* bp5 = g.has_bias ? &b5 : nullptr;
  const T50 ab5 = abs50(b5);
  PROPS_CHECK(judge_both<T>("conv2d_forward " + c.descriptor(), ref::conv2d_forward(g, x, w, bp),
                            kernels::conv2d_forward(g, x, w, bp),
                            ref::conv2d_forward(g, x5, w5, bp5),
                            reduction_tol<T>(ref::conv2d_forward(g, abs50(x5), abs50(w5),
                                                                 g.has_bias ? &ab5 : nullptr),
                                             g.c_per_group() * g.r * g.s + 1)));
  PROPS_CHECK(judge_both<T>("conv2d_backward_data " + c.descriptor(),
                            ref::conv2d_backward_data(g, gy, w), kernels::conv2d_backward_data(g, gy, w),
                            ref::conv2d_backward_data(g, gy5, w5),
                            reduction_tol<T>(ref::conv2d_backward_data(g, abs50(gy5), abs50(w5)),
                                             g.k_per_group() * g.r * g.s)));
  PROPS_CHECK(judge_both<T>("conv2d_backward_weights " + c.descriptor(),
                            ref::conv2d_backward_weights(g, x, gy),
                            kernels::conv2d_backward_weights(g, x, gy),
                            ref::conv2d_backward_weights(g, x5, gy5),
                            reduction_tol<T>(ref::conv2d_backward_weights(g, abs50(x5), abs50(gy5)),
                                             g.n * g.p * g.q)));
  if (g.has_bias)
    PROPS_CHECK(judge_both<T>("conv2d_backward_bias " + c.descriptor(), ref::conv2d_backward_bias(g, gy),
                              kernels::conv2d_backward_bias(g, gy), ref::conv2d_backward_bias(g, gy5),
                              reduction_tol<T>(ref::conv2d_backward_bias(g, abs50(gy5)),
                                               g.n * g.p * g.q)));
}

RC_GTEST_PROP(Conv2dAccuracy, withinDerivedBoundOfFiftyDigitsInDouble, ()) { conv2d_is_accurate<double>(); }
RC_GTEST_PROP(Conv2dAccuracy, withinDerivedBoundOfFiftyDigitsInFloat, ()) { conv2d_is_accurate<float>(); }

template <class T>
void linear_is_accurate() {
  const LinearCase c = *gen_linear_case();
  const LinearGeom& g = c.g;
  const Tensor<T> x = to<T>(c.x), w = to<T>(c.w), b = to<T>(c.b), gy = to<T>(c.gy);
  const T50 x5 = up(x), w5 = up(w), b5 = up(b), gy5 = up(gy), ab5 = abs50(b5);
  const Tensor<T>* bp = g.has_bias ? &b : nullptr;
  const T50* bp5 = g.has_bias ? &b5 : nullptr;
  const std::string d = g.descriptor();
  PROPS_CHECK(judge_both<T>("linear_forward " + d, ref::linear_forward(g, x, w, bp),
                            kernels::linear_forward(g, x, w, bp), ref::linear_forward(g, x5, w5, bp5),
                            reduction_tol<T>(ref::linear_forward(g, abs50(x5), abs50(w5),
                                                                 g.has_bias ? &ab5 : nullptr),
                                             g.in + 1)));
  PROPS_CHECK(judge_both<T>("linear_backward_data " + d, ref::linear_backward_data(g, gy, w),
                            kernels::linear_backward_data(g, gy, w), ref::linear_backward_data(g, gy5, w5),
                            reduction_tol<T>(ref::linear_backward_data(g, abs50(gy5), abs50(w5)), g.out)));
  PROPS_CHECK(judge_both<T>("linear_backward_weights " + d, ref::linear_backward_weights(g, x, gy),
                            kernels::linear_backward_weights(g, x, gy),
                            ref::linear_backward_weights(g, x5, gy5),
                            reduction_tol<T>(ref::linear_backward_weights(g, abs50(x5), abs50(gy5)), g.n)));
  if (g.has_bias)
    PROPS_CHECK(judge_both<T>("linear_backward_bias " + d, ref::linear_backward_bias(g, gy),
                              kernels::linear_backward_bias(g, gy), ref::linear_backward_bias(g, gy5),
                              reduction_tol<T>(ref::linear_backward_bias(g, abs50(gy5)), g.n)));
}

RC_GTEST_PROP(LinearAccuracy, withinDerivedBoundOfFiftyDigitsInDouble, ()) { linear_is_accurate<double>(); }
RC_GTEST_PROP(LinearAccuracy, withinDerivedBoundOfFiftyDigitsInFloat, ()) { linear_is_accurate<float>(); }

template <class T>
void pools_are_accurate() {
  const PoolCase c = *gen_pool_case();
  classify_pool(c);
  const Pool2dGeom& g = c.g;
  const Tensor<T> x = to<T>(c.x), gy = to<T>(c.gy);
  const T50 x5 = up(x), gy5 = up(gy);
  const index_t area = g.prm.kernel[0] * g.prm.kernel[1];
  const std::string d = g.descriptor();
  const T50 zero(g.y_shape());
  PROPS_CHECK(judge_both<T>("max_pool2d_forward " + d, ref::max_pool2d_forward(g, x),
                            kernels::max_pool2d_forward(g, x), ref::max_pool2d_forward(g, x5), zero));
  PROPS_CHECK(judge_both<T>("max_pool2d_backward " + d, ref::max_pool2d_backward(g, x, gy),
                            kernels::max_pool2d_backward(g, x, gy),
                            ref::max_pool2d_backward(g, x5, gy5),
                            reduction_tol<T>(ref::max_pool2d_backward(g, x5, abs50(gy5)), area)));
  PROPS_CHECK(judge_both<T>("avg_pool2d_forward " + d, ref::avg_pool2d_forward(g, x),
                            kernels::avg_pool2d_forward(g, x), ref::avg_pool2d_forward(g, x5),
                            reduction_tol<T>(ref::avg_pool2d_forward(g, abs50(x5)), area + 1)));
  PROPS_CHECK(judge_both<T>("avg_pool2d_backward " + d, ref::avg_pool2d_backward(g, gy),
                            kernels::avg_pool2d_backward(g, gy), ref::avg_pool2d_backward(g, gy5),
                            reduction_tol<T>(ref::avg_pool2d_backward(g, abs50(gy5)), area + 1)));
}

RC_GTEST_PROP(Pool2dAccuracy, withinDerivedBoundOfFiftyDigitsInDouble, ()) { pools_are_accurate<double>(); }
RC_GTEST_PROP(Pool2dAccuracy, withinDerivedBoundOfFiftyDigitsInFloat, ()) { pools_are_accurate<float>(); }

template <class T>
void activations_are_accurate() {
  const ActCase c = *gen_act_case(11);
  const Tensor<T> x = to<T>(c.x);
  const T50 x5 = up(x);
  const std::string d = "x" + c.shape.str();
  PROPS_CHECK(judge_both<T>("relu_forward " + d, ref::relu_forward(x), kernels::relu_forward(x),
                            ref::relu_forward(x5), T50(c.shape)));
  const T50 ys = ref::sigmoid_forward(x5), yt = ref::tanh_forward(x5);
  PROPS_CHECK(judge_both<T>("sigmoid_forward " + d, ref::sigmoid_forward(x), kernels::sigmoid_forward(x),
                            ys, reduction_tol<T>(abs50(ys), 5)));
  PROPS_CHECK(judge_both<T>("tanh_forward " + d, ref::tanh_forward(x), kernels::tanh_forward(x), yt,
                            reduction_tol<T>(abs50(yt), 3)));
  // softmax / log_softmax: weights as in the header comment
  const T50 p = ref::softmax_forward(x5), ls = ref::log_softmax_forward(x5);
  const ref::detail::Dim1View v(c.shape);
  T50 wsm(c.shape), wls(c.shape);
  for (index_t o = 0; o < v.outer; ++o)
    for (index_t i = 0; i < v.inner; ++i) {
      f50 m = x5[v.at(o, 0, i)];
      for (index_t ch = 1; ch < v.c; ++ch)
        if (x5[v.at(o, ch, i)] > m) m = x5[v.at(o, ch, i)];
      f50 spread = 0;
      for (index_t ch = 0; ch < v.c; ++ch) spread += p[v.at(o, ch, i)] * (m - x5[v.at(o, ch, i)]);
      const f50 lse = x5[v.at(o, 0, i)] - m - ls[v.at(o, 0, i)];
      for (index_t ch = 0; ch < v.c; ++ch) {
        const index_t at = v.at(o, ch, i);
        const f50 a = 1 + (m - x5[at]) + spread;
        wsm[at] = p[at] * a;
        wls[at] = a + 2 * abs(lse) + abs(ls[at]);
      }
    }
  PROPS_CHECK(judge_both<T>("softmax_forward " + d, ref::softmax_forward(x), kernels::softmax_forward(x),
                            p, reduction_tol<T>(wsm, c.shape[1] + 6)));
  PROPS_CHECK(judge_both<T>("log_softmax_forward " + d, ref::log_softmax_forward(x),
                            kernels::log_softmax_forward(x), ls, reduction_tol<T>(wls, c.shape[1] + 6)));
  RC_CLASSIFY(c.values.scale > 6, "large magnitudes");
}

RC_GTEST_PROP(ActivationAccuracy, withinDerivedBoundOfFiftyDigitsInDouble, ()) { activations_are_accurate<double>(); }
RC_GTEST_PROP(ActivationAccuracy, withinDerivedBoundOfFiftyDigitsInFloat, ()) { activations_are_accurate<float>(); }

template <class T>
void losses_are_accurate() {
  const LossCase c = *gen_loss_case();
  const Tensor<T> x = to<T>(c.logits), t = to<T>(c.target);
  const T50 x5 = up(x), t5 = up(t);
  const T50 mse5 = ref::mse_loss_forward(x5, t5);
  PROPS_CHECK(judge_both<T>("mse_loss_forward", ref::mse_loss_forward(x, t), kernels::mse_loss_forward(x, t, x.numel()),
                            mse5, reduction_tol<T>(mse5, x.numel() + 4)));
  const T50 ls = ref::log_softmax_forward(x5);
  f50 mass = 0;
  for (index_t n = 0; n < c.n; ++n) {
    f50 m = x5(n, 0), lo = m;
    for (index_t k = 1; k < c.c; ++k) {
      if (x5(n, k) > m) m = x5(n, k);
      if (x5(n, k) < lo) lo = x5(n, k);
    }
    const f50 lse = x5(n, 0) - m - ls(n, 0);
    mass += 1 + abs(m) + abs(lse) + abs(x5(n, c.labels[static_cast<std::size_t>(n)])) + (m - lo);
  }
  const T50 w = T50::scalar(mass / f50(c.n));
  PROPS_CHECK(judge_both<T>("cross_entropy_forward", ref::cross_entropy_forward(x, c.labels),
                            kernels::cross_entropy_forward(x, c.labels, c.n),
                            ref::cross_entropy_forward(x5, c.labels),
                            reduction_tol<T>(w, c.c + c.n + 8)));
  RC_CLASSIFY(c.values.scale > 6, "large logits");
}

RC_GTEST_PROP(LossAccuracy, withinDerivedBoundOfFiftyDigitsInDouble, ()) { losses_are_accurate<double>(); }
RC_GTEST_PROP(LossAccuracy, withinDerivedBoundOfFiftyDigitsInFloat, ()) { losses_are_accurate<float>(); }

}  // namespace
}  // namespace tapegrad::props
