// Exact conv2d: the twins of conv2d_ref.hpp run in the exact engine (kernels/exact.hpp: what
// the tags mean, and the proof). Same names and formulas as the reference; inputs are double
// tensors (float data converts to double exactly); the geometry is validated by the caller
// (make_conv2d_geom), the kernels only assert the shapes.
//
//   auto y  = exact::conv2d_forward<exact::Nearest<double>>(g, x, w, &b, &stats);
//   auto s  = exact::conv2d_forward<exact::AbsSumUp>(g, x, w, &b);   // S >= sum |x w| + |b|
//
// Nearest<T> gives the bits of ref::conv2d_forward on f50 tensors rounded once by
// io::round_to_double / round_to_float, for every geometry (stride, padding, dilation,
// groups) and every finite input; non-finite inputs are std::domain_error. OpenMP-parallel over
// output tiles; the result is the same for any number of threads. What differs from the
// reference, and why: the inputs are scaled by powers of two and laid out zero-padded so that
// the micro-kernels run without bounds checks (forward and backward-data gather one output row
// per vector, backward-data over dy spread out by the stride, so a strided backward-data does
// stride_h*stride_w times the arithmetic; backward-weights and backward-bias sum each element in
// vector lanes along the output rows). Tags: Nearest<float>, Nearest<double>, AbsSumUp, Precise.
#pragma once

#include "tapegrad/kernels/exact.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::exact {

// y[n,k,p,q] = b[k] + sum_{c,r,s} x[n, g*Cg + c, p*sh - ph + r*dh, q*sw - pw + s*dw] * w[k,c,r,s]
template <class Tag>
Tensor<typename Tag::type> conv2d_forward(const Conv2dGeom& g, const Tensor<double>& x,
                                          const Tensor<double>& w, const Tensor<double>* b,
                                          Stats* stats = nullptr);

// dx = the vector-Jacobian product of conv2d in x (ref::conv2d_backward_data).
template <class Tag>
Tensor<typename Tag::type> conv2d_backward_data(const Conv2dGeom& g, const Tensor<double>& dy,
                                                const Tensor<double>& w, Stats* stats = nullptr);

// dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x[n, g*Cg + c, p*sh - ph + r*dh, q*sw - pw + s*dw]
template <class Tag>
Tensor<typename Tag::type> conv2d_backward_weights(const Conv2dGeom& g, const Tensor<double>& x,
                                                   const Tensor<double>& dy,
                                                   Stats* stats = nullptr);

// db[k] = sum_{n,p,q} dy[n,k,p,q]
template <class Tag>
Tensor<typename Tag::type> conv2d_backward_bias(const Conv2dGeom& g, const Tensor<double>& dy,
                                                Stats* stats = nullptr);

}  // namespace tapegrad::exact
