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
template <class T>
Tensor<T> linear_forward(const LinearGeom& g, const Tensor<T>& x, const Tensor<T>& w,
                         const std::type_identity_t<Tensor<T>>* b) {
  assert(x.shape() == g.x_shape() && w.shape() == g.w_shape());
  assert((b != nullptr) == g.has_bias && (!b || b->shape() == g.b_shape()));
  Tensor<T> y(g.y_shape());
  for (index_t n = 0; n < g.n; ++n)
    for (index_t o = 0; o < g.out; ++o) {
      T acc(0);
      for (index_t i = 0; i < g.in; ++i) acc += x(n, i) * w(o, i);
      if (b) acc += (*b)[o];
      y(n, o) = acc;
    }
  return y;
}

// dx[n,i] = sum_o dy[n,o] * w[o,i]
template <class T>
Tensor<T> linear_backward_data(const LinearGeom& g, const Tensor<T>& dy, const Tensor<T>& w) {
  assert(dy.shape() == g.y_shape() && w.shape() == g.w_shape());
  Tensor<T> dx(g.x_shape());
  for (index_t n = 0; n < g.n; ++n)
    for (index_t i = 0; i < g.in; ++i) {
      T acc(0);
      for (index_t o = 0; o < g.out; ++o) acc += dy(n, o) * w(o, i);
      dx(n, i) = acc;
    }
  return dx;
}

// dw[o,i] = sum_n dy[n,o] * x[n,i]
template <class T>
Tensor<T> linear_backward_weights(const LinearGeom& g, const Tensor<T>& x, const Tensor<T>& dy) {
  assert(x.shape() == g.x_shape() && dy.shape() == g.y_shape());
  Tensor<T> dw(g.w_shape());
  for (index_t o = 0; o < g.out; ++o)
    for (index_t i = 0; i < g.in; ++i) {
      T acc(0);
      for (index_t n = 0; n < g.n; ++n) acc += dy(n, o) * x(n, i);
      dw(o, i) = acc;
    }
  return dw;
}

// db[o] = sum_n dy[n,o]
template <class T>
Tensor<T> linear_backward_bias(const LinearGeom& g, const Tensor<T>& dy) {
  assert(dy.shape() == g.y_shape());
  Tensor<T> db(g.b_shape());
  for (index_t o = 0; o < g.out; ++o) {
    T acc(0);
    for (index_t n = 0; n < g.n; ++n) acc += dy(n, o);
    db[o] = acc;
  }
  return db;
}

}  // namespace tapegrad::ref
