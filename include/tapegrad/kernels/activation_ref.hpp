// Reference activations and flatten, generic over T (float, double, f50, Var<U>).
// Element-wise ops take any shape; softmax / log_softmax reduce over dim 1 of a tensor of
// rank >= 2 (N,C,...), as PyTorch's dim=1. Backward passes of sigmoid, tanh, softmax and
// log_softmax take the forward *output* y (cheaper, and what the tape keeps).
// Validators (entry points): check_softmax, check_flatten, check_activation_backward.
#pragma once

#include <cassert>
#include <cmath>
#include <string_view>

#include "tapegrad/errors.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

// softmax / log_softmax: x must be (N,C,...) with rank >= 2 and C > 0.
inline void check_softmax(const Shape& x, std::string_view op = "softmax") {
  check_arg(x.rank() >= 2, op, "x must have rank >= 2 (N,C,...), got ", x);
  check_arg(x[1] > 0, op, "x has no classes along dim 1 (x ", x, ")");
}

// flatten: x must be (N,...) with rank >= 2.
inline void check_flatten(const Shape& x, std::string_view op = "flatten") {
  check_arg(x.rank() >= 2, op, "x must have rank >= 2 (N,...), got ", x);
}

// Backward of an element-wise op (or softmax): dy must have the shape of the forward x / y.
inline void check_activation_backward(const Shape& forward, const Shape& dy,
                                      std::string_view op) {
  check_shape(op, "dy", dy, forward);
}

