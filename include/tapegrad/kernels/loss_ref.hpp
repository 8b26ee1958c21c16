// Reference losses, generic over T (float, double, f50, Var<U>). Each returns a 0-d tensor;
// each backward takes the upstream gradient dloss (a scalar) and returns d(loss)/d(input).
// Validators (entry points): check_mse_loss, check_cross_entropy, check_loss_count.
//
// A loss is a sum of terms divided by a count. By default the count is what this call sees
// (mse: the elements of x; cross_entropy: the rows of the batch); a caller that splits a batch
// into shards gives the count of the whole batch instead, so the shards' gradients add up to
// the gradient of the whole batch (the trainer and the gradient combination rely on it).
#pragma once

#include <cassert>
#include <cmath>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

// mse_loss: x and target of the same, non-empty shape.
inline void check_mse_loss(const Shape& x, const Shape& target, std::string_view op = "mse_loss") {
  check_shape(op, "target", target, x);
  check_arg(x.numel() > 0, op, "x is empty (x ", x, "); the mean is undefined");
}

// cross_entropy: logits (N,C) with N, C > 0; targets N class indices in [0, C).
// A target out of range throws std::out_of_range naming its index and value.
inline void check_cross_entropy(const Shape& logits, const std::vector<index_t>& targets,
                                std::string_view op = "cross_entropy") {
  check_rank(op, "logits", logits, 2, "(N,C)");
  check_arg(logits[0] > 0 && logits[1] > 0, op, "logits has an empty dimension (logits ",
            logits, ")");
  check_arg(static_cast<index_t>(targets.size()) == logits[0], op, "targets has ",
            targets.size(), " entries, expected ", logits[0], " = logits batch (logits ",
            logits, ")");
  for (std::size_t n = 0; n < targets.size(); ++n)
    if (targets[n] < 0 || targets[n] >= logits[1])
      throw std::out_of_range(detail::concat(op, ": targets[", n, "] is ", targets[n],
                                             ", expected a class in [0, ", logits[1],
                                             ") (logits ", logits.str(), ")"));
}

// count: the divisor of a loss's mean, positive.
inline void check_loss_count(index_t count, std::string_view op) {
  check_arg(count > 0, op, "count (the divisor of the mean) must be positive, got ", count);
}

namespace ref {

// loss = (1/M) sum_i (x[i] - target[i])^2,  M = count (default: numel)
template <class T>
Tensor<T> mse_loss_forward(const Tensor<T>& x, const Tensor<T>& target, index_t count) {
  assert(x.shape() == target.shape() && x.numel() > 0 && count > 0);
  T acc(0);
  for (index_t i = 0; i < x.numel(); ++i) {
    const T d = x[i] - target[i];
    acc += d * d;
  }
  return Tensor<T>::scalar(acc / T(double(count)));
}
template <class T>
Tensor<T> mse_loss_forward(const Tensor<T>& x, const Tensor<T>& target) {
  return mse_loss_forward(x, target, x.numel());
}

// dx[i] = dloss * 2 * (x[i] - target[i]) / M
template <class T>
Tensor<T> mse_loss_backward(const Tensor<T>& x, const Tensor<T>& target,
                            const std::type_identity_t<T>& dloss, index_t count) {
  assert(x.shape() == target.shape() && x.numel() > 0 && count > 0);
  const T scale = T(2) * dloss / T(double(count));
  Tensor<T> dx(x.shape());
  for (index_t i = 0; i < x.numel(); ++i) dx[i] = scale * (x[i] - target[i]);
  return dx;
}
template <class T>
Tensor<T> mse_loss_backward(const Tensor<T>& x, const Tensor<T>& target,
                            const std::type_identity_t<T>& dloss) {
  return mse_loss_backward(x, target, dloss, x.numel());
}

// loss = (1/N) sum_n -log_softmax(x[n,:])[t_n]
//      = (1/N) sum_n (m_n + log sum_c exp(x[n,c] - m_n) - x[n,t_n]),  m_n = max_c x[n,c]
// N = count (default: the batch rows)
template <class T>
Tensor<T> cross_entropy_forward(const Tensor<T>& logits, const std::vector<index_t>& targets,
                                index_t count) {
  assert(logits.rank() == 2 && static_cast<index_t>(targets.size()) == logits.size(0));
  assert(count > 0);
  using std::exp;
  using std::log;
  const index_t nb = logits.size(0), nc = logits.size(1);
  T total(0);
  for (index_t n = 0; n < nb; ++n) {
    const index_t t = targets[static_cast<std::size_t>(n)];
    assert(t >= 0 && t < nc);
    T m = logits(n, 0);
    for (index_t c = 1; c < nc; ++c)
      if (logits(n, c) > m) m = logits(n, c);
    T sum(0);
    for (index_t c = 0; c < nc; ++c) sum += exp(logits(n, c) - m);
    total += m + log(sum) - logits(n, t);
  }
  return Tensor<T>::scalar(total / T(double(count)));
}
template <class T>
Tensor<T> cross_entropy_forward(const Tensor<T>& logits, const std::vector<index_t>& targets) {
  return cross_entropy_forward(logits, targets, logits.size(0));
}

// dlogits[n,c] = (dloss / N) * (softmax(x[n,:])[c] - [c == t_n])
template <class T>
Tensor<T> cross_entropy_backward(const Tensor<T>& logits, const std::vector<index_t>& targets,
                                 const std::type_identity_t<T>& dloss, index_t count) {
  assert(logits.rank() == 2 && static_cast<index_t>(targets.size()) == logits.size(0));
  assert(count > 0);
  using std::exp;
  const index_t nb = logits.size(0), nc = logits.size(1);
  const T scale = dloss / T(double(count));
  Tensor<T> dx(logits.shape());
  for (index_t n = 0; n < nb; ++n) {
    const index_t t = targets[static_cast<std::size_t>(n)];
    assert(t >= 0 && t < nc);
    T m = logits(n, 0);
    for (index_t c = 1; c < nc; ++c)
      if (logits(n, c) > m) m = logits(n, c);
    T sum(0);
    for (index_t c = 0; c < nc; ++c) {
      dx(n, c) = exp(logits(n, c) - m);
      sum += dx(n, c);
    }
    for (index_t c = 0; c < nc; ++c) {
      const T softmax = dx(n, c) / sum;
      dx(n, c) = scale * (c == t ? softmax - T(1) : softmax);
    }
  }
  return dx;
}
template <class T>
Tensor<T> cross_entropy_backward(const Tensor<T>& logits, const std::vector<index_t>& targets,
                                 const std::type_identity_t<T>& dloss) {
  return cross_entropy_backward(logits, targets, dloss, logits.size(0));
}

}  // namespace ref
}  // namespace tapegrad
