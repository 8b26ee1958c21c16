// Reference conv2d: the definition, as plain loops, generic over the scalar type T
// (float, double, f50, Var<U>). Each function computes one output element straight from its
// formula (oneDNN ref_convolution style), so every element is a gather and the results do not
// depend on loop order. Geometries come from make_conv2d_geom (validated there); kernels only
// assert. Letters: x (N,C,H,W), w (K,C/G,R,S), b (K), y (N,K,P,Q); G groups,
// Cg = C/G, Kg = K/G; group of output channel k is g = k / Kg.
//
// NOTE: cross-correlation (no kernel flip), zero padding, PyTorch output size.
#pragma once

#include <cassert>
#include <type_traits>

#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::ref {

// y[n,k,p,q] = b[k] + sum_{c'<Cg, r<R, s<S} x[n, g*Cg + c', h, w] * w[k,c',r,s]
//   with h = p*stride_h - pad_h + r*dil_h, w = q*stride_w - pad_w + s*dil_w, g = k / Kg;
//   terms with (h, w) outside the input are zero (zero padding).
// One element, accumulated in Acc from acc = 0 in the order c, r, s, then the bias: the kernel
// below calls it with Acc = T; the exact engine's fallback (kernels/exact.hpp) with Acc = f50 on
// double tensors, which gives the bits of the kernel run on f50 tensors.
template <class Acc, class T>
Acc conv2d_forward_at(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& w,
                      const std::type_identity_t<Tensor<T>>* b, index_t n, index_t k, index_t p,
                      index_t q) {
  const index_t cg = g.c_per_group(), kg = g.k_per_group();
  const auto [sh, sw] = g.prm.stride;
  const auto [ph, pw] = g.prm.pad;
  const auto [dh, dw] = g.prm.dilation;
  const index_t c0 = (k / kg) * cg;
  Acc acc(0);
  for (index_t c = 0; c < cg; ++c)
    for (index_t r = 0; r < g.r; ++r) {
      const index_t h = p * sh - ph + r * dh;
      if (h < 0 || h >= g.h) continue;
      for (index_t s = 0; s < g.s; ++s) {
        const index_t ww = q * sw - pw + s * dw;
        if (ww < 0 || ww >= g.w) continue;
        acc += to_acc<Acc>(x(n, c0 + c, h, ww)) * to_acc<Acc>(w(k, c, r, s));
      }
    }
  if (b) acc += to_acc<Acc>((*b)[k]);
  return acc;
}

template <class T>
Tensor<T> conv2d_forward(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& w,
                         const std::type_identity_t<Tensor<T>>* b) {
  assert(x.shape() == g.x_shape() && w.shape() == g.w_shape());
  assert((b != nullptr) == g.has_bias && (!b || b->shape() == g.b_shape()));
  Tensor<T> y(g.y_shape());
  for (index_t n = 0; n < g.n; ++n)
    for (index_t k = 0; k < g.k; ++k)
      for (index_t p = 0; p < g.p; ++p)
        for (index_t q = 0; q < g.q; ++q)
          y(n, k, p, q) = conv2d_forward_at<T>(g, x, w, b, n, k, p, q);
  return y;
}

// dx[n,c,h,w] = sum_{k in group g, r, s} dy[n,k,p,q] * w[k, c - g*Cg, r, s]
//   over the (r, s) with h = p*stride_h - pad_h + r*dil_h, i.e. p = (h + pad_h - r*dil_h) /
//   stride_h an exact integer in [0, P) (likewise q); g = c / Cg.
//   This is the adjoint of conv2d_forward in x: <conv(x, w), dy> = <x, dx>.
// One element, accumulated in Acc in the order k, r, s (see conv2d_forward_at).
template <class Acc, class T>
Acc conv2d_backward_data_at(const Conv2dGeom& g, const Tensor<T>& dy, const Tensor<T>& w,
                            index_t n, index_t c, index_t h, index_t ww) {
  const index_t cg = g.c_per_group(), kg = g.k_per_group();
  const auto [sh, sw] = g.prm.stride;
  const auto [ph, pw] = g.prm.pad;
  const auto [dh, dw] = g.prm.dilation;
  const index_t grp = c / cg, ci = c - grp * cg;
  Acc acc(0);
  for (index_t k = grp * kg; k < (grp + 1) * kg; ++k)
    for (index_t r = 0; r < g.r; ++r) {
      const index_t ph_num = h + ph - r * dh;  // = p * stride_h
      if (ph_num < 0 || ph_num % sh != 0) continue;
      const index_t p = ph_num / sh;
      if (p >= g.p) continue;
      for (index_t s = 0; s < g.s; ++s) {
        const index_t qw_num = ww + pw - s * dw;  // = q * stride_w
        if (qw_num < 0 || qw_num % sw != 0) continue;
        const index_t q = qw_num / sw;
        if (q >= g.q) continue;
        acc += to_acc<Acc>(dy(n, k, p, q)) * to_acc<Acc>(w(k, ci, r, s));
      }
    }
  return acc;
}