namespace ref {

// y = max(x, 0)
template <class T>
Tensor<T> relu_forward(const Tensor<T>& x) {
  return map(x, [](const T& v) { return v > T(0) ? v : T(0); });
}

// dx = dy * [x > 0].  NOTE: relu'(0) = 0 (the convention, as PyTorch).
template <class T>
Tensor<T> relu_backward(const Tensor<T>& x, const Tensor<T>& dy) {
  assert(x.shape() == dy.shape());
  Tensor<T> dx(x.shape());
  for (index_t i = 0; i < x.numel(); ++i) dx[i] = x[i] > T(0) ? dy[i] : T(0);
  return dx;
}

// y = 1 / (1 + exp(-x)), evaluated stably: for x >= 0 as 1 / (1 + exp(-x)), else as
// exp(x) / (1 + exp(x)); exp never sees a positive argument, so it never overflows and
// sigmoid(+-1000) is exactly 1 / 0 in float and double.
template <class T>
Tensor<T> sigmoid_forward(const Tensor<T>& x) {
  return map(x, [](const T& v) {
    using std::exp;
    if (v >= T(0)) return T(T(1) / (T(1) + exp(-v)));
    const T e = exp(v);
    return T(e / (T(1) + e));
  });
}

// dx = dy * y * (1 - y), with y = sigmoid(x)
template <class T>
Tensor<T> sigmoid_backward(const Tensor<T>& y, const Tensor<T>& dy) {
  assert(y.shape() == dy.shape());
  Tensor<T> dx(y.shape());
  for (index_t i = 0; i < y.numel(); ++i) dx[i] = dy[i] * y[i] * (T(1) - y[i]);
  return dx;
}

// y = tanh(x)
template <class T>
Tensor<T> tanh_forward(const Tensor<T>& x) {
  return map(x, [](const T& v) {
    using std::tanh;
    return T(tanh(v));
  });
}

// dx = dy * (1 - y^2), with y = tanh(x)
template <class T>
Tensor<T> tanh_backward(const Tensor<T>& y, const Tensor<T>& dy) {
  assert(y.shape() == dy.shape());
  Tensor<T> dx(y.shape());
  for (index_t i = 0; i < y.numel(); ++i) dx[i] = dy[i] * (T(1) - y[i] * y[i]);
  return dx;
}

namespace detail {
// A rank >= 2 tensor viewed as (outer, C, inner): outer = N, inner = prod(dims after 1);
// element (o, c, i) sits at (o*C + c)*inner + i.
struct Dim1View {
  index_t outer, c, inner;
  explicit Dim1View(const Shape& s) : outer(s[0]), c(s[1]), inner(1) {
    for (index_t d = 2; d < s.rank(); ++d) inner *= s[d];
  }
  index_t at(index_t o, index_t ch, index_t i) const { return (o * c + ch) * inner + i; }
};
}  // namespace detail

// y[n,c,...] = exp(x[n,c,...] - m) / sum_j exp(x[n,j,...] - m),  m = max_j x[n,j,...]
// (subtracting the max keeps every exp argument <= 0: no overflow, the sum is >= 1).
template <class T>
Tensor<T> softmax_forward(const Tensor<T>& x) {
  assert(x.rank() >= 2 && x.size(1) > 0);
  using std::exp;
  const detail::Dim1View v(x.shape());
  Tensor<T> y(x.shape());
  for (index_t o = 0; o < v.outer; ++o)
    for (index_t i = 0; i < v.inner; ++i) {
      T m = x[v.at(o, 0, i)];
      for (index_t c = 1; c < v.c; ++c)
        if (x[v.at(o, c, i)] > m) m = x[v.at(o, c, i)];
      T sum(0);
      for (index_t c = 0; c < v.c; ++c) {
        y[v.at(o, c, i)] = exp(x[v.at(o, c, i)] - m);
        sum += y[v.at(o, c, i)];
      }
      for (index_t c = 0; c < v.c; ++c) y[v.at(o, c, i)] /= sum;
    }
  return y;
}

// dx[c] = y[c] * (dy[c] - sum_j y[j] * dy[j])   (per (n, ...) slice along dim 1)
template <class T>
Tensor<T> softmax_backward(const Tensor<T>& y, const Tensor<T>& dy) {
  assert(y.shape() == dy.shape() && y.rank() >= 2);
  const detail::Dim1View v(y.shape());
  Tensor<T> dx(y.shape());
  for (index_t o = 0; o < v.outer; ++o)
    for (index_t i = 0; i < v.inner; ++i) {
      T dot(0);
      for (index_t c = 0; c < v.c; ++c) dot += y[v.at(o, c, i)] * dy[v.at(o, c, i)];
      for (index_t c = 0; c < v.c; ++c)
        dx[v.at(o, c, i)] = y[v.at(o, c, i)] * (dy[v.at(o, c, i)] - dot);
    }
  return dx;
}

// y[n,c,...] = x[n,c,...] - m - log(sum_j exp(x[n,j,...] - m)),  m = max_j x[n,j,...]
// (log-sum-exp with the max subtracted: finite for any finite x).
template <class T>
Tensor<T> log_softmax_forward(const Tensor<T>& x) {
  assert(x.rank() >= 2 && x.size(1) > 0);
  using std::exp;
  using std::log;
  const detail::Dim1View v(x.shape());
  Tensor<T> y(x.shape());
  for (index_t o = 0; o < v.outer; ++o)
    for (index_t i = 0; i < v.inner; ++i) {
      T m = x[v.at(o, 0, i)];
      for (index_t c = 1; c < v.c; ++c)
        if (x[v.at(o, c, i)] > m) m = x[v.at(o, c, i)];
      T sum(0);
      for (index_t c = 0; c < v.c; ++c) sum += exp(x[v.at(o, c, i)] - m);
      const T lse = log(sum);
      for (index_t c = 0; c < v.c; ++c) y[v.at(o, c, i)] = x[v.at(o, c, i)] - m - lse;
    }
  return y;
}

// dx[c] = dy[c] - exp(y[c]) * sum_j dy[j]   (exp(y) = softmax(x))
template <class T>
Tensor<T> log_softmax_backward(const Tensor<T>& y, const Tensor<T>& dy) {
  assert(y.shape() == dy.shape() && y.rank() >= 2);
  using std::exp;
  const detail::Dim1View v(y.shape());
  Tensor<T> dx(y.shape());
  for (index_t o = 0; o < v.outer; ++o)
    for (index_t i = 0; i < v.inner; ++i) {
      T sum(0);
      for (index_t c = 0; c < v.c; ++c) sum += dy[v.at(o, c, i)];
      for (index_t c = 0; c < v.c; ++c)
        dx[v.at(o, c, i)] = dy[v.at(o, c, i)] - exp(y[v.at(o, c, i)]) * sum;
    }
  return dx;
}

// The shape flatten gives x: (N, prod of the other dims).
inline Shape flatten_shape(const Shape& x) {
  assert(x.rank() >= 2);
  index_t rest = 1;
  for (index_t d = 1; d < x.rank(); ++d) rest *= x[d];
  return Shape{x[0], rest};
}

// y = x viewed as (N, prod rest); same elements in the same (row-major) order.
template <class T>
Tensor<T> flatten_forward(const Tensor<T>& x) {
  return x.reshaped(flatten_shape(x.shape()));
}

// dx = dy viewed as x's shape.
template <class T>
Tensor<T> flatten_backward(const Shape& x_shape, const Tensor<T>& dy) {
  assert(dy.numel() == x_shape.numel());
  return dy.reshaped(x_shape);
}

}  // namespace ref
}  // namespace tapegrad
