// conv2d dispatch: the one place the op tape and the layers call. Same names and signatures
// as ref:: (kernels/conv2d_ref.hpp). Every T forwards to the reference today; float and double
// will go to fast:: (kernels/conv2d_fast.hpp) at the marked lines once those kernels exist.
#pragma once

#include <type_traits>

#include "tapegrad/kernels/conv2d_ref.hpp"

namespace tapegrad::kernels {

template <class T>
Tensor<T> conv2d_forward(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& w,
                         const std::type_identity_t<Tensor<T>>* b) {
  // fast: float/double -> fast::conv2d_forward
  return ref::conv2d_forward(g, x, w, b);
}

template <class T>
Tensor<T> conv2d_backward_data(const Conv2dGeom& g, const Tensor<T>& dy, const Tensor<T>& w) {
  // fast: float/double -> fast::conv2d_backward_data
  return ref::conv2d_backward_data(g, dy, w);
}

template <class T>
Tensor<T> conv2d_backward_weights(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& dy) {
  // fast: float/double -> fast::conv2d_backward_weights
  return ref::conv2d_backward_weights(g, x, dy);
}

template <class T>
Tensor<T> conv2d_backward_bias(const Conv2dGeom& g, const Tensor<T>& dy) {
  // fast: float/double -> fast::conv2d_backward_bias
  return ref::conv2d_backward_bias(g, dy);
}

}  // namespace tapegrad::kernels
