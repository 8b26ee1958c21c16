// The probabilistic tier (oracle/raw.hpp "Tiers") as the default verdict must not cry wolf: a
// correct float or double kernel, in any summation order, passes it on the checks' generated
// inputs, case after case. Under Higham and Mary's model the chance of one false failure per
// element is below 1e-9 (union bound: below ~1e-4 over a full default run of these cases), so
// a single failure here means the model or its implementation is wrong (a lambda too small, a
// K counted short, gamma~ used for an op that is not a sum of distinct roundings).
//
// Kernels: tapegrad's fast linear and conv2d (blocked FMA chains of 256 terms, OpenMP), and
// naive loops written here in three other orders (forward, reverse, pairwise). Geometries:
// reductions from 1 to ~6000 terms (on both sides of K ~ lambda^2 ~ 45, where gamma~ starts
// being smaller than gamma), every direction of linear, conv2d forward and backward-weights
// (K = N*P*Q up to a few thousand). Catches: a probabilistic bound tighter than the model
// allows (lambda from the wrong probability, sqrt(K) of the wrong K, accumulate's extra term
// forgotten, u of the wrong precision).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/kernels/linear_fast.hpp"
#include "tapegrad/tapegrad.hpp"

namespace tapegrad {
namespace {

using oracle::OracleOptions;
using oracle::OracleReport;

enum class Order { fast = 0, forward = 1, reverse = 2, pairwise = 3 };
const char* order_names[] = {"fast", "forward", "reverse", "pairwise"};

// sum_{j < k} term(j) in the given naive order, accumulated in T.
template <class T, class Term>
T naive_sum(index_t k, Order order, const Term& term) {
  if (order == Order::pairwise) {
    std::vector<T> v(static_cast<std::size_t>(k));
    for (index_t j = 0; j < k; ++j) v[std::size_t(j)] = term(j);
    for (std::size_t w = 1; w < v.size(); w *= 2)
      for (std::size_t i = 0; i + w < v.size(); i += 2 * w) v[i] += v[i + w];
    return v.empty() ? T(0) : v[0];
  }
  T acc(0);
  for (index_t j = 0; j < k; ++j) acc += term(order == Order::reverse ? k - 1 - j : j);
  return acc;
}

std::string report_of(const OracleReport& r) {
  std::ostringstream os;
  r.print(os);
  return os.str();
}

template <class T>
void linear_passes() {
  const auto n = *rc::gen::inRange<index_t>(1, 5);
  const auto in = *rc::gen::oneOf(rc::gen::inRange<index_t>(1, 64),
                                  rc::gen::inRange<index_t>(64, 6000));
  const auto out = *rc::gen::inRange<index_t>(1, 4);
  const bool bias = *rc::gen::arbitrary<bool>();
  const auto order = static_cast<Order>(*rc::gen::inRange(0, 4));
  const auto dir = *rc::gen::inRange(0, 4);  // forward, backward data / weights / bias
  OracleOptions opt;
  opt.seed = *rc::gen::inRange<std::uint64_t>(1, 1u << 30);
  if (*rc::gen::arbitrary<bool>()) opt.grad_mode = oracle::GradMode::accumulate;
  RC_TAG(order_names[static_cast<int>(order)]);
  const oracle::LinearProblem prob{Shape{n, in}, Shape{out, in}, bias && dir == 0};
  const LinearGeom g = make_linear_geom(prob.x, prob.w, nullptr);
  const bool acc = opt.grad_mode == oracle::GradMode::accumulate;
  // out[i] = (acc ? out[i] : 0) + value: the kernel honours the declared mode
  auto store = [acc](T* o, index_t i, T v) { o[i] = acc ? o[i] + v : v; };
  OracleReport r;
  if (dir == 0) {
    r = oracle::check_linear_forward<T>(prob, [&](const T* x, const T* w, const T* b, T* y) {
      if (order == Order::fast) {
        const Tensor<T> xs(g.x_shape(), std::vector<T>(x, x + n * in));
        const Tensor<T> ws(g.w_shape(), std::vector<T>(w, w + out * in));
        const Tensor<T> bs(Shape{out}, b ? std::vector<T>(b, b + out) : std::vector<T>(out));
        LinearGeom gb = g;
        gb.has_bias = b != nullptr;
        const Tensor<T> ys = fast::linear_forward(gb, xs, ws, b ? &bs : nullptr);
        std::copy(ys.begin(), ys.end(), y);
        return;
      }
      for (index_t a = 0; a < n; ++a)
        for (index_t o = 0; o < out; ++o)
          y[a * out + o] = (b ? b[o] : T(0)) + naive_sum<T>(in, order, [&](index_t i) {
                             return x[a * in + i] * w[o * in + i];
                           });
    }, opt);
  } else if (dir == 1) {
    r = oracle::check_linear_backward_data<T>(prob, [&](const T* dy, const T* w, T* dx) {
      const Tensor<T> ds(g.y_shape(), std::vector<T>(dy, dy + n * out));
      const Tensor<T> ws(g.w_shape(), std::vector<T>(w, w + out * in));
      const Tensor<T> f =
          order == Order::fast ? fast::linear_backward_data(g, ds, ws) : Tensor<T>();
      for (index_t a = 0; a < n; ++a)
        for (index_t i = 0; i < in; ++i)
          store(dx, a * in + i,
                order == Order::fast ? f[a * in + i]
                                     : naive_sum<T>(out, order, [&](index_t o) {
                                         return dy[a * out + o] * w[o * in + i];
                                       }));
    }, opt);
  } else if (dir == 2) {
    r = oracle::check_linear_backward_weights<T>(prob, [&](const T* x, const T* dy, T* dw) {
      const Tensor<T> xs(g.x_shape(), std::vector<T>(x, x + n * in));
      const Tensor<T> ds(g.y_shape(), std::vector<T>(dy, dy + n * out));
      const Tensor<T> f =
          order == Order::fast ? fast::linear_backward_weights(g, xs, ds) : Tensor<T>();
      for (index_t o = 0; o < out; ++o)
        for (index_t i = 0; i < in; ++i)
          store(dw, o * in + i,
                order == Order::fast ? f[o * in + i]
                                     : naive_sum<T>(n, order, [&](index_t a) {
                                         return dy[a * out + o] * x[a * in + i];
                                       }));
    }, opt);
  } else {
    // backward-bias over a long batch: K = N up to 6000 (the batch takes `in`'s length here)
    const oracle::LinearProblem pb{Shape{in, 2}, Shape{out, 2}, false};
    const LinearGeom gb = make_linear_geom(pb.x, pb.w, nullptr);
    r = oracle::check_linear_backward_bias<T>(pb, [&](const T* dy, T* db) {
      const Tensor<T> ds(gb.y_shape(), std::vector<T>(dy, dy + in * out));
      const Tensor<T> f = order == Order::fast ? fast::linear_backward_bias(gb, ds) : Tensor<T>();
      for (index_t o = 0; o < out; ++o)
        store(db, o,
              order == Order::fast
                  ? f[o]
                  : naive_sum<T>(in, order, [&](index_t a) { return dy[a * out + o]; }));
    }, opt);
  }
  RC_CLASSIFY(r.probabilistic_elements > 0, "gamma~ < gamma somewhere");
  RC_ASSERT(r.tier == oracle::Tier::probabilistic);
  if (!r.passed()) RC_FAIL(report_of(r));
}

RC_GTEST_PROP(ProbabilisticTier, correctFloatLinearKernelsInAnyOrderNeverFailIt, ()) {
  linear_passes<float>();
}
RC_GTEST_PROP(ProbabilisticTier, correctDoubleLinearKernelsInAnyOrderNeverFailIt, ()) {
  linear_passes<double>();
}

// conv2d forward and backward-weights with tapegrad's fast kernels, and a naive
// backward-weights in reverse order (K = N*P*Q: the long reduction of a convolution).
template <class T>
void conv2d_passes() {
  const auto n = *rc::gen::inRange<index_t>(1, 4);
  const auto c = *rc::gen::inRange<index_t>(1, 12);  // forward K = C R S + 1 up to 300
  const auto h = *rc::gen::inRange<index_t>(3, 30);
  const auto w = *rc::gen::inRange<index_t>(3, 30);
  const auto k = *rc::gen::inRange<index_t>(1, 4);
  const auto r = *rc::gen::inRange<index_t>(1, 6);
  const auto pad = *rc::gen::inRange<index_t>(0, 2);
  const bool forward = *rc::gen::arbitrary<bool>();
  const bool naive = !forward && *rc::gen::arbitrary<bool>();
  oracle::Conv2dProblem prob;
  prob.x = Shape{n, c, h, w};
  prob.w = Shape{k, c, std::min(r, h), std::min(r, w)};
  prob.params.pad = {pad, pad};
  prob.bias = forward;
  OracleOptions opt;
  opt.seed = *rc::gen::inRange<std::uint64_t>(1, 1u << 30);
  const Shape bs{k};
  const Conv2dGeom g = make_conv2d_geom(prob.x, prob.w, forward ? &bs : nullptr, prob.params);
  RC_TAG(forward ? "forward" : naive ? "backward_weights naive reverse" : "backward_weights fast");
  OracleReport rep;
  if (forward) {
    rep = oracle::check_conv2d_forward<T>(prob, [&](const T* x, const T* wt, const T* b, T* y) {
      const Tensor<T> xs(g.x_shape(), std::vector<T>(x, x + g.x_shape().numel()));
      const Tensor<T> ws(g.w_shape(), std::vector<T>(wt, wt + g.w_shape().numel()));
      const Tensor<T> bt(bs, std::vector<T>(b, b + k));
      const Tensor<T> ys = fast::conv2d_forward(g, xs, ws, &bt);
      std::copy(ys.begin(), ys.end(), y);
    }, opt);
  } else {
    rep = oracle::check_conv2d_backward_weights<T>(prob, [&](const T* x, const T* dy, T* dw) {
      const Tensor<T> xs(g.x_shape(), std::vector<T>(x, x + g.x_shape().numel()));
      const Tensor<T> ds(g.y_shape(), std::vector<T>(dy, dy + g.y_shape().numel()));
      if (!naive) {
        const Tensor<T> f = fast::conv2d_backward_weights(g, xs, ds);
        std::copy(f.begin(), f.end(), dw);
        return;
      }
      // dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] x[n,c,p*st - pad + r, q*st - pad + s], stride 1
      for (index_t kk = 0; kk < g.k; ++kk)
        for (index_t cc = 0; cc < g.c; ++cc)
          for (index_t rr = 0; rr < g.r; ++rr)
            for (index_t ss = 0; ss < g.s; ++ss) {
              T acc(0);
              for (index_t nn = g.n - 1; nn >= 0; --nn)
                for (index_t p = g.p - 1; p >= 0; --p)
                  for (index_t q = g.q - 1; q >= 0; --q) {
                    const index_t ih = p - pad + rr, iw = q - pad + ss;
                    if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                    acc += ds(nn, kk, p, q) * xs(nn, cc, ih, iw);
                  }
              dw[((kk * g.c + cc) * g.r + rr) * g.s + ss] = acc;
            }
    }, opt);
  }
  RC_CLASSIFY(rep.probabilistic_elements > 0, "gamma~ < gamma somewhere");
  if (!rep.passed()) RC_FAIL(report_of(rep));
}

RC_GTEST_PROP(ProbabilisticTier, correctFloatConv2dKernelsNeverFailIt, ()) {
  conv2d_passes<float>();
}
RC_GTEST_PROP(ProbabilisticTier, correctDoubleConv2dKernelsNeverFailIt, ()) {
  conv2d_passes<double>();
}

}  // namespace
}  // namespace tapegrad
