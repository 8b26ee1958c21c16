// Fast losses (float and double): the reference formulas of loss_ref.hpp with the reference's
// bits. What differs: cross_entropy computes its rows in parallel (each row's term, then the
// terms added in row order, as the reference does) and mse_loss's gradient its elements; the
// sums stay sequential in the reference's order, and the file is compiled without
// floating-point contraction (as activation_fast.cpp, and for the same reason). Same names and
// meaning as the reference twins, including `count`, the divisor of the mean; inputs are
// validated by the caller (check_mse_loss, check_cross_entropy, check_loss_count).
#pragma once

#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad::fast {

#define TAPEGRAD_LOSS_FAST(T)                                                                 \
  /* loss = (1/count) sum_i (x[i] - target[i])^2 */                                           \
  Tensor<T> mse_loss_forward(const Tensor<T>& x, const Tensor<T>& target, index_t count);     \
  /* dx[i] = dloss * 2 * (x[i] - target[i]) / count */                                        \
  Tensor<T> mse_loss_backward(const Tensor<T>& x, const Tensor<T>& target, const T& dloss,    \
                              index_t count);                                                 \
  /* loss = (1/count) sum_n (m_n + log sum_c exp(x[n,c] - m_n) - x[n,t_n]) */                 \
  Tensor<T> cross_entropy_forward(const Tensor<T>& logits, const std::vector<index_t>& targets, \
                                  index_t count);                                             \
  /* dlogits[n,c] = (dloss / count) * (softmax(x[n,:])[c] - [c == t_n]) */                    \
  Tensor<T> cross_entropy_backward(const Tensor<T>& logits, const std::vector<index_t>& targets, \
                                   const T& dloss, index_t count);

TAPEGRAD_LOSS_FAST(float)
TAPEGRAD_LOSS_FAST(double)
#undef TAPEGRAD_LOSS_FAST

}  // namespace tapegrad::fast
