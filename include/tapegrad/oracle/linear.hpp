// Raw-buffer checks of a linear (fully connected) kernel: forward, backward-data,
// backward-weights, backward-bias; the same contract, guards and report as the conv2d checks
// (oracle/raw.hpp). Shapes are PyTorch's: x (N,in), w (out,in), b (out), y and dy (N,out),
// every buffer dense and row-major.
//
//   oracle::LinearProblem prob{.x = {8, 20}, .w = {5, 20}, .bias = true};
//   auto r = oracle::check_linear_forward(prob,
//       [](const float* x, const float* w, const float* b, float* y) { my_fc(x, w, b, y); });
//
// Tolerance: a sum of K products, |actual - exact| <= gamma_T(K) * S, S = sum |terms| (the
// exact engine, as conv2d): forward K = in (+1 with a bias), backward-data K = out,
// backward-weights K = N, backward-bias K = N (+1 each in accumulate mode).
#pragma once

#include "tapegrad/oracle/raw.hpp"

namespace tapegrad::oracle {

struct LinearProblem {
  Shape x;            // (N,in)
  Shape w;            // (out,in)
  bool bias = false;  // forward only: pass a bias buffer (nullptr otherwise)
};

template <class T>
using LinearForwardFn = std::function<void(const T* x, const T* w, const T* b, T* y)>;
template <class T>
using LinearBackwardDataFn = std::function<void(const T* dy, const T* w, T* dx)>;
template <class T>
using LinearBackwardWeightsFn = std::function<void(const T* x, const T* dy, T* dw)>;
template <class T>
using LinearBackwardBiasFn = std::function<void(const T* dy, T* db)>;

// T = float or double. Invalid problems throw std::invalid_argument from make_linear_geom.
template <class T>
OracleReport check_linear_forward(const LinearProblem& prob,
                                  const std::type_identity_t<LinearForwardFn<T>>& f,
                                  const OracleOptions& opt = {});
template <class T>
OracleReport check_linear_backward_data(const LinearProblem& prob,
                                        const std::type_identity_t<LinearBackwardDataFn<T>>& f,
                                        const OracleOptions& opt = {});
template <class T>
OracleReport check_linear_backward_weights(
    const LinearProblem& prob, const std::type_identity_t<LinearBackwardWeightsFn<T>>& f,
    const OracleOptions& opt = {});
template <class T>
OracleReport check_linear_backward_bias(const LinearProblem& prob,
                                        const std::type_identity_t<LinearBackwardBiasFn<T>>& f,
                                        const OracleOptions& opt = {});

TAPEGRAD_ORACLE_OVERLOADS(check_linear_forward, LinearProblem, LinearForwardFn)
TAPEGRAD_ORACLE_OVERLOADS(check_linear_backward_data, LinearProblem, LinearBackwardDataFn)
TAPEGRAD_ORACLE_OVERLOADS(check_linear_backward_weights, LinearProblem, LinearBackwardWeightsFn)
TAPEGRAD_ORACLE_OVERLOADS(check_linear_backward_bias, LinearProblem, LinearBackwardBiasFn)

}  // namespace tapegrad::oracle
