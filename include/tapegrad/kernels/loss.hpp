// Loss dispatch: the one place the op tape and the layers call. Same names and signatures as
// ref:: (kernels/loss_ref.hpp; validators check_mse_loss, check_cross_entropy and
// check_loss_count live there too). `count` is the divisor of the mean (see loss_ref.hpp).
// float and double go to the fast kernels (fast::, kernels/loss_fast.hpp: the reference's bits,
// rows in parallel); every other T (f50, Var<U>) to the reference.
#pragma once

#include <type_traits>

#include "tapegrad/kernels/loss_fast.hpp"
#include "tapegrad/kernels/loss_ref.hpp"

namespace tapegrad::kernels {

template <class T>
Tensor<T> mse_loss_forward(const Tensor<T>& x, const Tensor<T>& target, index_t count) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::mse_loss_forward(x, target, count);  // float/double: the fast kernel
  return ref::mse_loss_forward(x, target, count);
}

template <class T>
Tensor<T> mse_loss_backward(const Tensor<T>& x, const Tensor<T>& target,
                            const std::type_identity_t<T>& dloss, index_t count) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::mse_loss_backward(x, target, dloss, count);  // float/double: the fast kernel
  return ref::mse_loss_backward(x, target, dloss, count);
}

template <class T>
Tensor<T> cross_entropy_forward(const Tensor<T>& logits, const std::vector<index_t>& targets,
                                index_t count) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::cross_entropy_forward(logits, targets, count);  // float/double: the fast kernel
  return ref::cross_entropy_forward(logits, targets, count);
}

template <class T>
Tensor<T> cross_entropy_backward(const Tensor<T>& logits, const std::vector<index_t>& targets,
                                 const std::type_identity_t<T>& dloss, index_t count) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return fast::cross_entropy_backward(logits, targets, dloss, count);  // float/double: the fast kernel
  return ref::cross_entropy_backward(logits, targets, dloss, count);
}

}  // namespace tapegrad::kernels
