// Four-way gradient agreement for every op (see four_way.hpp for the ways and the tolerance
// model), in double and in float. One template body per op, registered once per scalar type
// (Debian's RapidCheck has no typed properties).
//
// What these catch: any VJP of the op tape (kernels::*_backward_*) or of a hand-written layer
// that differs from the derivative of the reference forward by more than rounding -- padding
// off by one, stride or dilation ignored in a backward pass, a group offset wrong, a missing
// bias gradient, a wrong sign, a wrong activation derivative, a wrong softmax normalisation;
// and, through the finite differences in f50, a scalar tape (Var<T>) that differentiates wrong.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <optional>
#include <vector>

#include "cases.hpp"
#include "four_way.hpp"
#include "tapegrad/kernels/activation_ref.hpp"
#include "tapegrad/kernels/conv2d_exact.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/kernels/linear_exact.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/kernels/loss_ref.hpp"
#include "tapegrad/kernels/pool_exact.hpp"
#include "tapegrad/kernels/pool_ref.hpp"
#include "tapegrad/layers/layers.hpp"
#include "tapegrad/ops/ops.hpp"

namespace tapegrad::props {
namespace {

// FD elements per input tensor: enough to check the reference at a few places per case, cheap
// enough in f50 (each costs 4 forward passes).
constexpr index_t fd_per_tensor = 5;

template <class T>
using Grads = std::vector<Tensor<T>>;

// ---------------------------------------------------------------- conv2d
template <class T>
void conv2d_four_ways_agree() {
  const Conv2dCase c = *gen_conv2d_case();
  classify_conv(c);
  const Conv2dGeom g = c.g;
  std::vector<std::string> names{"x", "w"};
  std::vector<Tensor<double>> in{c.x, c.w};
  if (g.has_bias) names.push_back("b"), in.push_back(c.b);
  auto f = [g](const auto& v) { return ref::conv2d_forward(g, v[0], v[1], g.has_bias ? &v[2] : nullptr); };
  auto op_tape = [g](const Grads<T>& v, const Tensor<T>& gy) {
    return op_tape_vjp<T>([&](const std::vector<TapeTensor<T>>& L) {
      return ops::conv2d(L[0], L[1], g.has_bias ? ops::Opt<T>(L[2]) : std::nullopt, g.prm);
    }, v, gy);
  };
  auto hand = [g](const Grads<T>& v, const Tensor<T>& gy) -> std::optional<Grads<T>> {
    layers::Conv2d<T> layer("conv", v[1], g.has_bias ? std::optional<Tensor<T>>(v[2]) : std::nullopt,
                            g.prm);
    layer.forward(v[0]);
    Grads<T> out{layer.backward(gy)};
    for (const auto& p : layer.params()) out.push_back(*p.grad);
    return out;
  };
  // dx: K/G*R*S terms |gy*w|; dw: N*P*Q terms |gy*x|; db: N*P*Q terms |gy|.
  auto bound = [g](const Grads<f50>& v, const Tensor<f50>& gy) {
    const Tensor<f50> agy = abs50(gy);
    std::vector<Bound> b{{ref::conv2d_backward_data(g, agy, abs50(v[1])), g.k_per_group() * g.r * g.s},
                         {ref::conv2d_backward_weights(g, abs50(v[0]), agy), g.n * g.p * g.q}};
    if (g.has_bias) b.push_back({ref::conv2d_backward_bias(g, agy), g.n * g.p * g.q});
    return b;
  };
  // The reference: conv2d's VJPs in the exact engine (dx = backward-data of gy and w, dw =
  // backward-weights of x and gy, db = backward-bias of gy).
  const ExactReference exact{[g](const Grads<double>& v, const Tensor<double>& gy) {
    Grads<f50> r{exact::conv2d_backward_data<exact::Precise>(g, gy, v[1]),
                 exact::conv2d_backward_weights<exact::Precise>(g, v[0], gy)};
    if (g.has_bias) r.push_back(exact::conv2d_backward_bias<exact::Precise>(g, gy));
    return r;
  }};
  FourWayStats st;
  PROPS_CHECK(four_way<T>(names, in, c.gy, f, op_tape, hand, bound, fd_per_tensor, c.values.seed,
                          &st, nullptr, &exact));
  RC_CLASSIFY(st.kinks > 0, "fd kinks");
}

RC_GTEST_PROP(Conv2dGradients, fourWaysAgreeInDouble, ()) { conv2d_four_ways_agree<double>(); }
RC_GTEST_PROP(Conv2dGradients, fourWaysAgreeInFloat, ()) { conv2d_four_ways_agree<float>(); }

// ---------------------------------------------------------------- linear
template <class T>
void linear_four_ways_agree() {
  const LinearCase c = *gen_linear_case();
  RC_CLASSIFY(c.g.has_bias, "bias");
  RC_CLASSIFY(c.g.n > 1, "batch>1");
  const LinearGeom g = c.g;
  std::vector<std::string> names{"x", "w"};
  std::vector<Tensor<double>> in{c.x, c.w};
  if (g.has_bias) names.push_back("b"), in.push_back(c.b);
  auto f = [g](const auto& v) { return ref::linear_forward(g, v[0], v[1], g.has_bias ? &v[2] : nullptr); };
  auto op_tape = [g](const Grads<T>& v, const Tensor<T>& gy) {
    return op_tape_vjp<T>([&](const std::vector<TapeTensor<T>>& L) {
      return ops::linear(L[0], L[1], g.has_bias ? ops::Opt<T>(L[2]) : std::nullopt);
    }, v, gy);
  };
  auto hand = [g](const Grads<T>& v, const Tensor<T>& gy) -> std::optional<Grads<T>> {
    layers::Linear<T> layer("fc", v[1], g.has_bias ? std::optional<Tensor<T>>(v[2]) : std::nullopt);
    layer.forward(v[0]);
    Grads<T> out{layer.backward(gy)};
    for (const auto& p : layer.params()) out.push_back(*p.grad);
    return out;
  };
  // dx: `out` terms |gy*w|; dw: N terms |gy*x|; db: N terms |gy|.
  auto bound = [g](const Grads<f50>& v, const Tensor<f50>& gy) {
    const Tensor<f50> agy = abs50(gy);
    std::vector<Bound> b{{ref::linear_backward_data(g, agy, abs50(v[1])), g.out},
                         {ref::linear_backward_weights(g, abs50(v[0]), agy), g.n}};
    if (g.has_bias) b.push_back({ref::linear_backward_bias(g, agy), g.n});
    return b;
  };
  const ExactReference exact{[g](const Grads<double>& v, const Tensor<double>& gy) {
    Grads<f50> r{exact::linear_backward_data<exact::Precise>(g, gy, v[1]),
                 exact::linear_backward_weights<exact::Precise>(g, v[0], gy)};
    if (g.has_bias) r.push_back(exact::linear_backward_bias<exact::Precise>(g, gy));
    return r;
  }};
  PROPS_CHECK(four_way<T>(names, in, c.gy, f, op_tape, hand, bound, fd_per_tensor, c.values.seed,
                          nullptr, nullptr, &exact));
}

RC_GTEST_PROP(LinearGradients, fourWaysAgreeInDouble, ()) { linear_four_ways_agree<double>(); }
RC_GTEST_PROP(LinearGradients, fourWaysAgreeInFloat, ()) { linear_four_ways_agree<float>(); }

// ---------------------------------------------------------------- pooling
template <class T>
void max_pool_four_ways_agree() {
  const PoolCase c = *gen_pool_case();
  classify_pool(c);
  const Pool2dGeom g = c.g;
  auto f = [g](const auto& v) { return ref::max_pool2d_forward(g, v[0]); };
  auto op_tape = [g](const Grads<T>& v, const Tensor<T>& gy) {
    return op_tape_vjp<T>([&](const std::vector<TapeTensor<T>>& L) {
      return ops::max_pool2d(L[0], g.prm);
    }, v, gy);
  };
  auto hand = [g](const Grads<T>& v, const Tensor<T>& gy) -> std::optional<Grads<T>> {
    layers::MaxPool2d<T> layer(g.prm);
    layer.forward(v[0]);
    return Grads<T>{layer.backward(gy)};
  };
  // dx routes each gy to its window's first maximum: a sum of at most kh*kw of them.
  auto bound = [g](const Grads<f50>& v, const Tensor<f50>& gy) {
    return std::vector<Bound>{
        {ref::max_pool2d_backward(g, v[0], abs50(gy)), g.prm.kernel[0] * g.prm.kernel[1]}};
  };
  // Elements tied for the maximum of some window: max is not differentiable there, and the
  // convention (first maximum) need not equal even a two-sided derivative of <y, gy> (two
  // overlapping windows tied on one element with gy = +2 and -2 make <y, gy> locally constant
  // in it, while the convention gives -2). Ways 1-3 are still judged there, against the
  // convention; finite differences are not. (Found by the deep pass.)
  std::vector<Tensor<std::uint8_t>> skip{Tensor<std::uint8_t>(c.x.shape(), 0)};
  for (index_t n = 0; n < g.n; ++n)
    for (index_t ch = 0; ch < g.c; ++ch)
      for (index_t p = 0; p < g.p; ++p)
        for (index_t q = 0; q < g.q; ++q) {
          std::vector<index_t> at;
          double m = 0;
          for (index_t i = 0; i < g.prm.kernel[0]; ++i)
            for (index_t j = 0; j < g.prm.kernel[1]; ++j) {
              const index_t h = p * g.prm.stride[0] - g.prm.pad[0] + i;
              const index_t w = q * g.prm.stride[1] - g.prm.pad[1] + j;
              if (h < 0 || h >= g.h || w < 0 || w >= g.w) continue;
              const double v = c.x(n, ch, h, w);
              const index_t flat = ((n * g.c + ch) * g.h + h) * g.w + w;
              if (at.empty() || v > m) m = v, at.assign(1, flat);
              else if (v == m) at.push_back(flat);
            }
          if (at.size() > 1)
            for (index_t i : at) skip[0][i] = 1;
        }
  FourWayStats st;
  PROPS_CHECK(four_way<T>({"x"}, {c.x}, c.gy, f, op_tape, hand, bound, 2 * fd_per_tensor,
                          c.values.seed, &st, &skip));
  RC_CLASSIFY(st.kinks > 0, "fd kinks");
}

RC_GTEST_PROP(MaxPool2dGradients, fourWaysAgreeInDouble, ()) { max_pool_four_ways_agree<double>(); }
RC_GTEST_PROP(MaxPool2dGradients, fourWaysAgreeInFloat, ()) { max_pool_four_ways_agree<float>(); }

template <class T>
void avg_pool_four_ways_agree() {
  const PoolCase c = *gen_pool_case();
  classify_pool(c);
  const Pool2dGeom g = c.g;
  auto f = [g](const auto& v) { return ref::avg_pool2d_forward(g, v[0]); };
  auto op_tape = [g](const Grads<T>& v, const Tensor<T>& gy) {
    return op_tape_vjp<T>([&](const std::vector<TapeTensor<T>>& L) {
      return ops::avg_pool2d(L[0], g.prm);
    }, v, gy);
  };
  auto hand = [g](const Grads<T>& v, const Tensor<T>& gy) -> std::optional<Grads<T>> {
    layers::AvgPool2d<T> layer(g.prm);
    layer.forward(v[0]);
    return Grads<T>{layer.backward(gy)};
  };
  // dx: up to kh*kw terms gy/(kh*kw); the division (and, on the scalar tape, forming the
  // partial 1/(kh*kw)) adds 2 roundings per term.
  auto bound = [g](const Grads<f50>&, const Tensor<f50>& gy) {
    return std::vector<Bound>{
        {ref::avg_pool2d_backward(g, abs50(gy)), g.prm.kernel[0] * g.prm.kernel[1] + 2}};
  };
  const ExactReference exact{[g](const Grads<double>&, const Tensor<double>& gy) {
    return Grads<f50>{exact::avg_pool2d_backward<exact::Precise>(g, gy)};
  }};
  PROPS_CHECK(four_way<T>({"x"}, {c.x}, c.gy, f, op_tape, hand, bound, 2 * fd_per_tensor,
                          c.values.seed, nullptr, nullptr, &exact));
}

RC_GTEST_PROP(AvgPool2dGradients, fourWaysAgreeInDouble, ()) { avg_pool_four_ways_agree<double>(); }
RC_GTEST_PROP(AvgPool2dGradients, fourWaysAgreeInFloat, ()) { avg_pool_four_ways_agree<float>(); }

// ---------------------------------------------------------------- activations
// Element-wise: one rounding chain per element, no reduction.
enum class Act { relu, sigmoid, tanh };

template <class T>
void activation_four_ways_agree(Act act) {
  const ActCase c = *gen_act_case();
  auto f = [act](const auto& v) {
    if (act == Act::relu) return ref::relu_forward(v[0]);
    if (act == Act::sigmoid) return ref::sigmoid_forward(v[0]);
    return ref::tanh_forward(v[0]);
  };
  auto op_tape = [act](const Grads<T>& v, const Tensor<T>& gy) {
    return op_tape_vjp<T>([&](const std::vector<TapeTensor<T>>& L) {
      if (act == Act::relu) return ops::relu(L[0]);
      if (act == Act::sigmoid) return ops::sigmoid(L[0]);
      return ops::tanh(L[0]);
    }, v, gy);
  };
  auto hand = [act](const Grads<T>& v, const Tensor<T>& gy) -> std::optional<Grads<T>> {
    std::unique_ptr<layers::Layer<T>> layer;
    if (act == Act::relu) layer = std::make_unique<layers::ReLU<T>>();
    else if (act == Act::sigmoid) layer = std::make_unique<layers::Sigmoid<T>>();
    else layer = std::make_unique<layers::Tanh<T>>();
    layer->forward(v[0]);
    return Grads<T>{layer->backward(gy)};
  };
  // relu:    dx = gy or 0, exact in every way (tolerance 0; relu'(0) = 0 by convention).
  // sigmoid: y in T carries relative error <= gamma(4) (exp = 2, +, /); dx = gy*y*(1-y) then
  //          errs by <= gamma(7) |gy| (y(1-y) + y^2) = gamma(7) |gy| y (1 - y cancels: the
  //          y^2 term). The scalar tape differentiates 1/(1+e^-x) (or e^x/(1+e^x)) through
  //          <= 8 roundings, relative to |gy| y(1-y). So weight |gy| y, k = 12.
  // tanh:    y relative error <= gamma(2); 1 - y^2 errs by <= gamma(5) y^2 + u|1-y^2|; times gy:
  //          gamma(7) |gy| (y^2 + |1 - y^2|) = gamma(7) |gy|. weight |gy|, k = 8.
  auto bound = [act](const Grads<f50>& v, const Tensor<f50>& gy) {
    Tensor<f50> w(v[0].shape());
    if (act == Act::sigmoid) {
      const Tensor<f50> y = ref::sigmoid_forward(v[0]);
      for (index_t i = 0; i < w.numel(); ++i) w[i] = abs(gy[i]) * y[i];
      return std::vector<Bound>{{w, 12}};
    }
    if (act == Act::tanh) return std::vector<Bound>{{abs50(gy), 8}};
    return std::vector<Bound>{{w, 1}};
  };
  FourWayStats st;
  PROPS_CHECK(four_way<T>({"x"}, {c.x}, c.gy, f, op_tape, hand, bound, 2 * fd_per_tensor,
                          c.values.seed, &st));
  RC_CLASSIFY(st.kinks > 0, "fd kinks");
  RC_TAG(style_name(c.values.style));
}

RC_GTEST_PROP(ReluGradients, fourWaysAgreeInDouble, ()) { activation_four_ways_agree<double>(Act::relu); }
RC_GTEST_PROP(ReluGradients, fourWaysAgreeInFloat, ()) { activation_four_ways_agree<float>(Act::relu); }
RC_GTEST_PROP(SigmoidGradients, fourWaysAgreeInDouble, ()) { activation_four_ways_agree<double>(Act::sigmoid); }
RC_GTEST_PROP(SigmoidGradients, fourWaysAgreeInFloat, ()) { activation_four_ways_agree<float>(Act::sigmoid); }
RC_GTEST_PROP(TanhGradients, fourWaysAgreeInDouble, ()) { activation_four_ways_agree<double>(Act::tanh); }
RC_GTEST_PROP(TanhGradients, fourWaysAgreeInFloat, ()) { activation_four_ways_agree<float>(Act::tanh); }

// ---------------------------------------------------------------- softmax, log_softmax
// Three ways (no hand-written layer of its own; the loss layer's softmax is checked through
// cross_entropy below). For one slice along dim 1 (C classes), p = softmax(x), m = max x,
// A_c = |x_c - m| + sum_j p_j |x_j - m| (the rounding of x - m, amplified by exp):
//   softmax:     y_c in T has relative error <= gamma(C+4) + u A_c; dx = y (gy - sum y gy) then
//                errs by <= gamma(2C+10) (y_c + [c = argmax]) (|gy_c| + 2 sum_j y_j |gy_j|)
//                (1 + A_c) -- the [c = argmax] term is the scalar tape's path through m, whose
//                exact adjoint is 0 but whose computed one is a C-term cancellation.
//   log_softmax: dx = gy - p sum gy errs by <= gamma(C+10) (|dx_c| + (p_c + [c = argmax])
//                sum |gy|) (1 + A_c + 2 |lse| + |y_c|).
template <class T>
void softmax_three_ways_agree(bool log_form) {
  const ActCase c = *gen_act_case(11);
  auto f = [log_form](const auto& v) {
    return log_form ? ref::log_softmax_forward(v[0]) : ref::softmax_forward(v[0]);
  };
  auto op_tape = [log_form](const Grads<T>& v, const Tensor<T>& gy) {
    return op_tape_vjp<T>([&](const std::vector<TapeTensor<T>>& L) {
      return log_form ? ops::log_softmax(L[0]) : ops::softmax(L[0]);
    }, v, gy);
  };
  auto hand = [](const Grads<T>&, const Tensor<T>&) -> std::optional<Grads<T>> {
    return std::nullopt;
  };
  auto bound = [log_form](const Grads<f50>& v, const Tensor<f50>& gy) {
    const Tensor<f50>& x = v[0];
    const Tensor<f50> p = ref::softmax_forward(x);
    const Tensor<f50> ls = ref::log_softmax_forward(x);
    const ref::detail::Dim1View view(x.shape());
    Tensor<f50> w(x.shape());
    for (index_t o = 0; o < view.outer; ++o)
      for (index_t i = 0; i < view.inner; ++i) {
        index_t am = 0;
        for (index_t ch = 1; ch < view.c; ++ch)
          if (x[view.at(o, ch, i)] > x[view.at(o, am, i)]) am = ch;
        const f50 m = x[view.at(o, am, i)];
        f50 spread = 0, ygy = 0, sgy = 0, dot = 0;
        for (index_t ch = 0; ch < view.c; ++ch) {
          const index_t at = view.at(o, ch, i);
          spread += p[at] * (m - x[at]);
          ygy += p[at] * abs(gy[at]);
          sgy += abs(gy[at]);
          dot += gy[at];
        }
        const f50 lse = m - x[view.at(o, am, i)] - ls[view.at(o, am, i)];  // = log sum exp(x - m)
        for (index_t ch = 0; ch < view.c; ++ch) {
          const index_t at = view.at(o, ch, i);
          const f50 a = (m - x[at]) + spread;
          const f50 is_max = ch == am ? 1 : 0;
          if (log_form) {
            const f50 dx = gy[at] - p[at] * dot;
            w[at] = (abs(dx) + (p[at] + is_max) * sgy) * (1 + a + 2 * abs(lse) + abs(ls[at]));
          } else {
            w[at] = (p[at] + is_max) * (abs(gy[at]) + 2 * ygy) * (1 + a);
          }
        }
      }
    const index_t k = (log_form ? 1 : 2) * x.size(1) + 10;
    return std::vector<Bound>{{w, k}};
  };
  FourWayStats st;
  PROPS_CHECK(four_way<T>({"x"}, {c.x}, c.gy, f, op_tape, hand, bound, 2 * fd_per_tensor,
                          c.values.seed, &st));
  RC_CLASSIFY(c.values.scale > 6, "large logits");
}

RC_GTEST_PROP(SoftmaxGradients, threeWaysAgreeInDouble, ()) { softmax_three_ways_agree<double>(false); }
RC_GTEST_PROP(SoftmaxGradients, threeWaysAgreeInFloat, ()) { softmax_three_ways_agree<float>(false); }
RC_GTEST_PROP(LogSoftmaxGradients, threeWaysAgreeInDouble, ()) { softmax_three_ways_agree<double>(true); }
RC_GTEST_PROP(LogSoftmaxGradients, threeWaysAgreeInFloat, ()) { softmax_three_ways_agree<float>(true); }

// ---------------------------------------------------------------- losses
// mse: dx = dloss * 2 (x - t) / M; in T: x - t, 2*dloss, /M, product: <= 4 roundings, and the
// scalar tape's d*d / M chain a few more: weight |dloss| 2 |x - t| / M, k = 8. The op tape and
// the scalar tape also give d/dtarget (= -dx); the hand-written loss gives dx only.
template <class T>
void mse_four_ways_agree() {
  const LossCase c = *gen_loss_case(12);
  auto f = [](const auto& v) { return ref::mse_loss_forward(v[0], v[1]); };
  auto op_tape = [](const Grads<T>& v, const Tensor<T>& gy) {
    return op_tape_vjp<T>([&](const std::vector<TapeTensor<T>>& L) {
      return ops::mse_loss(L[0], L[1]);
    }, v, gy);
  };
  auto hand = [](const Grads<T>& v, const Tensor<T>& gy) -> std::optional<Grads<T>> {
    layers::MSELoss<T> loss;
    loss.forward(v[0], v[1]);
    return Grads<T>{loss.backward(gy[0])};
  };
  auto bound = [](const Grads<f50>& v, const Tensor<f50>& gy) {
    Tensor<f50> w(v[0].shape());
    for (index_t i = 0; i < w.numel(); ++i)
      w[i] = abs(gy[0]) * 2 * abs(v[0][i] - v[1][i]) / f50(w.numel());
    return std::vector<Bound>{{w, 8}, {w, 8}};
  };
  const Tensor<double> seed = Tensor<double>::scalar(c.dloss);
  PROPS_CHECK(four_way<T>({"x", "target"}, {c.logits, c.target}, seed, f, op_tape, hand, bound,
                          2 * fd_per_tensor, c.values.seed));
}

RC_GTEST_PROP(MseLossGradients, fourWaysAgreeInDouble, ()) { mse_four_ways_agree<double>(); }
RC_GTEST_PROP(MseLossGradients, fourWaysAgreeInFloat, ()) { mse_four_ways_agree<float>(); }

// cross_entropy: dz[n,c] = dloss (p_c - [c = t_n]) / N; p in T errs relatively by
// gamma(C+4) + u A_c (as softmax above), p - 1 and the scaling add 3 roundings, and the scalar
// tape's path through the max m adds a C-term cancellation at the argmax:
// weight |dloss|/N (p_c + [c = t_n] + [c = argmax]) (1 + A_c), k = C + 8.
template <class T>
void cross_entropy_four_ways_agree() {
  const LossCase c = *gen_loss_case();
  const std::vector<index_t> labels = c.labels;
  auto f = [labels](const auto& v) { return ref::cross_entropy_forward(v[0], labels); };
  auto op_tape = [labels](const Grads<T>& v, const Tensor<T>& gy) {
    return op_tape_vjp<T>([&](const std::vector<TapeTensor<T>>& L) {
      return ops::cross_entropy(L[0], labels);
    }, v, gy);
  };
  auto hand = [labels](const Grads<T>& v, const Tensor<T>& gy) -> std::optional<Grads<T>> {
    layers::SoftmaxCrossEntropy<T> loss;
    loss.forward(v[0], labels);
    return Grads<T>{loss.backward(gy[0])};
  };
  auto bound = [labels](const Grads<f50>& v, const Tensor<f50>& gy) {
    const Tensor<f50>& x = v[0];
    const Tensor<f50> p = ref::softmax_forward(x);
    const index_t nb = x.size(0), nc = x.size(1);
    Tensor<f50> w(x.shape());
    for (index_t n = 0; n < nb; ++n) {
      index_t am = 0;
      for (index_t ch = 1; ch < nc; ++ch)
        if (x(n, ch) > x(n, am)) am = ch;
      f50 spread = 0;
      for (index_t ch = 0; ch < nc; ++ch) spread += p(n, ch) * (x(n, am) - x(n, ch));
      for (index_t ch = 0; ch < nc; ++ch) {
        const f50 ind = (ch == labels[static_cast<std::size_t>(n)] ? 1 : 0) + (ch == am ? 1 : 0);
        w(n, ch) = abs(gy[0]) / f50(nb) * (p(n, ch) + ind) * (1 + (x(n, am) - x(n, ch)) + spread);
      }
    }
    return std::vector<Bound>{{w, nc + 8}};
  };
  const Tensor<double> seed = Tensor<double>::scalar(c.dloss);
  PROPS_CHECK(four_way<T>({"logits"}, {c.logits}, seed, f, op_tape, hand, bound,
                          2 * fd_per_tensor, c.values.seed));
  RC_CLASSIFY(c.values.scale > 6, "large logits");
  RC_CLASSIFY(c.n > 1, "batch>1");
}

RC_GTEST_PROP(CrossEntropyGradients, fourWaysAgreeInDouble, ()) { cross_entropy_four_ways_agree<double>(); }
RC_GTEST_PROP(CrossEntropyGradients, fourWaysAgreeInFloat, ()) { cross_entropy_four_ways_agree<float>(); }

}  // namespace
}  // namespace tapegrad::props
