// Activation and flatten dispatch: the one place the op tape and the layers call. Same names and
// signatures as ref:: (kernels/activation_ref.hpp; validators check_softmax, check_flatten,
// check_activation_backward live there too). float and double go to the fast kernels
// (fast::, kernels/activation_fast.hpp: the reference's bits, parallel and without per-element
// allocation); every other T (f50, Var<U>) to the reference. flatten is a reshape for every T.
#pragma once

#include <type_traits>

#include "tapegrad/kernels/activation_fast.hpp"
#include "tapegrad/kernels/activation_kind.hpp"
#include "tapegrad/kernels/activation_ref.hpp"

namespace tapegrad::kernels {

template <class T>
Tensor<T> relu_forward(const Tensor<T>& x) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::relu_forward(x);  // float/double: the fast kernel
  return ref::relu_forward(x);
}

template <class T>
Tensor<T> relu_backward(const Tensor<T>& x, const Tensor<T>& dy) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::relu_backward(x, dy);  // float/double: the fast kernel
  return ref::relu_backward(x, dy);
}

template <class T>
Tensor<T> sigmoid_forward(const Tensor<T>& x) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::sigmoid_forward(x);  // float/double: the fast kernel
  return ref::sigmoid_forward(x);
}

template <class T>
Tensor<T> sigmoid_backward(const Tensor<T>& y, const Tensor<T>& dy) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::sigmoid_backward(y, dy);  // float/double: the fast kernel
  return ref::sigmoid_backward(y, dy);
}

template <class T>
Tensor<T> tanh_forward(const Tensor<T>& x) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::tanh_forward(x);  // float/double: the fast kernel
  return ref::tanh_forward(x);
}

template <class T>
Tensor<T> tanh_backward(const Tensor<T>& y, const Tensor<T>& dy) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::tanh_backward(y, dy);  // float/double: the fast kernel
  return ref::tanh_backward(y, dy);
}

template <class T>
Tensor<T> softmax_forward(const Tensor<T>& x) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::softmax_forward(x);  // float/double: the fast kernel
  return ref::softmax_forward(x);
}

template <class T>
Tensor<T> softmax_backward(const Tensor<T>& y, const Tensor<T>& dy) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::softmax_backward(y, dy);  // float/double: the fast kernel
  return ref::softmax_backward(y, dy);
}

template <class T>
Tensor<T> log_softmax_forward(const Tensor<T>& x) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::log_softmax_forward(x);  // float/double: the fast kernel
  return ref::log_softmax_forward(x);
}

template <class T>
Tensor<T> log_softmax_backward(const Tensor<T>& y, const Tensor<T>& dy) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::log_softmax_backward(y, dy);  // float/double: the fast kernel
  return ref::log_softmax_backward(y, dy);
}

// The epilogue of a fused conv2d or linear (kernels/activation_kind.hpp) on the plain op's
// output z, and its VJP from the output y = a(z); `none` passes z and dy through.
template <class T>
Tensor<T> activation_forward(Activation a, Tensor<T> z) {
  switch (a) {
    case Activation::none: return z;
    case Activation::relu: return relu_forward(z);
    case Activation::sigmoid: return sigmoid_forward(z);
    case Activation::tanh: return tanh_forward(z);
  }
  return z;
}
template <class T>
Tensor<T> activation_backward(Activation a, const Tensor<T>& y, const Tensor<T>& dy) {
  switch (a) {
    case Activation::none: return dy;
    case Activation::relu: return relu_backward(y, dy);  // [y > 0] = [z > 0] (NaN: both 0)
    case Activation::sigmoid: return sigmoid_backward(y, dy);
    case Activation::tanh: return tanh_backward(y, dy);
  }
  return dy;
}

template <class T>
Tensor<T> flatten_forward(const Tensor<T>& x) {
  // a reshape (one copy of the elements) for every T
  return ref::flatten_forward(x);
}

template <class T>
Tensor<T> flatten_backward(const Shape& x_shape, const Tensor<T>& dy) {
  // a reshape (one copy of the elements) for every T
  return ref::flatten_backward(x_shape, dy);
}

}  // namespace tapegrad::kernels
