// Reference linear (fully connected) layer, generic over T (float, double, f50, Var<U>).
// PyTorch layout: x (N,in), w (out,in), b (out) -> y (N,out). Geometries come from
// make_linear_geom (validated there); kernels only assert. One output element per loop body.
#pragma once

#include <cassert>
#include <type_traits>

#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::ref {

// y[n,o] = b[o] + sum_i x[n,i] * w[o,i]
// Each element function accumulates in Acc from acc = 0 in index order (the bias last); the
// kernels call them with Acc = T, the exact engine's fallback with Acc = f50 on double tensors.
template <class Acc, class T>
Acc linear_forward_at(const LinearGeom& g, const Tensor<T>& x, const Tensor<T>& w,
                      const std::type_identity_t<Tensor<T>>* b, index_t n, index_t o) {
  Acc acc(0);
  for (index_t i = 0; i < g.in; ++i) acc += to_acc<Acc>(x(n, i)) * to_acc<Acc>(w(o, i));
  if (b) acc += to_acc<Acc>((*b)[o]);
  return acc;
}

template <class T>
Tensor<T> linear_forward(const LinearGeom& g, const Tensor<T>& x, const Tensor<T>& w,
                         const std::type_identity_t<Tensor<T>>* b) {
  assert(x.shape() == g.x_shape() && w.shape() == g.w_shape());
  assert((b != nullptr) == g.has_bias && (!b || b->shape() == g.b_shape()));
  Tensor<T> y(g.y_shape());
  for (index_t n = 0; n < g.n; ++n)
    for (index_t o = 0; o < g.out; ++o) y(n, o) = linear_forward_at<T>(g, x, w, b, n, o);
  return y;
}

// dx[n,i] = sum_o dy[n,o] * w[o,i]
template <class Acc, class T>
Acc linear_backward_data_at(const LinearGeom& g, const Tensor<T>& dy, const Tensor<T>& w,
                            index_t n, index_t i) {
  Acc acc(0);
  for (index_t o = 0; o < g.out; ++o) acc += to_acc<Acc>(dy(n, o)) * to_acc<Acc>(w(o, i));
  return acc;
}

template <class T>
Tensor<T> linear_backward_data(const LinearGeom& g, const Tensor<T>& dy, const Tensor<T>& w) {
  assert(dy.shape() == g.y_shape() && w.shape() == g.w_shape());
  Tensor<T> dx(g.x_shape());
  for (index_t n = 0; n < g.n; ++n)
    for (index_t i = 0; i < g.in; ++i) dx(n, i) = linear_backward_data_at<T>(g, dy, w, n, i);
  return dx;
}

// dw[o,i] = sum_n dy[n,o] * x[n,i]
template <class Acc, class T>
Acc linear_backward_weights_at(const LinearGeom& g, const Tensor<T>& x, const Tensor<T>& dy,
                               index_t o, index_t i) {
  Acc acc(0);
  for (index_t n = 0; n < g.n; ++n) acc += to_acc<Acc>(dy(n, o)) * to_acc<Acc>(x(n, i));
  return acc;
}

template <class T>
Tensor<T> linear_backward_weights(const LinearGeom& g, const Tensor<T>& x, const Tensor<T>& dy) {
  assert(x.shape() == g.x_shape() && dy.shape() == g.y_shape());
  Tensor<T> dw(g.w_shape());
  for (index_t o = 0; o < g.out; ++o)
    for (index_t i = 0; i < g.in; ++i) dw(o, i) = linear_backward_weights_at<T>(g, x, dy, o, i);
  return dw;
}

// db[o] = sum_n dy[n,o]
template <class Acc, class T>
Acc linear_backward_bias_at(const LinearGeom& g, const Tensor<T>& dy, index_t o) {
  Acc acc(0);
  for (index_t n = 0; n < g.n; ++n) acc += to_acc<Acc>(dy(n, o));
  return acc;
}

template <class T>
Tensor<T> linear_backward_bias(const LinearGeom& g, const Tensor<T>& dy) {
  assert(dy.shape() == g.y_shape());
  Tensor<T> db(g.b_shape());
  for (index_t o = 0; o < g.out; ++o) db[o] = linear_backward_bias_at<T>(g, dy, o);
  return db;
}

}  // namespace tapegrad::ref
