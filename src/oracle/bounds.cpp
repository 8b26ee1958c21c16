// The derived error bounds of every op: what a correct implementation in precision T may
// differ from the exact result, |actual - exact| <= gamma_T(K) * S per element
// (oracle/bounds.hpp). The model is Higham's (gradcheck/tolerance.hpp): every + - * / and sqrt
// is exact times (1 + d), |d| <= u; a libm call is libm_roundings = 4 of them (2 ulp); and a
// chain of stages whose relative errors are bounded by gamma(k_1), gamma(k_2), ... is bounded
// by gamma(k_1 + k_2 + ...) (Higham Lemma 3.3). Everything below is that bookkeeping, one op at
// a time; a bound holds for any evaluation order unless it says otherwise.
//
// The probabilistic tier (oracle/raw.hpp "Tiers", gradcheck/tolerance.hpp) replaces gamma(K)
// by gamma~(K, lambda) where Higham and Mary's hypothesis holds: every term's path to the
// element is a product of at most K DISTINCT roundings (1 + d_i), each of + - * / (a rounding
// shared by several terms, as a reciprocal 1/(KH*KW), is fine: the union bound runs over the
// terms, not over independent events). Bound::probabilistic says so per op:
//   yes  conv2d, linear (every direction), avg_pool2d (forward, backward), max_pool2d
//        backward (a sum of routed dy), softmax backward (a dot, a difference, a product);
//   no   max_pool2d forward, relu, flatten (K = 0: equality anyway); sigmoid, tanh,
//        log_softmax backward, softmax / log_softmax / cross_entropy forward and backward
//        (a libm call: its up-to-2-ulp error is a deterministic function of its argument, not
//        a mean-zero rounding; softmax's R_c and R count ONE rounding of x - m amplified by
//        exp, not R independent ones); mse_loss forward (the square repeats the difference's
//        rounding) and backward (K = 4); sigmoid / tanh backward (K = 3). For K below about
//        lambda^2 ~ 45 gamma~ >= gamma anyway, so "no" costs nothing there.
#include "tapegrad/oracle/bounds.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "driver.hpp"
#include "pattern.hpp"
#include "tapegrad/kernels/activation_ref.hpp"
#include "tapegrad/kernels/conv2d_exact.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/kernels/linear_exact.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/kernels/loss_ref.hpp"
#include "tapegrad/kernels/pool_exact.hpp"
#include "tapegrad/kernels/pool_ref.hpp"

