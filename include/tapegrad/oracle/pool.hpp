// Raw-buffer checks of 2-d pooling kernels: max_pool2d and avg_pool2d, forward and backward;
// the same contract, guards and report as the conv2d checks (oracle/raw.hpp). Shapes are
// logical, x (N,C,H,W) -> y (N,C,P,Q); Layout::nhwc lays x, y, dx, dy out as (N,H,W,C).
// Conventions as the reference (kernels/pool_ref.hpp) and PyTorch: floor-mode output size,
// pad at most half the kernel; max_pool2d: padding never wins, a tie goes to the first maximum
// in row-major window order (the generated inputs have no ties in practice: 2^24 or 2^53
// distinct values); avg_pool2d: count_include_pad = true (the divisor is always KH*KW).
//
//   oracle::Pool2dProblem prob{.x = {2, 3, 9, 9}};
//   prob.params = {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}};
//   auto r = oracle::check_max_pool2d_backward(prob,
//       [](const float* x, const float* dy, float* dx) { my_pool_bwd(x, dy, dx); });
//
// Tolerances (per element, gamma_T(K) * S):
//   max_pool2d forward   K = 0: a selection, no rounding; the check is equality.
//   max_pool2d backward  dx[h,w] = sum of the dy whose window's maximum is (h,w): at most
//                        W = ceil(KH/SH) * ceil(KW/SW) terms, K = W, S = that sum on |dy|.
//   avg_pool2d forward   y = (sum of at most KH*KW inputs) / (KH*KW): KH*KW - 1 additions and
//                        a division (2 roundings if computed as a product with the rounded
//                        reciprocal): K = KH*KW + 1, S = sum |x| / (KH*KW) (exact engine).
//   avg_pool2d backward  dx = (sum of at most W dy) / (KH*KW): K = W + 1, S = sum |dy| / (KH*KW).
#pragma once

#include "tapegrad/oracle/raw.hpp"

namespace tapegrad::oracle {

struct Pool2dProblem {
  Shape x;               // logical (N,C,H,W)
  Pool2dParams params;   // kernel, stride, pad (stride defaults to 2,2 as Pool2dParams does)
  Layout layout = Layout::nchw;
};

template <class T>
using Pool2dForwardFn = std::function<void(const T* x, T* y)>;
template <class T>
using MaxPool2dBackwardFn = std::function<void(const T* x, const T* dy, T* dx)>;
template <class T>
using AvgPool2dBackwardFn = std::function<void(const T* dy, T* dx)>;

// T = float or double. Invalid problems throw std::invalid_argument from make_pool2d_geom.
template <class T>
OracleReport check_max_pool2d_forward(const Pool2dProblem& prob,
                                      const std::type_identity_t<Pool2dForwardFn<T>>& f,
                                      const OracleOptions& opt = {});
template <class T>
OracleReport check_max_pool2d_backward(const Pool2dProblem& prob,
                                       const std::type_identity_t<MaxPool2dBackwardFn<T>>& f,
                                       const OracleOptions& opt = {});
template <class T>
OracleReport check_avg_pool2d_forward(const Pool2dProblem& prob,
                                      const std::type_identity_t<Pool2dForwardFn<T>>& f,
                                      const OracleOptions& opt = {});
template <class T>
OracleReport check_avg_pool2d_backward(const Pool2dProblem& prob,
                                       const std::type_identity_t<AvgPool2dBackwardFn<T>>& f,
                                       const OracleOptions& opt = {});

TAPEGRAD_ORACLE_OVERLOADS(check_max_pool2d_forward, Pool2dProblem, Pool2dForwardFn)
TAPEGRAD_ORACLE_OVERLOADS(check_max_pool2d_backward, Pool2dProblem, MaxPool2dBackwardFn)
TAPEGRAD_ORACLE_OVERLOADS(check_avg_pool2d_forward, Pool2dProblem, Pool2dForwardFn)
TAPEGRAD_ORACLE_OVERLOADS(check_avg_pool2d_backward, Pool2dProblem, AvgPool2dBackwardFn)

}  // namespace tapegrad::oracle
