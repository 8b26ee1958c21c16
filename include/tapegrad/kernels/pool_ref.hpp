// Reference 2-d pooling, generic over T (float, double, f50, Var<U>). x (N,C,H,W) -> y (N,C,P,Q).
// Geometries come from make_pool2d_geom (validated there: pad <= kernel/2, so every window
// holds at least one real input element); kernels only assert. Window of output (p, q):
//   h = p*stride_h - pad_h + i (i < kernel_h),  w = q*stride_w - pad_w + j (j < kernel_w).
#pragma once

#include <cassert>

#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::ref {

namespace detail {
// Flat index into x of the maximum of window (n, c, p, q).
// NOTE: ties go to the first maximum in row-major window order (strict >), and padding never
// wins (padded positions are skipped, not treated as -inf or 0).
template <class T>
index_t max_pool2d_argmax(const Pool2dGeom& g, const Tensor<T>& x, index_t n, index_t c,
                          index_t p, index_t q) {
  const index_t h0 = p * g.prm.stride[0] - g.prm.pad[0];
  const index_t w0 = q * g.prm.stride[1] - g.prm.pad[1];
  index_t best = -1;
  for (index_t i = 0; i < g.prm.kernel[0]; ++i) {
    const index_t h = h0 + i;
    if (h < 0 || h >= g.h) continue;
    for (index_t j = 0; j < g.prm.kernel[1]; ++j) {
      const index_t w = w0 + j;
      if (w < 0 || w >= g.w) continue;
      const index_t at = ((n * g.c + c) * g.h + h) * g.w + w;
      if (best < 0 || x[at] > x[best]) best = at;
    }
  }
  assert(best >= 0);  // guaranteed by pad <= kernel/2
  return best;
}
}  // namespace detail

// y[n,c,p,q] = max over the in-bounds window elements x[n,c,h,w]
template <class T>
Tensor<T> max_pool2d_forward(const Pool2dGeom& g, const Tensor<T>& x) {
  assert(x.shape() == g.x_shape());
  Tensor<T> y(g.y_shape());
  for (index_t n = 0; n < g.n; ++n)
    for (index_t c = 0; c < g.c; ++c)
      for (index_t p = 0; p < g.p; ++p)
        for (index_t q = 0; q < g.q; ++q)
          y(n, c, p, q) = x[detail::max_pool2d_argmax(g, x, n, c, p, q)];
  return y;
}

// dx[n,c,h,w] = sum of dy[n,c,p,q] over the windows (p, q) whose argmax is (h, w)
//   (argmax as in the forward pass: first maximum, padding never wins). Written as a scatter
//   over outputs in a fixed order, so it is deterministic; overlapping windows add up.
template <class T>
Tensor<T> max_pool2d_backward(const Pool2dGeom& g, const Tensor<T>& x, const Tensor<T>& dy) {
  assert(x.shape() == g.x_shape() && dy.shape() == g.y_shape());
  Tensor<T> dx(g.x_shape());
  for (index_t n = 0; n < g.n; ++n)
    for (index_t c = 0; c < g.c; ++c)
      for (index_t p = 0; p < g.p; ++p)
        for (index_t q = 0; q < g.q; ++q)
          dx[detail::max_pool2d_argmax(g, x, n, c, p, q)] += dy(n, c, p, q);
  return dx;
}

// y[n,c,p,q] = (1 / (kernel_h*kernel_w)) * sum over the in-bounds window elements x[n,c,h,w]
// NOTE: count_include_pad=True (PyTorch's default): padded positions count as zeros, so the
// divisor is always kernel_h*kernel_w.
// One element: the window summed in Acc from acc = 0 in row-major order, then divided once;
// the kernel calls it with Acc = T, the exact engine's fallback with Acc = f50 on double tensors.
template <class Acc, class T>
Acc avg_pool2d_forward_at(const Pool2dGeom& g, const Tensor<T>& x, index_t n, index_t c,
                          index_t p, index_t q) {
  const auto [kh, kw] = g.prm.kernel;
  const auto [sh, sw] = g.prm.stride;
  const auto [ph, pw] = g.prm.pad;
  Acc acc(0);
  for (index_t i = 0; i < kh; ++i) {
    const index_t h = p * sh - ph + i;
    if (h < 0 || h >= g.h) continue;
    for (index_t j = 0; j < kw; ++j) {
      const index_t w = q * sw - pw + j;
      if (w < 0 || w >= g.w) continue;
      acc += to_acc<Acc>(x(n, c, h, w));
    }
  }
  return acc / Acc(double(kh * kw));
}

template <class T>
Tensor<T> avg_pool2d_forward(const Pool2dGeom& g, const Tensor<T>& x) {
  assert(x.shape() == g.x_shape());
  Tensor<T> y(g.y_shape());
  for (index_t n = 0; n < g.n; ++n)
    for (index_t c = 0; c < g.c; ++c)
      for (index_t p = 0; p < g.p; ++p)
        for (index_t q = 0; q < g.q; ++q)
          y(n, c, p, q) = avg_pool2d_forward_at<T>(g, x, n, c, p, q);
  return y;
}

// dx[n,c,h,w] = (1 / (kernel_h*kernel_w)) * sum of dy[n,c,p,q] over the windows containing
//   (h, w): p = (h + pad_h - i) / stride_h an exact integer in [0, P) for some i < kernel_h
//   (likewise q). A gather over dx; the adjoint of avg_pool2d_forward.
template <class Acc, class T>
Acc avg_pool2d_backward_at(const Pool2dGeom& g, const Tensor<T>& dy, index_t n, index_t c,
                           index_t h, index_t w) {
  const auto [kh, kw] = g.prm.kernel;
  const auto [sh, sw] = g.prm.stride;
  const auto [ph, pw] = g.prm.pad;
  Acc acc(0);
  for (index_t i = 0; i < kh; ++i) {
    const index_t ph_num = h + ph - i;  // = p * stride_h
    if (ph_num < 0 || ph_num % sh != 0 || ph_num / sh >= g.p) continue;
    for (index_t j = 0; j < kw; ++j) {
      const index_t qw_num = w + pw - j;  // = q * stride_w
      if (qw_num < 0 || qw_num % sw != 0 || qw_num / sw >= g.q) continue;
      acc += to_acc<Acc>(dy(n, c, ph_num / sh, qw_num / sw));
    }
  }
  return acc / Acc(double(kh * kw));
}

template <class T>
Tensor<T> avg_pool2d_backward(const Pool2dGeom& g, const Tensor<T>& dy) {
  assert(dy.shape() == g.y_shape());
  Tensor<T> dx(g.x_shape());
  for (index_t n = 0; n < g.n; ++n)
    for (index_t c = 0; c < g.c; ++c)
      for (index_t h = 0; h < g.h; ++h)
        for (index_t w = 0; w < g.w; ++w)
          dx(n, c, h, w) = avg_pool2d_backward_at<T>(g, dy, n, c, h, w);
  return dx;
}

}  // namespace tapegrad::ref
