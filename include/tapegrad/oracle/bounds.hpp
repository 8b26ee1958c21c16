// The exact result of every op and direction, with the two numbers per element of its derived
// error bound: |actual - exact| <= gamma_T(K_i) * S_i for a correct implementation in precision
// T (u = 2^-24 float, 2^-53 double), any evaluation order. K (a count of roundings) and S (a
// magnitude, S_i >= |exact_i|) do not depend on T; the derivation of each is in
// src/oracle/bounds.cpp, the summary in oracle/linear.hpp, pool.hpp, activation.hpp, loss.hpp.
// The raw-buffer checks and `tapegrad verify` both judge with these: one place for the
// tolerance of each op.
//
// Inputs are double tensors (float32 and float64 data convert exactly). Sums of products
// (conv2d, linear, avg_pool2d) are computed by the exact engine (Engine::exact) or the
// reference kernels in 50 digits (Engine::f50); every other op by the reference kernels in 50
// digits (within ~2^-160 relative of exact: far below every bound). Shapes are validated by the
// caller (geometry makers, check_* of the kernels); these only assert.
#pragma once

#include <string>
#include <vector>

#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/oracle/raw.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::oracle {

// Rounding operations one libm call (exp, log, tanh) counts for: an error budget of 2 ulp of
// its result, 2 ulp(v) <= 4u|v|, and 4u <= gamma(4). glibc's published maximum errors of
// expf/exp, logf/log and tanhf/tanh on x86-64 (its libm-test-ulps) are within 2 ulp.
inline constexpr index_t libm_roundings = 4;

struct Bound {
  Tensor<f50> exact;         // the exact result (logical layout: NCHW, KCRS)
  Tensor<f50> s;             // S_i, >= |exact_i|
  std::vector<index_t> k;    // K_i
  std::string model;         // what S and K are, one line ("" : S = sum |terms|, K terms)
  // The probabilistic tier applies (raw.hpp, "Tiers"): every element a sum whose terms each
  // pass through at most K DISTINCT roundings of + - * /. False where a libm call, an
  // amplified or a repeated rounding enters: the probabilistic tier is then the sound one.
  bool probabilistic = false;
};

// Linear ops: every element a sum of K terms, S = sum |terms|.
Bound conv2d_forward_bound(const Conv2dGeom& g, const Tensor<double>& x, const Tensor<double>& w,
                           const Tensor<double>* b, Engine e = Engine::exact);
Bound conv2d_backward_data_bound(const Conv2dGeom& g, const Tensor<double>& dy,
                                 const Tensor<double>& w, Engine e = Engine::exact);
Bound conv2d_backward_weights_bound(const Conv2dGeom& g, const Tensor<double>& x,
                                    const Tensor<double>& dy, Engine e = Engine::exact);
Bound conv2d_backward_bias_bound(const Conv2dGeom& g, const Tensor<double>& dy,
                                 Engine e = Engine::exact);
Bound linear_forward_bound(const LinearGeom& g, const Tensor<double>& x, const Tensor<double>& w,
                           const Tensor<double>* b, Engine e = Engine::exact);
Bound linear_backward_data_bound(const LinearGeom& g, const Tensor<double>& dy,
                                 const Tensor<double>& w, Engine e = Engine::exact);
Bound linear_backward_weights_bound(const LinearGeom& g, const Tensor<double>& x,
                                    const Tensor<double>& dy, Engine e = Engine::exact);
Bound linear_backward_bias_bound(const LinearGeom& g, const Tensor<double>& dy,
                                 Engine e = Engine::exact);
Bound avg_pool2d_forward_bound(const Pool2dGeom& g, const Tensor<double>& x,
                               Engine e = Engine::exact);
Bound avg_pool2d_backward_bound(const Pool2dGeom& g, const Tensor<double>& dy,
                                Engine e = Engine::exact);

Bound max_pool2d_forward_bound(const Pool2dGeom& g, const Tensor<double>& x);
Bound max_pool2d_backward_bound(const Pool2dGeom& g, const Tensor<double>& x,
                                const Tensor<double>& dy);

// Activations; the backward of sigmoid, tanh, softmax and log_softmax takes the forward
// output y (as the reference VJPs); softmax and log_softmax reduce over dim 1.
Bound relu_forward_bound(const Tensor<double>& x);
Bound relu_backward_bound(const Tensor<double>& x, const Tensor<double>& dy);
Bound sigmoid_forward_bound(const Tensor<double>& x);
Bound sigmoid_backward_bound(const Tensor<double>& y, const Tensor<double>& dy);
Bound tanh_forward_bound(const Tensor<double>& x);
Bound tanh_backward_bound(const Tensor<double>& y, const Tensor<double>& dy);
Bound softmax_forward_bound(const Tensor<double>& x);
Bound softmax_backward_bound(const Tensor<double>& y, const Tensor<double>& dy);
Bound log_softmax_forward_bound(const Tensor<double>& x);
Bound log_softmax_backward_bound(const Tensor<double>& y, const Tensor<double>& dy);

// Losses (mean reduction); the loss is a 0-d tensor, dloss a value.
Bound mse_loss_forward_bound(const Tensor<double>& x, const Tensor<double>& target);
Bound mse_loss_backward_bound(const Tensor<double>& x, const Tensor<double>& target,
                              double dloss);
Bound cross_entropy_forward_bound(const Tensor<double>& logits,
                                  const std::vector<index_t>& targets);
Bound cross_entropy_backward_bound(const Tensor<double>& logits,
                                   const std::vector<index_t>& targets, double dloss);

// Judges `actual` (precision T = float or double; same shape as b.exact, logical layout) by the
// bound: |actual - exact| <= gamma_T(K_i) * S_i per element (the sound tier; the probabilistic
// tier's gamma~ where b.probabilistic), NaN and Inf always failing. The
// report is the raw-buffer checks' (print() ends in PASS or FAIL), labelled with op, problem
// and output; its `generated` is false (the inputs were the caller's, not seeded).
// opt: its tier and false_fail_probability (the rest is for generated checks).
template <class T>
OracleReport judge_bound(const Bound& b, const Tensor<T>& actual, const std::string& op,
                         const std::string& problem, const std::string& output,
                         Engine engine = Engine::f50, const OracleOptions& opt = {});
// The same for results STORED in `storage` (float16 and bfloat16 values held as floats, T =
// float) and computed with the unit roundoff of `accumulate` (`tapegrad verify --accumulate`):
// u in gamma(K) is the accumulation's, plus one rounding to storage when the two differ:
// (1 + u_s) gamma(K) S + u_s |exact| (src/oracle/driver.hpp, with_store; gamma~ in place of
// gamma for the probabilistic tier); ULPs are the storage's.
template <class T>
OracleReport judge_bound(const Bound& b, const Tensor<T>& actual, const std::string& op,
                         const std::string& problem, const std::string& output, Engine engine,
                         const OracleOptions& opt, gradcheck::UlpPrecision storage,
                         gradcheck::UlpPrecision accumulate);

}  // namespace tapegrad::oracle
