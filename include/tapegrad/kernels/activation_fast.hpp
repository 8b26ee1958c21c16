// Fast activations (float and double): the reference formulas of activation_ref.hpp, computed
// without the reference's per-element container building, vectorized where the operation is
// exact (relu) and OpenMP-parallel over elements (element-wise ops) or over the (n, ...)
// slices along dim 1 (softmax, log_softmax). Same names and meaning as the reference twins;
// shapes are validated by the caller (check_softmax, check_activation_backward).
//
// What differs from the reference: nothing in the arithmetic. Every element is computed by the
// reference's expression in the reference's order with the same libm calls (exp, log, tanh),
// and the file is compiled without floating-point contraction (-ffp-contract=off, as the
// reference is compiled for baseline x86-64, which has no fused multiply-add), so the results
// are bitwise identical to the reference in the same precision, for any number of threads.
// NOTE: relu'(0) = 0, as the reference.
// The *_into variants write into a caller's tensor (reshaped to the output shape if it has
// another), so a training loop can reuse buffers.
#pragma once

#include "tapegrad/kernels/activation_kind.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::fast {

#define TAPEGRAD_ACTIVATION_FAST(T)                                                        \
  /* y = max(x, 0) */                                                                      \
  Tensor<T> relu_forward(const Tensor<T>& x);                                              \
  void relu_forward_into(const Tensor<T>& x, Tensor<T>& y);                                \
  /* dx = dy * [x > 0] */                                                                  \
  Tensor<T> relu_backward(const Tensor<T>& x, const Tensor<T>& dy);                        \
  void relu_backward_into(const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dx);         \
  /* y = 1 / (1 + exp(-x)), stably; dx = dy * y * (1 - y) */                               \
  Tensor<T> sigmoid_forward(const Tensor<T>& x);                                           \
  void sigmoid_forward_into(const Tensor<T>& x, Tensor<T>& y);                             \
  Tensor<T> sigmoid_backward(const Tensor<T>& y, const Tensor<T>& dy);                     \
  void sigmoid_backward_into(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx);      \
  /* y = tanh(x); dx = dy * (1 - y^2) */                                                   \
  Tensor<T> tanh_forward(const Tensor<T>& x);                                              \
  void tanh_forward_into(const Tensor<T>& x, Tensor<T>& y);                                \
  Tensor<T> tanh_backward(const Tensor<T>& y, const Tensor<T>& dy);                        \
  void tanh_backward_into(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx);         \
  /* softmax along dim 1 (max subtracted); dx = y * (dy - sum_j y[j] dy[j]) */             \
  Tensor<T> softmax_forward(const Tensor<T>& x);                                           \
  void softmax_forward_into(const Tensor<T>& x, Tensor<T>& y);                             \
  Tensor<T> softmax_backward(const Tensor<T>& y, const Tensor<T>& dy);                     \
  void softmax_backward_into(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx);      \
  /* log_softmax along dim 1 (log-sum-exp); dx = dy - exp(y) * sum_j dy[j] */              \
  Tensor<T> log_softmax_forward(const Tensor<T>& x);                                       \
  void log_softmax_forward_into(const Tensor<T>& x, Tensor<T>& y);                         \
  Tensor<T> log_softmax_backward(const Tensor<T>& y, const Tensor<T>& dy);                 \
  void log_softmax_backward_into(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx);

TAPEGRAD_ACTIVATION_FAST(float)
TAPEGRAD_ACTIVATION_FAST(double)
#undef TAPEGRAD_ACTIVATION_FAST

// y[i] = a(y[i]) for i < n, in place on the calling thread, by the same element code as
// relu_forward, sigmoid_forward and tanh_forward (so the same bits): the epilogue of a fused
// conv2d or linear, applied to a block of outputs while it is in cache. `none`: nothing.
void activate(Activation a, float* y, index_t n);
void activate(Activation a, double* y, index_t n);
// The same on a whole tensor, in place, OpenMP-parallel over chunks as the element-wise ops.
void activate(Activation a, Tensor<float>& y);
void activate(Activation a, Tensor<double>& y);

}  // namespace tapegrad::fast
