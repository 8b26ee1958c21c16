// Activation and flatten dispatch: the one place the op tape and the layers call. Same names and
// signatures as ref:: (kernels/activation_ref.hpp; validators check_softmax, check_flatten,
// check_activation_backward live there too). Every T forwards to the reference today; float and
// double may go to fast:: at the marked lines once such kernels exist.
#pragma once

#include <type_traits>

#include "tapegrad/kernels/activation_ref.hpp"

namespace tapegrad::kernels {

template <class T>
Tensor<T> relu_forward(const Tensor<T>& x) {
  // fast: float/double -> fast::relu_forward
  return ref::relu_forward(x);
}

template <class T>
Tensor<T> relu_backward(const Tensor<T>& x, const Tensor<T>& dy) {
  // fast: float/double -> fast::relu_backward
  return ref::relu_backward(x, dy);
}

template <class T>
Tensor<T> sigmoid_forward(const Tensor<T>& x) {
  // fast: float/double -> fast::sigmoid_forward
  return ref::sigmoid_forward(x);
}

template <class T>
Tensor<T> sigmoid_backward(const Tensor<T>& y, const Tensor<T>& dy) {
  // fast: float/double -> fast::sigmoid_backward
  return ref::sigmoid_backward(y, dy);
}

template <class T>
Tensor<T> tanh_forward(const Tensor<T>& x) {
  // fast: float/double -> fast::tanh_forward
  return ref::tanh_forward(x);
}

template <class T>
Tensor<T> tanh_backward(const Tensor<T>& y, const Tensor<T>& dy) {
  // fast: float/double -> fast::tanh_backward
  return ref::tanh_backward(y, dy);
}

template <class T>
Tensor<T> softmax_forward(const Tensor<T>& x) {
  // fast: float/double -> fast::softmax_forward
  return ref::softmax_forward(x);
}

template <class T>
Tensor<T> softmax_backward(const Tensor<T>& y, const Tensor<T>& dy) {
  // fast: float/double -> fast::softmax_backward
  return ref::softmax_backward(y, dy);
}

template <class T>
Tensor<T> log_softmax_forward(const Tensor<T>& x) {
  // fast: float/double -> fast::log_softmax_forward
  return ref::log_softmax_forward(x);
}

template <class T>
Tensor<T> log_softmax_backward(const Tensor<T>& y, const Tensor<T>& dy) {
  // fast: float/double -> fast::log_softmax_backward
  return ref::log_softmax_backward(y, dy);
}

template <class T>
Tensor<T> flatten_forward(const Tensor<T>& x) {
  // fast: float/double -> fast::flatten_forward
  return ref::flatten_forward(x);
}

template <class T>
Tensor<T> flatten_backward(const Shape& x_shape, const Tensor<T>& dy) {
  // fast: float/double -> fast::flatten_backward
  return ref::flatten_backward(x_shape, dy);
}

}  // namespace tapegrad::kernels
