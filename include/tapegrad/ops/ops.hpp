// Ops on the op tape: each op validates at entry (geometry makers, check_*), computes its
// forward through the dispatch kernels, and records its VJP directly below, one guarded line
// per input. VJP kernels return fresh tensors; only Grads<T>::add accumulates.
//
//   conv2d linear relu sigmoid tanh softmax log_softmax max_pool2d avg_pool2d flatten
//   mse_loss cross_entropy add mul sum
//   conv2d and linear fused with relu, sigmoid or tanh (their `act` argument); cross_entropy
//   takes logits: log_softmax and the negative log-likelihood in one op, one pass each way
//
// Names are PyTorch's; every input is a TapeTensor on the same tape (bias: std::optional).
// Each op opens a profiler scope around its whole forward (validation, kernel, recording);
// conv2d and linear give their flops, and the tape opens one around each VJP.
#pragma once

#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/kernels/activation.hpp"
#include "tapegrad/kernels/conv2d.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/kernels/linear.hpp"
#include "tapegrad/kernels/loss.hpp"
#include "tapegrad/kernels/pool.hpp"
#include "tapegrad/tape/profile.hpp"
#include "tapegrad/tape/tape.hpp"

namespace tapegrad::ops {

template <class T>
using Opt = std::optional<TapeTensor<T>>;

namespace detail {
template <class T>
void check_same_tape(const char* op, const TapeTensor<T>& a, const TapeTensor<T>& b) {
  check_arg(&a.tape() == &b.tape(), op, "inputs are recorded on different tapes");
}

// The profile of a GEMM-like op: its forward flops on the open scope, and the cost of its VJP
// (one pass of the same size per differentiated input, x and w; the bias sum is negligible).
template <class T, class Geom>
typename Tape<T>::Cost cost(profile::Scope& scope, const Geom& geom, int passes) {
  typename Tape<T>::Cost c;
  if (!scope.active()) return c;
  scope.flops(geom.flops());
  c.flops = geom.flops() * passes;
  if (scope.tracing()) {
    scope.args(geom.str());
    c.args = geom.str();
  }
  return c;
}

// The op's name on the tape and in profiles: "conv2d" (op 0) or "linear" (op 1), and fused
// with an activation "conv2d+relu", "linear+tanh", ...
template <int Op>
const char* fused_name(Activation act) {
  static constexpr const char* names[2][4] = {
      {"conv2d", "conv2d+relu", "conv2d+sigmoid", "conv2d+tanh"},
      {"linear", "linear+relu", "linear+sigmoid", "linear+tanh"}};
  return names[Op][static_cast<int>(act)];
}

// The gradient before a fused op's activation: dy itself for none, else the activation's VJP
// from the op's output y, written into dz.
template <class T>
const Tensor<T>& through_activation(Activation act, const Tensor<T>& y, const Tensor<T>& dy,
                                    Tensor<T>& dz) {
  if (act == Activation::none) return dy;
  dz = kernels::activation_backward(act, y, dy);
  return dz;
}
}  // namespace detail

// y = conv2d(x, w, b);  dx = conv2d_backward_data(dy, w);  dw = conv2d_backward_weights(x, dy);
// db = conv2d_backward_bias(dy)
// Fused with an activation (kernels/activation_kind.hpp): y = act(conv2d(x, w, b)), recorded as
// one op ("conv2d+relu", ...); its VJP is the activation's from y, dz = activation_backward(y,
// dy), and then the three above with dz for dy: the same bits as the two ops recorded apart.
template <class T>
TapeTensor<T> conv2d(const TapeTensor<T>& x, const TapeTensor<T>& w,
                     const std::type_identity_t<Opt<T>>& b,
                     const Conv2dParams& prm = {}, Activation act = Activation::none) {
  profile::Scope scope(detail::fused_name<0>(act), profile::Phase::forward);
  detail::check_same_tape("conv2d", x, w);
  if (b) detail::check_same_tape("conv2d", x, *b);
  const Conv2dGeom geom =
      make_conv2d_geom(x.shape(), w.shape(), b ? &b->shape() : nullptr, prm, "conv2d");
  const auto cost = detail::cost<T>(scope, geom, x.requires_grad() + w.requires_grad());
  Tensor<T> y =
      kernels::conv2d_forward(geom, x.value(), w.value(), b ? &b->value() : nullptr, act);
  return x.tape().record(detail::fused_name<0>(act), std::move(y), {x, w, b},
      [geom, x, w, b, act](const Tensor<T>& y, const Tensor<T>& dy, Grads<T>& grads) {
        Tensor<T> dz;
        const Tensor<T>& d = detail::through_activation(act, y, dy, dz);
        if (x.requires_grad()) grads.add(x, kernels::conv2d_backward_data(geom, d, w.value()));
        if (w.requires_grad()) grads.add(w, kernels::conv2d_backward_weights(geom, x.value(), d));
        if (b && b->requires_grad()) grads.add(*b, kernels::conv2d_backward_bias(geom, d));
      }, cost);
}

// y = x w^T + b;  dx = dy w;  dw = dy^T x;  db = sum_n dy
// Fused with an activation as conv2d ("linear+relu", ...).
template <class T>
TapeTensor<T> linear(const TapeTensor<T>& x, const TapeTensor<T>& w,
                     const std::type_identity_t<Opt<T>>& b, Activation act = Activation::none) {
  profile::Scope scope(detail::fused_name<1>(act), profile::Phase::forward);
  detail::check_same_tape("linear", x, w);
  if (b) detail::check_same_tape("linear", x, *b);
  const LinearGeom geom =
      make_linear_geom(x.shape(), w.shape(), b ? &b->shape() : nullptr, "linear");
  const auto cost = detail::cost<T>(scope, geom, x.requires_grad() + w.requires_grad());
  Tensor<T> y =
      kernels::linear_forward(geom, x.value(), w.value(), b ? &b->value() : nullptr, act);
  return x.tape().record(detail::fused_name<1>(act), std::move(y), {x, w, b},
      [geom, x, w, b, act](const Tensor<T>& y, const Tensor<T>& dy, Grads<T>& grads) {
        Tensor<T> dz;
        const Tensor<T>& d = detail::through_activation(act, y, dy, dz);
        if (x.requires_grad()) grads.add(x, kernels::linear_backward_data(geom, d, w.value()));
        if (w.requires_grad()) grads.add(w, kernels::linear_backward_weights(geom, x.value(), d));
        if (b && b->requires_grad()) grads.add(*b, kernels::linear_backward_bias(geom, d));
      }, cost);
}

// y = max(x, 0);  dx = dy * [x > 0]   NOTE: relu'(0) = 0
template <class T>
TapeTensor<T> relu(const TapeTensor<T>& x) {
  profile::Scope scope("relu", profile::Phase::forward);
  return x.tape().record("relu", kernels::relu_forward(x.value()), {x},
      [x](const Tensor<T>& dy, Grads<T>& grads) {
        if (x.requires_grad()) grads.add(x, kernels::relu_backward(x.value(), dy));
      });
}

// y = sigmoid(x);  dx = dy * y * (1 - y)  (from the output y)
template <class T>
TapeTensor<T> sigmoid(const TapeTensor<T>& x) {
  profile::Scope scope("sigmoid", profile::Phase::forward);
  return x.tape().record("sigmoid", kernels::sigmoid_forward(x.value()), {x},
      [x](const Tensor<T>& y, const Tensor<T>& dy, Grads<T>& grads) {
        if (x.requires_grad()) grads.add(x, kernels::sigmoid_backward(y, dy));
      });
}

// y = tanh(x);  dx = dy * (1 - y^2)  (from the output y)
template <class T>
TapeTensor<T> tanh(const TapeTensor<T>& x) {
  profile::Scope scope("tanh", profile::Phase::forward);
  return x.tape().record("tanh", kernels::tanh_forward(x.value()), {x},
      [x](const Tensor<T>& y, const Tensor<T>& dy, Grads<T>& grads) {
        if (x.requires_grad()) grads.add(x, kernels::tanh_backward(y, dy));
      });
}

// y = softmax(x) over dim 1;  dx = y * (dy - sum_c dy * y)
template <class T>
TapeTensor<T> softmax(const TapeTensor<T>& x) {
  profile::Scope scope("softmax", profile::Phase::forward);
  check_softmax(x.shape(), "softmax");
  return x.tape().record("softmax", kernels::softmax_forward(x.value()), {x},
      [x](const Tensor<T>& y, const Tensor<T>& dy, Grads<T>& grads) {
        if (x.requires_grad()) grads.add(x, kernels::softmax_backward(y, dy));
      });
}

// y = log_softmax(x) over dim 1;  dx = dy - exp(y) * sum_c dy
template <class T>
TapeTensor<T> log_softmax(const TapeTensor<T>& x) {
  profile::Scope scope("log_softmax", profile::Phase::forward);
  check_softmax(x.shape(), "log_softmax");
  return x.tape().record("log_softmax", kernels::log_softmax_forward(x.value()), {x},
      [x](const Tensor<T>& y, const Tensor<T>& dy, Grads<T>& grads) {
        if (x.requires_grad()) grads.add(x, kernels::log_softmax_backward(y, dy));
      });
}

// y = max over each window;  dx routes dy to the first maximum (padding never wins)
template <class T>
TapeTensor<T> max_pool2d(const TapeTensor<T>& x, const Pool2dParams& prm = {}) {
  profile::Scope scope("max_pool2d", profile::Phase::forward);
  const Pool2dGeom geom = make_pool2d_geom(x.shape(), prm, "max_pool2d");
  return x.tape().record("max_pool2d", kernels::max_pool2d_forward(geom, x.value()), {x},
      [geom, x](const Tensor<T>& dy, Grads<T>& grads) {
        if (x.requires_grad()) grads.add(x, kernels::max_pool2d_backward(geom, x.value(), dy));
      });
}

// y = window sum / (kh*kw);  dx spreads dy / (kh*kw) over each window
template <class T>
TapeTensor<T> avg_pool2d(const TapeTensor<T>& x, const Pool2dParams& prm = {}) {
  profile::Scope scope("avg_pool2d", profile::Phase::forward);
  const Pool2dGeom geom = make_pool2d_geom(x.shape(), prm, "avg_pool2d");
  return x.tape().record("avg_pool2d", kernels::avg_pool2d_forward(geom, x.value()), {x},
      [geom, x](const Tensor<T>& dy, Grads<T>& grads) {
        if (x.requires_grad()) grads.add(x, kernels::avg_pool2d_backward(geom, dy));
      });
}

// y = x viewed as (N, prod rest);  dx = dy viewed as x's shape
template <class T>
TapeTensor<T> flatten(const TapeTensor<T>& x) {
  profile::Scope scope("flatten", profile::Phase::forward);
  check_flatten(x.shape(), "flatten");
  return x.tape().record("flatten", kernels::flatten_forward(x.value()), {x},
      [x](const Tensor<T>& dy, Grads<T>& grads) {
        if (x.requires_grad()) grads.add(x, kernels::flatten_backward(x.shape(), dy));
      });
}

// loss = sum((x - t)^2) / count;  dx = dloss * 2 (x - t) / count;  dt = -dx
// count: the divisor of the mean, default x.numel(); a sharded batch gives the whole batch's.
template <class T>
TapeTensor<T> mse_loss(const TapeTensor<T>& x, const TapeTensor<T>& target,
                       std::optional<index_t> count = std::nullopt) {
  profile::Scope scope("mse_loss", profile::Phase::forward);
  detail::check_same_tape("mse_loss", x, target);
  check_mse_loss(x.shape(), target.shape());
  const index_t m = count.value_or(x.shape().numel());
  check_loss_count(m, "mse_loss");
  return x.tape().record("mse_loss", kernels::mse_loss_forward(x.value(), target.value(), m),
      {x, target},
      [x, target, m](const Tensor<T>& dloss, Grads<T>& grads) {
        if (x.requires_grad())
          grads.add(x, kernels::mse_loss_backward(x.value(), target.value(), dloss[0], m));
        if (target.requires_grad())  // mse is symmetric in (x, t) up to the sign
          grads.add(target, kernels::mse_loss_backward(target.value(), x.value(), dloss[0], m));
      });
}

// loss = sum_n (-log softmax(logits)[n, t_n]) / count;
// dlogits = dloss * (softmax - onehot) / count;  count: default the batch rows (as mse_loss)
template <class T>
TapeTensor<T> cross_entropy(const TapeTensor<T>& logits, std::vector<index_t> targets,
                            std::optional<index_t> count = std::nullopt) {
  profile::Scope scope("cross_entropy", profile::Phase::forward);
  check_cross_entropy(logits.shape(), targets);
  const index_t m = count.value_or(logits.shape()[0]);
  check_loss_count(m, "cross_entropy");
  Tensor<T> loss = kernels::cross_entropy_forward(logits.value(), targets, m);
  return logits.tape().record("cross_entropy", std::move(loss), {logits},
      [logits, targets = std::move(targets), m](const Tensor<T>& dloss, Grads<T>& grads) {
        if (logits.requires_grad())
          grads.add(logits,
                    kernels::cross_entropy_backward(logits.value(), targets, dloss[0], m));
      });
}

// Element-wise ops for graphs that branch and merge (residual connections, a weight used
// twice). Plain loops: there is no kernel to dispatch to.
namespace detail {
template <class T, class F>
Tensor<T> zip(const Tensor<T>& a, const Tensor<T>& b, F f) {
  Tensor<T> y(a.shape());
  for (index_t i = 0; i < a.numel(); ++i) y[i] = f(a[i], b[i]);
  return y;
}
}  // namespace detail

// y = a + b (same shapes);  da = dy;  db = dy
template <class T>
TapeTensor<T> add(const TapeTensor<T>& a, const TapeTensor<T>& b) {
  profile::Scope scope("add", profile::Phase::forward);
  detail::check_same_tape("add", a, b);
  check_shape("add", "b", b.shape(), a.shape());
  Tensor<T> y = detail::zip(a.value(), b.value(), [](const T& u, const T& v) { return u + v; });
  return a.tape().record("add", std::move(y), {a, b},
      [a, b](const Tensor<T>& dy, Grads<T>& grads) {
        if (a.requires_grad()) grads.add(a, Tensor<T>(dy));
        if (b.requires_grad()) grads.add(b, Tensor<T>(dy));
      });
}

// y = a * b element-wise (same shapes);  da = dy * b;  db = dy * a
template <class T>
TapeTensor<T> mul(const TapeTensor<T>& a, const TapeTensor<T>& b) {
  profile::Scope scope("mul", profile::Phase::forward);
  detail::check_same_tape("mul", a, b);
  check_shape("mul", "b", b.shape(), a.shape());
  Tensor<T> y = detail::zip(a.value(), b.value(), [](const T& u, const T& v) { return u * v; });
  return a.tape().record("mul", std::move(y), {a, b},
      [a, b](const Tensor<T>& dy, Grads<T>& grads) {
        auto times = [](const T& u, const T& v) { return u * v; };
        if (a.requires_grad()) grads.add(a, detail::zip(dy, b.value(), times));
        if (b.requires_grad()) grads.add(b, detail::zip(dy, a.value(), times));
      });
}

// y = sum of all elements (0-d);  dx = dy broadcast
template <class T>
TapeTensor<T> sum(const TapeTensor<T>& x) {
  profile::Scope scope("sum", profile::Phase::forward);
  T acc(0);
  for (const T& v : x.value()) acc += v;
  return x.tape().record("sum", Tensor<T>::scalar(acc), {x},
      [x](const Tensor<T>& dy, Grads<T>& grads) {
        if (x.requires_grad()) grads.add(x, Tensor<T>(x.shape(), dy[0]));
      });
}

}  // namespace tapegrad::ops
