// The derived tolerance model shared by the whole project: how far a result computed in
// precision T may honestly be from the exact value, from the computation's size, magnitudes
// and unit roundoff -- never a hand-tuned 1e-5.
//
// Model (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., ch. 2-3):
//   fl(a op b) = (a op b)(1 + d), |d| <= u          for op in + - * /, and for sqrt
//   u = unit roundoff: 2^-24 float, 2^-53 double, 2^-167 f50 (ScalarTraits<T>::unit_roundoff)
//   gamma(n) = n u / (1 - n u)                      (valid while n u < 1)
//   prod_{i<=n} (1 + d_i)^(+-1) = 1 + t, |t| <= gamma(n)           (Lemma 3.1)
// so a sum or dot product of length K evaluated in ANY order satisfies (eq. 3.5)
//   |fl(sum_k a_k b_k) - sum_k a_k b_k| <= gamma(K) * sum_k |a_k b_k|  =  gamma(K) * S.
// This is the tolerance of every element of conv2d / linear forward, backward-data and
// backward-weights: K is the reduction length (C/g*R*S, K*R*S, N*P*Q, in, N, ...) and S the
// absolute sum of the terms, computed in the reference precision alongside the reference.
// It holds for any summation order, so it also covers the fast kernels' blocked, parallel,
// fixed-order reductions.
//
// Nonlinear element-wise functions (exp, log, tanh, sigmoid, softmax): glibc's double and
// float exp/log/tanh are accurate to < 1 ulp, i.e. relative error < 2u; we count one such call
// as `ops_per_libm_call` = 2 rounding operations, and each extra rounded +-*/ on the way to
// the element as one more. So an element that is a reduction of length K whose terms each
// went through m extra roundings (a libm call counts 2) gets gamma(K + m) * S. This presumes
// the errors enter the result linearly with the weights that S already sums (true for
// element-wise maps feeding a dot product); a step that amplifies relative error (catastrophic
// cancellation, a condition number >> 1) must be modelled by the caller in S.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "tapegrad/gradcheck/compare.hpp"  // ulp_distance(double|float, ...): exact ULP counts
#include "tapegrad/scalar.hpp"
#include "tapegrad/shape.hpp"

namespace tapegrad::gradcheck {

// Unit roundoff u of precision T (2^-24, 2^-53, 2^-167).
template <class T>
double unit_roundoff() {
  return ScalarTraits<T>::unit_roundoff();
}

// gamma(n, u) = n u / (1 - n u): the bound on |prod (1 + d_i)^(+-1) - 1| over n roundings.
// +inf once n u >= 1 (the bound is void: nothing can be promised).
inline double gamma(double n, double u) {
  const double nu = n * u;
  return nu < 1 ? nu / (1 - nu) : std::numeric_limits<double>::infinity();
}
template <class T>
double gamma(double n) {
  return gamma(n, unit_roundoff<T>());
}

// The probabilistic model (Higham and Mary, "A new approach to probabilistic rounding error
// analysis", SIAM J. Sci. Comput. 41(5), 2019). Model: the d of the operations above are
// independent random variables of mean zero (|d| <= u as before). Then (their Theorem 2.4) for
// n of them, prod (1 + d_i)^(+-1) = 1 + t with
//   |t| <= gamma~(n, lambda) = exp(lambda sqrt(n) u + n u^2 / (1 - u)) - 1   (~ lambda sqrt(n) u)
// with probability at least P(lambda) = 1 - 2 exp(-lambda^2 (1 - u)^2 / 2), and (Theorem 3.1)
// a sum or dot product of n terms, in ANY order, is within gamma~(n, lambda) * sum |terms| with
// probability at least Q(lambda, n) = 1 - n (1 - P(lambda)): each term's path is at most n
// roundings, and a union bound over the n terms. So the chance that a correct kernel exceeds
// the bound at one element is at most 2 n exp(-lambda^2 (1 - u)^2 / 2).
//
// gamma~(n, lambda), rounded up (expm1 is within 1 ulp; 4 ulps added).
inline double gamma_tilde(double n, double lambda, double u) {
  const double v = std::expm1(lambda * std::sqrt(n) * u + n * u * u / (1 - u));
  return v * (1 + 4 * std::numeric_limits<double>::epsilon());
}
// The lambda whose element failure probability is p for a sum of n terms:
// 2 n exp(-lambda^2 (1 - u)^2 / 2) = p  <=>  lambda = sqrt(2 ln(2 n / p)) / (1 - u), rounded up
// (a larger lambda only lowers the probability). n = 1, p = 1e-9: 6.55; n = 524288: 8.32.
inline double probabilistic_lambda(double n, double p, double u) {
  const double v = std::sqrt(2 * std::log(2 * std::max(n, 1.0) / p)) / (1 - u);
  return v * (1 + 4 * std::numeric_limits<double>::epsilon());
}
// The chance that a correct sum of n terms exceeds gamma~(n, lambda) * S (Theorem 3.1).
inline double probabilistic_failure(double n, double lambda, double u) {
  return std::min(1.0, 2 * n * std::exp(-lambda * lambda * (1 - u) * (1 - u) / 2));
}

// Rounding operations one correctly-implemented libm call counts for (< 1 ulp = < 2u).
inline constexpr index_t ops_per_libm_call = 2;

// Tolerance of one element computed in precision T by a reduction of length k over terms
// whose absolute sum is abs_sum, each term having gone through extra_ops further roundings
// before the reduction (a libm call counts ops_per_libm_call):
//   tol = gamma(k + extra_ops) * abs_sum
// e.g. conv2d forward y[n,k,p,q]: k = C/g*R*S (+1 with a bias: the bias is one more term),
// abs_sum = sum |x*w| (+ |b|); linear backward-weights dw[o,i]: k = N, abs_sum = sum_n |dy x|.
template <class T>
double reduction_tolerance(index_t k, double abs_sum, index_t extra_ops = 0) {
  return gamma<T>(static_cast<double>(k + extra_ops)) * abs_sum;
}

// True when |actual - exact| <= tol (NaN never passes). When `exact` is a 50-digit reference
// rounded to double, that rounding adds up to u |exact| <= u S; count it as one more operation:
// reduction_tolerance<double>(k, S, extra_ops + 1), since gamma(n + 1) >= gamma(n) + u.
inline bool within_tolerance(double actual, double exact, double tol) {
  return std::abs(actual - exact) <= tol;
}

}  // namespace tapegrad::gradcheck
