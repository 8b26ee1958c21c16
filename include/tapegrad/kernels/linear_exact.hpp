// Exact linear: the twins of linear_ref.hpp run in the exact engine (kernels/exact.hpp: what
// the tags mean, and the proof). Same names and formulas as the reference; inputs are double
// tensors (float data converts exactly); the geometry is validated by the caller
// (make_linear_geom), the kernels only assert the shapes. Nearest<T> gives the bits of the
// reference run on f50 tensors rounded once, for any number of threads.
//
// What differs from the reference, and why: forward sums each output in vector lanes along the
// input features (both rows are contiguous); backward-data, backward-weights and backward-bias
// compute a vector of adjacent outputs at once, broadcasting dy. Tags: Nearest<float>,
// Nearest<double>, AbsSumUp, Precise.
#pragma once

#include "tapegrad/kernels/exact.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::exact {

// y[n,o] = b[o] + sum_i x[n,i] * w[o,i]
template <class Tag>
Tensor<typename Tag::type> linear_forward(const LinearGeom& g, const Tensor<double>& x,
                                          const Tensor<double>& w, const Tensor<double>* b,
                                          Stats* stats = nullptr);
// dx[n,i] = sum_o dy[n,o] * w[o,i]
template <class Tag>
Tensor<typename Tag::type> linear_backward_data(const LinearGeom& g, const Tensor<double>& dy,
                                                const Tensor<double>& w, Stats* stats = nullptr);
// dw[o,i] = sum_n dy[n,o] * x[n,i]
template <class Tag>
Tensor<typename Tag::type> linear_backward_weights(const LinearGeom& g, const Tensor<double>& x,
                                                   const Tensor<double>& dy,
                                                   Stats* stats = nullptr);
// db[o] = sum_n dy[n,o]
template <class Tag>
Tensor<typename Tag::type> linear_backward_bias(const LinearGeom& g, const Tensor<double>& dy,
                                                Stats* stats = nullptr);

}  // namespace tapegrad::exact
