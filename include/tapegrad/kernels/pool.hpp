// Pooling dispatch: the one place the op tape and the layers call. Same names and signatures
// as ref:: (kernels/pool_ref.hpp). float and double go to the fast kernels
// (fast::, kernels/pool_fast.hpp); every other T (f50, Var<U>) to the reference.
#pragma once

#include <type_traits>

#include "tapegrad/kernels/pool_fast.hpp"
#include "tapegrad/kernels/pool_ref.hpp"

namespace tapegrad::kernels {

template <class T>
Tensor<T> max_pool2d_forward(const Pool2dGeom& g, const Tensor<T>& x) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::max_pool2d_forward(g, x);  // float/double: the fast kernel
  return ref::max_pool2d_forward(g, x);
}

template <class T>
Tensor<T> max_pool2d_backward(const Pool2dGeom& g, const Tensor<T>& x, const Tensor<T>& dy) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::max_pool2d_backward(g, x, dy);  // float/double: the fast kernel
  return ref::max_pool2d_backward(g, x, dy);
}

template <class T>
Tensor<T> avg_pool2d_forward(const Pool2dGeom& g, const Tensor<T>& x) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::avg_pool2d_forward(g, x);  // float/double: the fast kernel
  return ref::avg_pool2d_forward(g, x);
}

template <class T>
Tensor<T> avg_pool2d_backward(const Pool2dGeom& g, const Tensor<T>& dy) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::avg_pool2d_backward(g, dy);  // float/double: the fast kernel
  return ref::avg_pool2d_backward(g, dy);
}

}  // namespace tapegrad::kernels
