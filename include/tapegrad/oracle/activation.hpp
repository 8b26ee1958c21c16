// Raw-buffer checks of activation kernels: relu, sigmoid, tanh (element-wise, any shape) and
// softmax, log_softmax (over DIM 1 of a tensor of rank >= 2, as PyTorch's dim=1: for (N,C) the
// classes of each row, for (N,C,H,W) the channels at each pixel), forward and backward; the
// same contract, guards and report as the conv2d checks (oracle/raw.hpp). Buffers are dense,
// row-major, of x's shape.
//
// Backward callbacks get what the reference's VJP takes (kernels/activation_ref.hpp):
//   relu       (x, dy, dx)   dx = dy * [x > 0]      NOTE: relu'(0) = 0, as PyTorch
//   sigmoid    (y, dy, dx)   dx = dy * y * (1 - y)  y = sigmoid(x) rounded to T (the forward
//   tanh       (y, dy, dx)   dx = dy * (1 - y^2)      output, as PyTorch's *_backward take it)
//   softmax    (y, dy, dx)   dx = y * (dy - sum_j y_j dy_j)
//   log_softmax(y, dy, dx)   dx = dy - exp(y) * sum_j dy_j
// The oracle generates x, computes y from it in 50 digits and rounds it once to T; the exact
// gradient is the formula evaluated exactly on those T values of y and dy.
//
//   oracle::ActivationProblem prob{.x = {4, 10}};
//   auto r = oracle::check_log_softmax_forward(prob,
//       [](const float* x, float* y) { my_log_softmax(x, y, 4, 10); });
//
// Tolerances (per element |actual - exact| <= gamma_T(K) * S; src/oracle/bounds.cpp
// derives each). L = 4: the ulp budget of one libm call (exp, log, tanh) is 2 ulp of its
// result, <= 4u |result| (ulp(v) <= 2u|v|), counted as 4 roundings; glibc's published maximum
// errors for expf/exp, logf/log, tanhf/tanh on x86-64 are within it. C = the size of dim 1;
// per slice, m = its max, d_j = x_j - m, p = softmax: R_c = ceil(-d_c) and R = ceil(sum_j p_j
// (-d_j)) (exp amplifies the rounding of x_j - m into a relative error |d_j| u of its term).
//   relu forward / backward     K = 0 (exact: the check is equality), S = |y| / |dx|
//   sigmoid forward             K = 2L + 2 (exp, +, /; e/(1+e) for x < 0), S = |y|: 5 ulp
//   sigmoid backward            K = 3, S = |dy| (|y| + y^2)  (covers dy*y*(1-y) and dy*(y-y*y))
//   tanh forward                K = L, S = |y|: 2 ulp
//   tanh backward               K = 3, S = |dy| (1 + y^2)
//   softmax forward             K = C + 2L + R_c + R + 2, S = y
//   softmax backward            K = C + 2, S = |y_c| (|dy_c| + sum_j |y_j dy_j|)
//   log_softmax forward         K = C + R + 2L + 2, S = 1 + |x_c| + (m - x_c) + lse + |y_c|
//                               (lse = log sum_j exp(x_j - m))
//   log_softmax backward        K = C + L + 1, S = |dy_c| + exp(y_c) sum_j |dy_j|
#pragma once

#include "tapegrad/oracle/raw.hpp"

namespace tapegrad::oracle {

struct ActivationProblem {
  Shape x;  // any shape; softmax / log_softmax: rank >= 2, reduced over dim 1
};

template <class T>
using UnaryFn = std::function<void(const T* x, T* y)>;
template <class T>
using UnaryBackwardFn = std::function<void(const T* x_or_y, const T* dy, T* dx)>;

#define TAPEGRAD_ORACLE_ACTIVATION(name)                                                     \
  template <class T>                                                                        \
  OracleReport check_##name##_forward(const ActivationProblem& prob,                        \
                                      const std::type_identity_t<UnaryFn<T>>& f,            \
                                      const OracleOptions& opt = {});                       \
  template <class T>                                                                        \
  OracleReport check_##name##_backward(const ActivationProblem& prob,                       \
                                       const std::type_identity_t<UnaryBackwardFn<T>>& f,   \
                                       const OracleOptions& opt = {});                      \
  TAPEGRAD_ORACLE_OVERLOADS(check_##name##_forward, ActivationProblem, UnaryFn)             \
  TAPEGRAD_ORACLE_OVERLOADS(check_##name##_backward, ActivationProblem, UnaryBackwardFn)
TAPEGRAD_ORACLE_ACTIVATION(relu)
TAPEGRAD_ORACLE_ACTIVATION(sigmoid)
TAPEGRAD_ORACLE_ACTIVATION(tanh)
TAPEGRAD_ORACLE_ACTIVATION(softmax)
TAPEGRAD_ORACLE_ACTIVATION(log_softmax)
#undef TAPEGRAD_ORACLE_ACTIVATION

}  // namespace tapegrad::oracle