namespace tapegrad::oracle {

namespace {

using driver::abs_of;
using driver::constant_k;
using driver::exact_of;
using driver::Exact;

constexpr index_t L = libm_roundings;

Tensor<f50> to50(const Tensor<double>& t) { return t.cast<f50>(); }

Bound sum_bound(Exact ex, index_t k) {
  Bound b;
  b.exact = std::move(ex.value);
  b.s = std::move(ex.abs_sum);
  b.k = constant_k(b.exact.shape(), k);
  b.probabilistic = true;  // a sum: each term's path at most K distinct roundings
  return b;
}

// ceil(v) for v >= 0, as a count of roundings (v from the 50-digit path: its error, ~1e-49
// relative, can only matter at an exact integer, where either answer is within the slack of
// the bounds below).
index_t ceil_count(const f50& v) {
  const double d = std::ceil(io::round_to_double(v));
  if (!(d > 0)) return 0;  // (and NaN, which finite inputs never give)
  return static_cast<index_t>(std::min(d, 1e15));
}

// Windows of a pool that can hold one input element: ceil(KH/SH) * ceil(KW/SW).
index_t windows_per_element(const Pool2dGeom& g) {
  const auto up = [](index_t a, index_t b) { return (a + b - 1) / b; };
  return up(g.prm.kernel[0], g.prm.stride[0]) * up(g.prm.kernel[1], g.prm.stride[1]);
}

}  // namespace

// ---------------------------------------------------------------- sums of products
// Every element is a sum of K terms (products of two inputs, single inputs, a bias): in any
// order, with or without FMA, |fl(sum) - sum| <= gamma(K - 1) S <= gamma(K) S, S = sum |terms|
// (Higham eq. 3.5); counted as K, as the conv2d checks always have.
//   conv2d forward K = C/G*R*S (+1 bias); backward-data K = K/G*R*S; backward-weights and
//   backward-bias K = N*P*Q. linear forward K = in (+1 bias); backward-data K = out;
//   backward-weights and backward-bias K = N.
Bound conv2d_forward_bound(const Conv2dGeom& g, const Tensor<double>& x, const Tensor<double>& w,
                           const Tensor<double>* b, Engine e) {
  const Tensor<double> none;
  return sum_bound(
      exact_of<double>(
          e, {&x, &w, b ? b : &none},
          [&](const auto& v) { return ref::conv2d_forward(g, v[0], v[1], b ? &v[2] : nullptr); },
          [&](const auto& d) {
            return exact::conv2d_forward<exact::Precise>(g, d[0], d[1], b ? &d[2] : nullptr);
          },
          [&](const auto& d) {
            return exact::conv2d_forward<exact::AbsSumUp>(g, d[0], d[1], b ? &d[2] : nullptr);
          }),
      g.c_per_group() * g.r * g.s + (b ? 1 : 0));
}
Bound conv2d_backward_data_bound(const Conv2dGeom& g, const Tensor<double>& dy,
                                 const Tensor<double>& w, Engine e) {
  return sum_bound(
      exact_of<double>(
          e, {&dy, &w}, [&](const auto& v) { return ref::conv2d_backward_data(g, v[0], v[1]); },
          [&](const auto& d) { return exact::conv2d_backward_data<exact::Precise>(g, d[0], d[1]); },
          [&](const auto& d) {
            return exact::conv2d_backward_data<exact::AbsSumUp>(g, d[0], d[1]);
          }),
      g.k_per_group() * g.r * g.s);
}
Bound conv2d_backward_weights_bound(const Conv2dGeom& g, const Tensor<double>& x,
                                    const Tensor<double>& dy, Engine e) {
  return sum_bound(
      exact_of<double>(
          e, {&x, &dy},
          [&](const auto& v) { return ref::conv2d_backward_weights(g, v[0], v[1]); },
          [&](const auto& d) {
            return exact::conv2d_backward_weights<exact::Precise>(g, d[0], d[1]);
          },
          [&](const auto& d) {
            return exact::conv2d_backward_weights<exact::AbsSumUp>(g, d[0], d[1]);
          }),
      g.n * g.p * g.q);
}
Bound conv2d_backward_bias_bound(const Conv2dGeom& g, const Tensor<double>& dy, Engine e) {
  return sum_bound(
      exact_of<double>(
          e, {&dy}, [&](const auto& v) { return ref::conv2d_backward_bias(g, v[0]); },
          [&](const auto& d) { return exact::conv2d_backward_bias<exact::Precise>(g, d[0]); },
          [&](const auto& d) { return exact::conv2d_backward_bias<exact::AbsSumUp>(g, d[0]); }),
      g.n * g.p * g.q);
}

Bound linear_forward_bound(const LinearGeom& g, const Tensor<double>& x, const Tensor<double>& w,
                           const Tensor<double>* b, Engine e) {
  const Tensor<double> none;
  return sum_bound(
      exact_of<double>(
          e, {&x, &w, b ? b : &none},
          [&](const auto& v) { return ref::linear_forward(g, v[0], v[1], b ? &v[2] : nullptr); },
          [&](const auto& d) {
            return exact::linear_forward<exact::Precise>(g, d[0], d[1], b ? &d[2] : nullptr);
          },
          [&](const auto& d) {
            return exact::linear_forward<exact::AbsSumUp>(g, d[0], d[1], b ? &d[2] : nullptr);
          }),
      g.in + (b ? 1 : 0));
}
Bound linear_backward_data_bound(const LinearGeom& g, const Tensor<double>& dy,
                                 const Tensor<double>& w, Engine e) {
  return sum_bound(
      exact_of<double>(
          e, {&dy, &w}, [&](const auto& v) { return ref::linear_backward_data(g, v[0], v[1]); },
          [&](const auto& d) { return exact::linear_backward_data<exact::Precise>(g, d[0], d[1]); },
          [&](const auto& d) {
            return exact::linear_backward_data<exact::AbsSumUp>(g, d[0], d[1]);
          }),
      g.out);
}
Bound linear_backward_weights_bound(const LinearGeom& g, const Tensor<double>& x,
                                    const Tensor<double>& dy, Engine e) {
  return sum_bound(
      exact_of<double>(
          e, {&x, &dy},
          [&](const auto& v) { return ref::linear_backward_weights(g, v[0], v[1]); },
          [&](const auto& d) {
            return exact::linear_backward_weights<exact::Precise>(g, d[0], d[1]);
          },
          [&](const auto& d) {
            return exact::linear_backward_weights<exact::AbsSumUp>(g, d[0], d[1]);
          }),
      g.n);
}
Bound linear_backward_bias_bound(const LinearGeom& g, const Tensor<double>& dy, Engine e) {
  return sum_bound(
      exact_of<double>(
          e, {&dy}, [&](const auto& v) { return ref::linear_backward_bias(g, v[0]); },
          [&](const auto& d) { return exact::linear_backward_bias<exact::Precise>(g, d[0]); },
          [&](const auto& d) { return exact::linear_backward_bias<exact::AbsSumUp>(g, d[0]); }),
      g.n);
}

// avg_pool2d: y = (sum of at most KH*KW inputs) / (KH*KW). The sum in any order: gamma(KH*KW -
// 1) relative to sum |x|; the division one rounding, or two as a product with the rounded
// reciprocal 1/(KH*KW): K = KH*KW + 1, S = sum |x| / (KH*KW) (the exact engine's AbsSumUp of the
// same op, the division included, rounded up). The backward sums at most W =
// ceil(KH/SH)*ceil(KW/SW) dy (the windows holding the element), then divides: K = W + 1; a
// kernel that scatters dy / (KH*KW) rounds each term up to twice and then adds: the same K.
Bound avg_pool2d_forward_bound(const Pool2dGeom& g, const Tensor<double>& x, Engine e) {
  Bound b = sum_bound(
      exact_of<double>(
          e, {&x}, [&](const auto& v) { return ref::avg_pool2d_forward(g, v[0]); },
          [&](const auto& d) { return exact::avg_pool2d_forward<exact::Precise>(g, d[0]); },
          [&](const auto& d) { return exact::avg_pool2d_forward<exact::AbsSumUp>(g, d[0]); }),
      g.prm.kernel[0] * g.prm.kernel[1] + 1);
  b.model = "S = sum |x| / (KH*KW), K = KH*KW + 1 (the sum, then the division)";
  return b;
}
Bound avg_pool2d_backward_bound(const Pool2dGeom& g, const Tensor<double>& dy, Engine e) {
  Bound b = sum_bound(
      exact_of<double>(
          e, {&dy}, [&](const auto& v) { return ref::avg_pool2d_backward(g, v[0]); },
          [&](const auto& d) { return exact::avg_pool2d_backward<exact::Precise>(g, d[0]); },
          [&](const auto& d) { return exact::avg_pool2d_backward<exact::AbsSumUp>(g, d[0]); }),
      windows_per_element(g) + 1);
  b.model = "S = sum |dy| / (KH*KW), K = ceil(KH/SH)*ceil(KW/SW) + 1 (windows per element, "
            "then the division)";
  return b;
}

// max_pool2d forward selects an input: no rounding, K = 0 (equality), S = |y|. The backward
// adds the dy of the windows whose maximum is the element: at most W terms, K = W, S = the same
// scatter of |dy| (argmax from x, as the forward).
Bound max_pool2d_forward_bound(const Pool2dGeom& g, const Tensor<double>& x) {
  Bound b;
  b.exact = ref::max_pool2d_forward(g, to50(x));
  b.s = abs_of(b.exact);
  b.k = constant_k(b.exact.shape(), 0);
  b.model = "S = |y|, K = 0 (a selection: equality)";
  return b;
}
Bound max_pool2d_backward_bound(const Pool2dGeom& g, const Tensor<double>& x,
                                const Tensor<double>& dy) {
  const Tensor<f50> x50 = to50(x), dy50 = to50(dy);
  Bound b;
  b.exact = ref::max_pool2d_backward(g, x50, dy50);
  b.s = ref::max_pool2d_backward(g, x50, abs_of(dy50));
  b.k = constant_k(b.exact.shape(), windows_per_element(g));
  b.model = "S = sum |dy| routed to the element, K = ceil(KH/SH)*ceil(KW/SW)";
  b.probabilistic = true;  // a sum of at most K routed dy
  return b;
}

// ---------------------------------------------------------------- activations
// relu: y = x or 0, dx = dy or 0: exact, K = 0.
Bound relu_forward_bound(const Tensor<double>& x) {
  Bound b;
  b.exact = ref::relu_forward(to50(x));
  b.s = abs_of(b.exact);
  b.k = constant_k(x.shape(), 0);
  b.model = "S = |y|, K = 0 (exact: equality)";
  return b;
}
Bound relu_backward_bound(const Tensor<double>& x, const Tensor<double>& dy) {
  Bound b;
  b.exact = ref::relu_backward(to50(x), to50(dy));
  b.s = abs_of(b.exact);
  b.k = constant_k(x.shape(), 0);
  b.model = "S = |dx|, K = 0 (exact: equality)";
  return b;
}

// sigmoid: for x >= 0, 1 / (1 + exp(-x)): exp L, the + one (relative to 1 + e it is at most
// the error of e), the / one: L + 2. For x < 0, e / (1 + e), e = exp(x): numerator L,
// denominator L + 1, the / one: 2L + 2. K = 2L + 2 either way (whichever form a kernel uses
// where), S = |y|: a budget of 2L + 2 = 10 roundings, 5 ulp of y.
Bound sigmoid_forward_bound(const Tensor<double>& x) {
  Bound b;
  b.exact = ref::sigmoid_forward(to50(x));
  b.s = abs_of(b.exact);
  b.k = constant_k(x.shape(), 2 * L + 2);
  b.model = "S = |y|, K = 2L + 2 = 10 (exp at 2 ulp, +, /; 5 ulp of y)";
  return b;
}
// dx = dy * y * (1 - y), y and dy given. As written: 1 - y one rounding, two products: error
// <= gamma(3) |dy y (1 - y)|. As dy * (y - y*y): y*y rounds by u y^2 and the difference
// cancels, so the error is not relative to dx; both are within gamma(3) |dy| (|y| + y^2), the
// sum of the absolute terms of dy*y - dy*y*y. K = 3, S = |dy| (|y| + y^2).
Bound sigmoid_backward_bound(const Tensor<double>& y, const Tensor<double>& dy) {
  const Tensor<f50> y50 = to50(y), dy50 = to50(dy);
  Bound b;
  b.exact = ref::sigmoid_backward(y50, dy50);
  b.s = Tensor<f50>(y.shape());
  for (index_t i = 0; i < y.numel(); ++i)
    b.s[i] = abs(dy50[i]) * (abs(y50[i]) + y50[i] * y50[i]);
  b.k = constant_k(y.shape(), 3);
  b.model = "S = |dy| (|y| + y^2), K = 3";
  return b;
}

// tanh: one libm call, K = L, S = |y| (2 ulp of y).
Bound tanh_forward_bound(const Tensor<double>& x) {
  Bound b;
  b.exact = ref::tanh_forward(to50(x));
  b.s = abs_of(b.exact);
  b.k = constant_k(x.shape(), L);
  b.model = "S = |y|, K = L = 4 (libm tanh at 2 ulp)";
  return b;
}
// dx = dy * (1 - y^2): y^2 (u y^2), 1 - y^2 (u |1 - y^2|), the product (u |dx|): within
// gamma(3) |dy| (1 + y^2) (|1 - y^2| <= 1 + y^2); (1 - y)(1 + y) dy is inside it as well.
Bound tanh_backward_bound(const Tensor<double>& y, const Tensor<double>& dy) {
  const Tensor<f50> y50 = to50(y), dy50 = to50(dy);
  Bound b;
  b.exact = ref::tanh_backward(y50, dy50);
  b.s = Tensor<f50>(y.shape());
  for (index_t i = 0; i < y.numel(); ++i) b.s[i] = abs(dy50[i]) * (f50(1) + y50[i] * y50[i]);
  b.k = constant_k(y.shape(), 3);
  b.model = "S = |dy| (1 + y^2), K = 3";
  return b;
}

namespace {
// Per slice along dim 1 (m the max, d_j = x_j - m <= 0, p_j = softmax_j): R_c = ceil(-d_c)
// for each element and R = ceil(sum_j p_j (-d_j)) for the slice. The rounding of d_j
// (x_j - m rounds by u |d_j|) is amplified by exp into a relative error |d_j| u of its term
// (exp(|d| u) - 1 <= gamma(|d|)), so a numerator exp(d_c) carries R_c + L roundings and the sum
// s = sum_j exp(d_j), whose terms are positive, R + L + (C - 1) relative to s.
struct SliceCounts {
  std::vector<index_t> rc;   // per element
  std::vector<index_t> r;    // per element: the R of its slice
  std::vector<f50> lse;      // per element: log s of its slice
  std::vector<f50> dist;     // per element: m - x_c
};
SliceCounts slice_counts(const Tensor<f50>& x) {
  using std::exp;
  using std::log;
  const ref::detail::Dim1View v(x.shape());
  SliceCounts sc;
  const auto n = static_cast<std::size_t>(x.numel());
  sc.rc.resize(n), sc.r.resize(n), sc.lse.resize(n), sc.dist.resize(n);
  for (index_t o = 0; o < v.outer; ++o)
    for (index_t i = 0; i < v.inner; ++i) {
      f50 m = x[v.at(o, 0, i)];
      for (index_t c = 1; c < v.c; ++c) m = std::max(m, x[v.at(o, c, i)]);
      f50 s = 0, w = 0;
      for (index_t c = 0; c < v.c; ++c) {
        const f50 e = exp(x[v.at(o, c, i)] - m);
        s += e;
        w += e * (m - x[v.at(o, c, i)]);
      }
      const index_t r = ceil_count(w / s);
      const f50 lse = log(s);
      for (index_t c = 0; c < v.c; ++c) {
        const auto at = static_cast<std::size_t>(v.at(o, c, i));
        sc.dist[at] = m - x[v.at(o, c, i)];
        sc.rc[at] = ceil_count(sc.dist[at]);
        sc.r[at] = r;
        sc.lse[at] = lse;
      }
    }
  return sc;
}
}  // namespace

// softmax: y_c = exp(d_c) / s. Numerator R_c + L, denominator R + L + C - 1, the division one
// (two with a reciprocal): K = C + 2L + R_c + R + 2, S = y_c (the error is relative to y_c).
Bound softmax_forward_bound(const Tensor<double>& x) {
  const Tensor<f50> x50 = to50(x);
  const SliceCounts sc = slice_counts(x50);
  const index_t c = x.size(1);
  Bound b;
  b.exact = ref::softmax_forward(x50);
  b.s = abs_of(b.exact);
  b.k.resize(static_cast<std::size_t>(x.numel()));
  for (std::size_t i = 0; i < b.k.size(); ++i) b.k[i] = c + 2 * L + sc.rc[i] + sc.r[i] + 2;
  b.model = "S = y, K = C + 2L + R_c + R + 2 (L = 4: exp at 2 ulp; dim 1)";
  return b;
}
// dx_c = y_c (dy_c - sum_j y_j dy_j), y and dy given: the dot gamma(C) sum |y_j dy_j|, the
// difference and the product one each: K = C + 2, S = |y_c| (|dy_c| + sum_j |y_j dy_j|).
Bound softmax_backward_bound(const Tensor<double>& y, const Tensor<double>& dy) {
  const Tensor<f50> y50 = to50(y), dy50 = to50(dy);
  Bound b;
  b.exact = ref::softmax_backward(y50, dy50);
  // |y_c| (|dy_c| + sum_j |y_j| |dy_j|): the reference formula on |y|, with dy_c - dot
  // replaced by |dy_c| + |dot| terms, computed here directly.
  const ref::detail::Dim1View v(y.shape());
  b.s = Tensor<f50>(y.shape());
  for (index_t o = 0; o < v.outer; ++o)
    for (index_t i = 0; i < v.inner; ++i) {
      f50 dot = 0;
      for (index_t c = 0; c < v.c; ++c) dot += abs(y50[v.at(o, c, i)] * dy50[v.at(o, c, i)]);
      for (index_t c = 0; c < v.c; ++c)
        b.s[v.at(o, c, i)] = abs(y50[v.at(o, c, i)]) * (abs(dy50[v.at(o, c, i)]) + dot);
    }
  b.k = constant_k(y.shape(), y.size(1) + 2);
  b.model = "S = |y_c| (|dy_c| + sum_j |y_j dy_j|), K = C + 2 (dim 1)";
  b.probabilistic = true;  // the dot's C, the difference, the product: distinct roundings
  return b;
}

// log_softmax: y_c = d_c - log s. s carries R + L + C - 1 roundings relative (theta), so log s
// is off by |theta| absolutely, plus L u lse from log itself; d_c = x_c - m rounds by u |d_c|;
// the last subtraction by u |y_c|; computed as x_c - (m + log s) instead, m + log s rounds by
// u |m + lse| <= u (|x_c| + |d_c| + lse). Every coefficient is at most K u with K = C + R +
// 2L + 2, so S = 1 + |x_c| + |x_c - m| + lse + |y_c| (the 1 carries theta).
Bound log_softmax_forward_bound(const Tensor<double>& x) {
  const Tensor<f50> x50 = to50(x);
  const SliceCounts sc = slice_counts(x50);
  const index_t c = x.size(1);
  Bound b;
  b.exact = ref::log_softmax_forward(x50);
  b.s = Tensor<f50>(x.shape());
  b.k.resize(static_cast<std::size_t>(x.numel()));
  for (index_t i = 0; i < x.numel(); ++i) {
    const auto at = static_cast<std::size_t>(i);
    b.s[i] = f50(1) + abs(x50[i]) + sc.dist[at] + sc.lse[at] + abs(b.exact[i]);
    b.k[at] = c + sc.r[at] + 2 * L + 2;
  }
  b.model = "S = 1 + |x_c| + (m - x_c) + lse + |y_c|, K = C + R + 2L + 2 (L = 4; dim 1)";
  return b;
}
// dx_c = dy_c - exp(y_c) sum_j dy_j, y and dy given: the sum gamma(C - 1) sum |dy_j|, exp L,
// the product and the difference one each: K = C + L + 1, S = |dy_c| + exp(y_c) sum_j |dy_j|.
Bound log_softmax_backward_bound(const Tensor<double>& y, const Tensor<double>& dy) {
  using std::exp;
  const Tensor<f50> y50 = to50(y), dy50 = to50(dy);
  Bound b;
  b.exact = ref::log_softmax_backward(y50, dy50);
  const ref::detail::Dim1View v(y.shape());
  b.s = Tensor<f50>(y.shape());
  for (index_t o = 0; o < v.outer; ++o)
    for (index_t i = 0; i < v.inner; ++i) {
      f50 sum = 0;
      for (index_t c = 0; c < v.c; ++c) sum += abs(dy50[v.at(o, c, i)]);
      for (index_t c = 0; c < v.c; ++c)
        b.s[v.at(o, c, i)] = abs(dy50[v.at(o, c, i)]) + exp(y50[v.at(o, c, i)]) * sum;
    }
  b.k = constant_k(y.shape(), y.size(1) + L + 1);
  b.model = "S = |dy_c| + exp(y_c) sum_j |dy_j|, K = C + L + 1 (L = 4; dim 1)";
  return b;
}

// ---------------------------------------------------------------- losses
// mse_loss = (1/M) sum_i (x_i - t_i)^2: the difference one rounding (two in its square), the
// square one, the sum of M non-negative terms M - 1 relative, the division by M one (two with
// a reciprocal): K = M + 4, S = the loss.
Bound mse_loss_forward_bound(const Tensor<double>& x, const Tensor<double>& target) {
  Bound b;
  b.exact = ref::mse_loss_forward(to50(x), to50(target));
  b.s = abs_of(b.exact);
  b.k = {x.numel() + 4};
  b.model = "S = the loss, K = M + 4";
  return b;
}
// dx_i = dloss * 2 (x_i - t_i) / M: the difference, the division (or two with a reciprocal),
// the product: K = 4, S = |dx_i| (a product: no cancellation); 2 dloss is exact.
Bound mse_loss_backward_bound(const Tensor<double>& x, const Tensor<double>& target,
                              double dloss) {
  Bound b;
  b.exact = ref::mse_loss_backward(to50(x), to50(target), f50(dloss));
  b.s = abs_of(b.exact);
  b.k = constant_k(x.shape(), 4);
  b.model = "S = |dx|, K = 4";
  return b;
}

// cross_entropy = (1/N) sum_n tau_n, tau_n = m_n + lse_n - x[n,t_n] = -log_softmax(x_n)[t_n]:
// each tau_n within gamma(C + R_n + 2L + 2) (1 + |x_t| + |x_t - m| + lse + tau_n) (log_softmax
// above); the sum of N terms tau_n >= 0 N - 1 more, the mean two: K = C + max_n R_n + 2L + N +
// 3, S = (1/N) sum_n (1 + |x_t| + |x_t - m_n| + lse_n + tau_n).
Bound cross_entropy_forward_bound(const Tensor<double>& logits,
                                  const std::vector<index_t>& targets) {
  const Tensor<f50> x50 = to50(logits);
  const SliceCounts sc = slice_counts(x50);
  const index_t nb = logits.size(0), nc = logits.size(1);
  Bound b;
  b.exact = ref::cross_entropy_forward(x50, targets);
  f50 s = 0;
  index_t r = 0;
  for (index_t n = 0; n < nb; ++n) {
    const index_t t = targets[static_cast<std::size_t>(n)];
    const auto at = static_cast<std::size_t>(n * nc + t);
    s += f50(1) + abs(x50[n * nc + t]) + sc.dist[at] + sc.lse[at] + sc.lse[at] + sc.dist[at];
    r = std::max(r, sc.r[at]);
  }
  // tau_n = (m - x_t) + lse: the two terms above after |x_t - m| and lse
  b.s = Tensor<f50>::scalar(s / f50(double(nb)));
  b.k = {nc + r + 2 * L + nb + 3};
  b.model = "S = mean_n (1 + |x_t| + |x_t - m| + lse + loss_n), K = C + R + 2L + N + 3";
  return b;
}
// dx[n,c] = (dloss / N) (p_c - [c == t_n]): p_c as softmax, C + 2L + R_c + R + 2; the
// subtraction of 1 one rounding relative to |p - [c == t]|; dloss / N two; the product one:
// K = C + 2L + R_c + R + 6, S = |dloss| / N (p_c + |p_c - [c == t_n]|).
Bound cross_entropy_backward_bound(const Tensor<double>& logits,
                                   const std::vector<index_t>& targets, double dloss) {
  const Tensor<f50> x50 = to50(logits);
  const SliceCounts sc = slice_counts(x50);
  const index_t nb = logits.size(0), nc = logits.size(1);
  const Tensor<f50> p = ref::softmax_forward(x50);
  Bound b;
  b.exact = ref::cross_entropy_backward(x50, targets, f50(dloss));
  b.s = Tensor<f50>(logits.shape());
  b.k.resize(static_cast<std::size_t>(logits.numel()));
  const f50 scale = abs(f50(dloss)) / f50(double(nb));
  for (index_t n = 0; n < nb; ++n)
    for (index_t c = 0; c < nc; ++c) {
      const auto at = static_cast<std::size_t>(n * nc + c);
      const f50 onehot = c == targets[static_cast<std::size_t>(n)] ? f50(1) : f50(0);
      b.s[n * nc + c] = scale * (p[n * nc + c] + abs(p[n * nc + c] - onehot));
      b.k[at] = nc + 2 * L + sc.rc[at] + sc.r[at] + 6;
    }
  b.model = "S = |dloss|/N (p + |p - onehot|), K = C + 2L + R_c + R + 6";
  return b;
}

template <class T>
OracleReport judge_bound(const Bound& b, const Tensor<T>& actual, const std::string& op,
                         const std::string& problem, const std::string& output, Engine engine,
                         const OracleOptions& opt, gradcheck::UlpPrecision storage,
                         gradcheck::UlpPrecision accumulate) {
  assert(actual.shape() == b.exact.shape());
  OracleReport r;
  r.op = op;
  r.problem = problem;
  r.output = output;
  r.dtype = gradcheck::precision_name(storage);
  r.engine = engine;
  r.generated = false;
  r.model = b.model;
  OracleOptions o;
  o.tier = opt.tier;
  o.false_fail_probability = opt.false_fail_probability;
  const auto fail = driver::judge<T>(r, actual, b.exact, b.s, b.k, 0, o, b.probabilistic,
                                     driver::Precisions{storage, accumulate});
  for (index_t i = 0; i < actual.numel(); ++i)
    if (std::isnan(actual[i])) r.unwritten.push_back(i);  // reported as NaN, see print()
  // Where the failing elements are, by axis (n, c, h, w by rank: the caller's data carries no
  // geometry facts such as padding here).
  r.pattern = driver::failure_pattern(actual.shape(), fail, driver::PatternSpec{});
  return r;
}
template <class T>
OracleReport judge_bound(const Bound& b, const Tensor<T>& actual, const std::string& op,
                         const std::string& problem, const std::string& output, Engine engine,
                         const OracleOptions& opt) {
  const driver::Precisions p = driver::precisions_of<T>();
  return judge_bound(b, actual, op, problem, output, engine, opt, p.storage, p.accumulate);
}
template OracleReport judge_bound<float>(const Bound&, const Tensor<float>&, const std::string&,
                                         const std::string&, const std::string&, Engine,
                                         const OracleOptions&);
template OracleReport judge_bound<double>(const Bound&, const Tensor<double>&,
                                          const std::string&, const std::string&,
                                          const std::string&, Engine, const OracleOptions&);
template OracleReport judge_bound<float>(const Bound&, const Tensor<float>&, const std::string&,
                                         const std::string&, const std::string&, Engine,
                                         const OracleOptions&, gradcheck::UlpPrecision,
                                         gradcheck::UlpPrecision);
template OracleReport judge_bound<double>(const Bound&, const Tensor<double>&,
                                          const std::string&, const std::string&,
                                          const std::string&, Engine, const OracleOptions&,
                                          gradcheck::UlpPrecision, gradcheck::UlpPrecision);

}  // namespace tapegrad::oracle
