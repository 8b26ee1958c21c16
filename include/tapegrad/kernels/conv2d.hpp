// conv2d dispatch: the one place the op tape and the layers call. Same names and signatures
// as ref:: (kernels/conv2d_ref.hpp). float and double go to the fast kernels
// (fast::, kernels/conv2d_fast.hpp); every other T (f50, Var<U>) to the reference.
#pragma once

#include <type_traits>

#include "tapegrad/kernels/activation.hpp"
#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"

namespace tapegrad::kernels {

// act: a fused activation (kernels/activation_kind.hpp): in the fast kernel's epilogue, after
// the reference's convolution otherwise.
template <class T>
Tensor<T> conv2d_forward(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& w,
                         const std::type_identity_t<Tensor<T>>* b,
                         Activation act = Activation::none) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::conv2d_forward(g, x, w, b, act);  // float/double: the fast kernel
  return activation_forward(act, ref::conv2d_forward(g, x, w, b));
}

template <class T>
Tensor<T> conv2d_backward_data(const Conv2dGeom& g, const Tensor<T>& dy, const Tensor<T>& w) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::conv2d_backward_data(g, dy, w);  // float/double: the fast kernel
  return ref::conv2d_backward_data(g, dy, w);
}

template <class T>
Tensor<T> conv2d_backward_weights(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& dy) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::conv2d_backward_weights(g, x, dy);  // float/double: the fast kernel
  return ref::conv2d_backward_weights(g, x, dy);
}

template <class T>
Tensor<T> conv2d_backward_bias(const Conv2dGeom& g, const Tensor<T>& dy) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::conv2d_backward_bias(g, dy);  // float/double: the fast kernel
  return ref::conv2d_backward_bias(g, dy);
}

}  // namespace tapegrad::kernels
