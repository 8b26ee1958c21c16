// Raw-buffer checks of loss kernels: mse_loss and cross_entropy, forward and backward; the same
// contract, guards and report as the conv2d checks (oracle/raw.hpp). Reduction "mean", as
// PyTorch's default: mse_loss divides by the number of elements, cross_entropy by the rows N.
// The loss and the upstream gradient dloss are single values (a buffer of one T).
//
//   mse_loss        (x, target, loss)                x, target any shape
//   mse_loss bwd    (x, target, dloss, dx)           dx = dloss * 2 (x - target) / M
//   cross_entropy   (logits, targets, loss)          logits (N,C) row-major, targets N int64
//   cross_entropy bwd (logits, targets, dloss, dx)   dx = dloss / N * (softmax(x) - onehot(t))
//
// Tolerances (per element, gamma_T(K) * S; src/oracle/bounds.cpp derives each; L = 4 the libm
// budget and R_c, R the softmax counts of oracle/activation.hpp, per row):
//   mse_loss forward        K = M + 4, S = the loss (every term is >= 0)
//   mse_loss backward       K = 4, S = |dx_i|
//   cross_entropy forward   K = C + max_n R + 2L + N + 3,
//                           S = (1/N) sum_n (1 + |x_t| + (m_n - x_t) + lse_n + loss_n)
//   cross_entropy backward  K = C + 2L + R_c + R + 6, S = |dloss| / N (p + |p - [c == t]|),
//                           p = softmax(x[n,:])[c]
#pragma once

#include <cstdint>

#include "tapegrad/oracle/raw.hpp"

namespace tapegrad::oracle {

struct MseLossProblem {
  Shape x;  // any non-empty shape; target has the same
};
struct CrossEntropyProblem {
  index_t n = 1;  // rows (the batch)
  index_t c = 2;  // classes
};

template <class T>
using MseLossForwardFn = std::function<void(const T* x, const T* target, T* loss)>;
template <class T>
using MseLossBackwardFn =
    std::function<void(const T* x, const T* target, const T* dloss, T* dx)>;
template <class T>
using CrossEntropyForwardFn =
    std::function<void(const T* logits, const std::int64_t* targets, T* loss)>;
template <class T>
using CrossEntropyBackwardFn =
    std::function<void(const T* logits, const std::int64_t* targets, const T* dloss, T* dx)>;

template <class T>
OracleReport check_mse_loss_forward(const MseLossProblem& prob,
                                    const std::type_identity_t<MseLossForwardFn<T>>& f,
                                    const OracleOptions& opt = {});
template <class T>
OracleReport check_mse_loss_backward(const MseLossProblem& prob,
                                     const std::type_identity_t<MseLossBackwardFn<T>>& f,
                                     const OracleOptions& opt = {});
template <class T>
OracleReport check_cross_entropy_forward(const CrossEntropyProblem& prob,
                                         const std::type_identity_t<CrossEntropyForwardFn<T>>& f,
                                         const OracleOptions& opt = {});
template <class T>
OracleReport check_cross_entropy_backward(
    const CrossEntropyProblem& prob, const std::type_identity_t<CrossEntropyBackwardFn<T>>& f,
    const OracleOptions& opt = {});

TAPEGRAD_ORACLE_OVERLOADS(check_mse_loss_forward, MseLossProblem, MseLossForwardFn)
TAPEGRAD_ORACLE_OVERLOADS(check_mse_loss_backward, MseLossProblem, MseLossBackwardFn)
TAPEGRAD_ORACLE_OVERLOADS(check_cross_entropy_forward, CrossEntropyProblem,
                          CrossEntropyForwardFn)
TAPEGRAD_ORACLE_OVERLOADS(check_cross_entropy_backward, CrossEntropyProblem,
                          CrossEntropyBackwardFn)

}  // namespace tapegrad::oracle
