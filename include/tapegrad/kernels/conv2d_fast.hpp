// Fast conv2d (float and double): OpenMP-parallel, register-blocked, vectorized for the CPU it
// runs on (AVX-512, AVX2+FMA or baseline x86-64, chosen at run time). Same names and meaning as
// the reference twins in conv2d_ref.hpp; the geometry is validated by the caller
// (make_conv2d_geom), the kernels only assert.
//
// What differs from the reference, and why:
//   - forward and backward-data are GEMMs over tiles of lowered input (im2col for forward; for
//     backward-data the matching gather of dy, or w^T dy followed by col2im when strided) so
//     that a micro-kernel keeps an 8 x 48 (float, AVX-512) tile of outputs in registers;
//     backward-weights is a tiled dot product along the output pixels.
//   - so the summation order differs from the reference's (agreement is within the derived
//     bound gamma(K) * sum|terms|), but it is FIXED by the shape: a thread owns its outputs, the
//     reduction is blocked by the shape alone and combined in a fixed order, so the results are
//     bitwise identical for any number of threads.
// The *_into variants write into a caller's tensor (reshaped to the output shape if it has
// another) so a training loop can reuse buffers; workspaces are per-thread and reused.
#pragma once

#include <string_view>

#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::fast {

// y = conv2d(x, w, b): y[n,k,p,q] = b[k] + sum_{c,r,s} x[n, g*C/G + c, p*sh - ph + r*dh,
// q*sw - pw + s*dw] * w[k,c,r,s] (zero outside x), g = k / (K/G).
Tensor<float> conv2d_forward(const Conv2dGeom& g, const Tensor<float>& x, const Tensor<float>& w,
                             const Tensor<float>* b);
Tensor<double> conv2d_forward(const Conv2dGeom& g, const Tensor<double>& x,
                              const Tensor<double>& w, const Tensor<double>* b);
void conv2d_forward_into(const Conv2dGeom& g, const Tensor<float>& x, const Tensor<float>& w,
                         const Tensor<float>* b, Tensor<float>& y);
void conv2d_forward_into(const Conv2dGeom& g, const Tensor<double>& x, const Tensor<double>& w,
                         const Tensor<double>* b, Tensor<double>& y);

// dx = conv2d_backward_data(dy, w): the vector-Jacobian product of y with respect to x.
Tensor<float> conv2d_backward_data(const Conv2dGeom& g, const Tensor<float>& dy,
                                   const Tensor<float>& w);
Tensor<double> conv2d_backward_data(const Conv2dGeom& g, const Tensor<double>& dy,
                                    const Tensor<double>& w);
void conv2d_backward_data_into(const Conv2dGeom& g, const Tensor<float>& dy,
                               const Tensor<float>& w, Tensor<float>& dx);
void conv2d_backward_data_into(const Conv2dGeom& g, const Tensor<double>& dy,
                               const Tensor<double>& w, Tensor<double>& dx);

// dw = conv2d_backward_weights(x, dy).
Tensor<float> conv2d_backward_weights(const Conv2dGeom& g, const Tensor<float>& x,
                                      const Tensor<float>& dy);
Tensor<double> conv2d_backward_weights(const Conv2dGeom& g, const Tensor<double>& x,
                                       const Tensor<double>& dy);
void conv2d_backward_weights_into(const Conv2dGeom& g, const Tensor<float>& x,
                                  const Tensor<float>& dy, Tensor<float>& dw);
void conv2d_backward_weights_into(const Conv2dGeom& g, const Tensor<double>& x,
                                  const Tensor<double>& dy, Tensor<double>& dw);

// db[k] = sum_{n,p,q} dy[n,k,p,q], summed in n-major, then p, then q order.
Tensor<float> conv2d_backward_bias(const Conv2dGeom& g, const Tensor<float>& dy);
Tensor<double> conv2d_backward_bias(const Conv2dGeom& g, const Tensor<double>& dy);
void conv2d_backward_bias_into(const Conv2dGeom& g, const Tensor<float>& dy, Tensor<float>& db);
void conv2d_backward_bias_into(const Conv2dGeom& g, const Tensor<double>& dy,
                               Tensor<double>& db);

// The instruction set the fast kernels use: "avx512", "avx2" or "generic".
const char* isa();
// Forces an instruction set ("avx512", "avx2", "generic", or "best") for tests and benches;
// throws std::invalid_argument if the CPU lacks it. Not to be called while kernels run.
void set_isa(std::string_view name);

}  // namespace tapegrad::fast
