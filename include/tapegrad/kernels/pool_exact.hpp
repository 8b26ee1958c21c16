// Exact avg_pool2d (the one linear pool): the twins of pool_ref.hpp's avg_pool2d_forward and
// avg_pool2d_backward run in the exact engine (kernels/exact.hpp: what the tags mean, and the
// proof; the division by the window size is one more rounding of the reference, covered by the
// bound). Inputs are double tensors; the geometry is validated by the caller
// (make_pool2d_geom). Nearest<T> gives the bits of the reference run on f50 tensors rounded
// once, for any number of threads. max_pool2d has no sums: it stays in the reference kernels.
#pragma once

#include "tapegrad/kernels/exact.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::exact {

// y[n,c,p,q] = (1 / (kernel_h*kernel_w)) * sum over the in-bounds window of x[n,c,h,w]
template <class Tag>
Tensor<typename Tag::type> avg_pool2d_forward(const Pool2dGeom& g, const Tensor<double>& x,
                                              Stats* stats = nullptr);
// dx[n,c,h,w] = (1 / (kernel_h*kernel_w)) * sum of dy[n,c,p,q] over the windows holding (h, w)
template <class Tag>
Tensor<typename Tag::type> avg_pool2d_backward(const Pool2dGeom& g, const Tensor<double>& dy,
                                               Stats* stats = nullptr);

}  // namespace tapegrad::exact
