// Fast 2-d pooling (float and double): the reference loops of pool_ref.hpp, parallel over the
// (n, c) planes with the bounds checks hoisted out of interior windows; the 2x2, stride 2,
// unpadded max pool on vectors of windows (its comparisons as selects, in the same order). Same names and meaning
// as the reference twins; the geometry is validated by the caller (make_pool2d_geom).
//
// What differs from the reference: nothing in the arithmetic. Each plane is owned by one thread
// and computed in the reference's order (window elements row-major; max-pool backward adds
// into dx in (p, q) order), so results are bitwise identical to the reference in the same
// precision, for any number of threads.
// NOTE: max ties go to the first maximum in row-major window order; padding never wins.
// NOTE: avg pooling divides by kernel_h*kernel_w (count_include_pad=True).
#pragma once

#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::fast {

Tensor<float> max_pool2d_forward(const Pool2dGeom& g, const Tensor<float>& x);
Tensor<double> max_pool2d_forward(const Pool2dGeom& g, const Tensor<double>& x);
void max_pool2d_forward_into(const Pool2dGeom& g, const Tensor<float>& x, Tensor<float>& y);
void max_pool2d_forward_into(const Pool2dGeom& g, const Tensor<double>& x, Tensor<double>& y);

// dx: dy[n,c,p,q] added at the argmax of window (p, q).
Tensor<float> max_pool2d_backward(const Pool2dGeom& g, const Tensor<float>& x,
                                  const Tensor<float>& dy);
Tensor<double> max_pool2d_backward(const Pool2dGeom& g, const Tensor<double>& x,
                                   const Tensor<double>& dy);
void max_pool2d_backward_into(const Pool2dGeom& g, const Tensor<float>& x,
                              const Tensor<float>& dy, Tensor<float>& dx);
void max_pool2d_backward_into(const Pool2dGeom& g, const Tensor<double>& x,
                              const Tensor<double>& dy, Tensor<double>& dx);

Tensor<float> avg_pool2d_forward(const Pool2dGeom& g, const Tensor<float>& x);
Tensor<double> avg_pool2d_forward(const Pool2dGeom& g, const Tensor<double>& x);
void avg_pool2d_forward_into(const Pool2dGeom& g, const Tensor<float>& x, Tensor<float>& y);
void avg_pool2d_forward_into(const Pool2dGeom& g, const Tensor<double>& x, Tensor<double>& y);

Tensor<float> avg_pool2d_backward(const Pool2dGeom& g, const Tensor<float>& dy);
Tensor<double> avg_pool2d_backward(const Pool2dGeom& g, const Tensor<double>& dy);
void avg_pool2d_backward_into(const Pool2dGeom& g, const Tensor<float>& dy, Tensor<float>& dx);
void avg_pool2d_backward_into(const Pool2dGeom& g, const Tensor<double>& dy,
                              Tensor<double>& dx);

}  // namespace tapegrad::fast