template <class T>
Tensor<T> conv2d_backward_data(const Conv2dGeom& g, const Tensor<T>& dy, const Tensor<T>& w) {
  assert(dy.shape() == g.y_shape() && w.shape() == g.w_shape());
  Tensor<T> dx(g.x_shape());
  for (index_t n = 0; n < g.n; ++n)
    for (index_t c = 0; c < g.c; ++c)
      for (index_t h = 0; h < g.h; ++h)
        for (index_t ww = 0; ww < g.w; ++ww)
          dx(n, c, h, ww) = conv2d_backward_data_at<T>(g, dy, w, n, c, h, ww);
  return dx;
}

// dw[k,c',r,s] = sum_{n,p,q} dy[n,k,p,q] * x[n, g*Cg + c', h, w]
//   with h = p*stride_h - pad_h + r*dil_h, w = q*stride_w - pad_w + s*dil_w (in-bounds terms
//   only), g = k / Kg.  Adjoint in w: <conv(x, w), dy> = <w, dw>.
// One element, accumulated in Acc in the order n, p, q (see conv2d_forward_at).
template <class Acc, class T>
Acc conv2d_backward_weights_at(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& dy,
                               index_t k, index_t c, index_t r, index_t s) {
  const index_t cg = g.c_per_group(), kg = g.k_per_group();
  const auto [sh, sw] = g.prm.stride;
  const auto [ph, pw] = g.prm.pad;
  const auto [dh, dw] = g.prm.dilation;
  const index_t c0 = (k / kg) * cg;
  Acc acc(0);
  for (index_t n = 0; n < g.n; ++n)
    for (index_t p = 0; p < g.p; ++p) {
      const index_t h = p * sh - ph + r * dh;
      if (h < 0 || h >= g.h) continue;
      for (index_t q = 0; q < g.q; ++q) {
        const index_t ww = q * sw - pw + s * dw;
        if (ww < 0 || ww >= g.w) continue;
        acc += to_acc<Acc>(dy(n, k, p, q)) * to_acc<Acc>(x(n, c0 + c, h, ww));
      }
    }
  return acc;
}

template <class T>
Tensor<T> conv2d_backward_weights(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& dy) {
  assert(x.shape() == g.x_shape() && dy.shape() == g.y_shape());
  Tensor<T> dwt(g.w_shape());
  for (index_t k = 0; k < g.k; ++k)
    for (index_t c = 0; c < g.c_per_group(); ++c)
      for (index_t r = 0; r < g.r; ++r)
        for (index_t s = 0; s < g.s; ++s)
          dwt(k, c, r, s) = conv2d_backward_weights_at<T>(g, x, dy, k, c, r, s);
  return dwt;
}

// db[k] = sum_{n,p,q} dy[n,k,p,q], accumulated in Acc in the order n, p, q.
template <class Acc, class T>
Acc conv2d_backward_bias_at(const Conv2dGeom& g, const Tensor<T>& dy, index_t k) {
  Acc acc(0);
  for (index_t n = 0; n < g.n; ++n)
    for (index_t p = 0; p < g.p; ++p)
      for (index_t q = 0; q < g.q; ++q) acc += to_acc<Acc>(dy(n, k, p, q));
  return acc;
}

template <class T>
Tensor<T> conv2d_backward_bias(const Conv2dGeom& g, const Tensor<T>& dy) {
  assert(dy.shape() == g.y_shape());
  Tensor<T> db(g.b_shape());
  for (index_t k = 0; k < g.k; ++k) db[k] = conv2d_backward_bias_at<T>(g, dy, k);
  return db;
}

}  // namespace tapegrad::ref
