// Fast linear (float and double): OpenMP-parallel, register-blocked GEMMs on the same
// run-time-dispatched micro-kernels as fast conv2d. Same names and meaning as the reference
// twins in linear_ref.hpp; the geometry is validated by the caller (make_linear_geom).
//
// What differs from the reference, and why: each output is computed by a register tile of a
// packed GEMM, so its sum runs over fixed blocks of 256 terms of the reduction (each block one
// FMA chain, blocks added in order; the bias first). That order is fixed by the shape, never
// by the thread count: a thread owns its output tiles, so results are bitwise identical for
// any number of threads, and agree with the reference within gamma(m) * sum|terms|.
#pragma once

#include "tapegrad/kernels/activation_kind.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::fast {

// y[n,o] = b[o] + sum_i x[n,i] * w[o,i]; with an activation, y then goes through it
// (fast::activate: the same bits as the activation's own kernel on the plain output).
Tensor<float> linear_forward(const LinearGeom& g, const Tensor<float>& x, const Tensor<float>& w,
                             const Tensor<float>* b, Activation act = Activation::none);
Tensor<double> linear_forward(const LinearGeom& g, const Tensor<double>& x,
                              const Tensor<double>& w, const Tensor<double>* b,
                              Activation act = Activation::none);
void linear_forward_into(const LinearGeom& g, const Tensor<float>& x, const Tensor<float>& w,
                         const Tensor<float>* b, Tensor<float>& y,
                         Activation act = Activation::none);
void linear_forward_into(const LinearGeom& g, const Tensor<double>& x, const Tensor<double>& w,
                         const Tensor<double>* b, Tensor<double>& y,
                         Activation act = Activation::none);

// dx[n,i] = sum_o dy[n,o] * w[o,i]
Tensor<float> linear_backward_data(const LinearGeom& g, const Tensor<float>& dy,
                                   const Tensor<float>& w);
Tensor<double> linear_backward_data(const LinearGeom& g, const Tensor<double>& dy,
                                    const Tensor<double>& w);
void linear_backward_data_into(const LinearGeom& g, const Tensor<float>& dy,
                               const Tensor<float>& w, Tensor<float>& dx);
void linear_backward_data_into(const LinearGeom& g, const Tensor<double>& dy,
                               const Tensor<double>& w, Tensor<double>& dx);

// dw[o,i] = sum_n dy[n,o] * x[n,i]
Tensor<float> linear_backward_weights(const LinearGeom& g, const Tensor<float>& x,
                                      const Tensor<float>& dy);
Tensor<double> linear_backward_weights(const LinearGeom& g, const Tensor<double>& x,
                                       const Tensor<double>& dy);
void linear_backward_weights_into(const LinearGeom& g, const Tensor<float>& x,
                                  const Tensor<float>& dy, Tensor<float>& dw);
void linear_backward_weights_into(const LinearGeom& g, const Tensor<double>& x,
                                  const Tensor<double>& dy, Tensor<double>& dw);

// db[o] = sum_n dy[n,o], summed in increasing n (the reference's order: same bits).
Tensor<float> linear_backward_bias(const LinearGeom& g, const Tensor<float>& dy);
Tensor<double> linear_backward_bias(const LinearGeom& g, const Tensor<double>& dy);
void linear_backward_bias_into(const LinearGeom& g, const Tensor<float>& dy, Tensor<float>& db);
void linear_backward_bias_into(const LinearGeom& g, const Tensor<double>& dy,
                               Tensor<double>& db);

}  // namespace tapegrad::fast
