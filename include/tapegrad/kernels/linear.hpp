// linear dispatch: the one place the op tape and the layers call. Same names and signatures
// as ref:: (kernels/linear_ref.hpp). float and double go to the fast kernels
// (fast::, kernels/linear_fast.hpp); every other T (f50, Var<U>) to the reference.
#pragma once

#include <type_traits>

#include "tapegrad/kernels/activation.hpp"
#include "tapegrad/kernels/linear_fast.hpp"
#include "tapegrad/kernels/linear_ref.hpp"

namespace tapegrad::kernels {

// act: a fused activation (kernels/activation_kind.hpp): in the fast kernel's epilogue, after
// the reference's product otherwise.
template <class T>
Tensor<T> linear_forward(const LinearGeom& g, const Tensor<T>& x, const Tensor<T>& w,
                         const std::type_identity_t<Tensor<T>>* b,
                         Activation act = Activation::none) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::linear_forward(g, x, w, b, act);  // float/double: the fast kernel
  return activation_forward(act, ref::linear_forward(g, x, w, b));
}

template <class T>
Tensor<T> linear_backward_data(const LinearGeom& g, const Tensor<T>& dy, const Tensor<T>& w) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::linear_backward_data(g, dy, w);  // float/double: the fast kernel
  return ref::linear_backward_data(g, dy, w);
}

template <class T>
Tensor<T> linear_backward_weights(const LinearGeom& g, const Tensor<T>& x, const Tensor<T>& dy) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::linear_backward_weights(g, x, dy);  // float/double: the fast kernel
  return ref::linear_backward_weights(g, x, dy);
}

template <class T>
Tensor<T> linear_backward_bias(const LinearGeom& g, const Tensor<T>& dy) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::linear_backward_bias(g, dy);  // float/double: the fast kernel
  return ref::linear_backward_bias(g, dy);
}

}  // namespace tapegrad::kernels
