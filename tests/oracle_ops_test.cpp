// The raw-buffer checks of every op besides conv2d (oracle/linear.hpp, pool.hpp,
// activation.hpp, loss.hpp), each shown three ways, in float and double:
//  1. a correct implementation passes: the project's fast kernels (kernels/*_fast.hpp),
//     which the oracle never calls, stand in for a third-party library;
//  2. the bound is tight: a kernel that writes the exact result (50-digit reference, rounded
//     once) except at one element, placed just inside the bound, passes; placed at the first T
//     value past it, fails at exactly that element. The bound is recomputed HERE from the
//     formulas of the headers (gamma(K) = K u / (1 - K u), this file's own K and S), so a bound
//     the oracle loosened or tightened by more than one T grid step fails the test;
//  3. a planted indexing bug (per op: an off-by-one loop, the wrong dimension, the wrong batch
//     row, ...) fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "tapegrad/kernels/activation_fast.hpp"
#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/kernels/activation_ref.hpp"
#include "tapegrad/kernels/linear_fast.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/kernels/loss_fast.hpp"
#include "tapegrad/kernels/loss_ref.hpp"
#include "tapegrad/kernels/pool_fast.hpp"
#include "tapegrad/kernels/pool_ref.hpp"
#include "tapegrad/tapegrad.hpp"
#include "oracle_test_support.hpp"

namespace tapegrad {
namespace {

using oracle::GradMode;
using oracle::OracleOptions;
using oracle::OracleReport;

using tapegrad::test::printed;

// The inputs a check hands its callback, as tensors of their logical shapes.
template <class T>
struct Ins {
  std::vector<Tensor<T>> t;
  std::vector<index_t> targets;  // cross_entropy
};
template <class T>
using Body = std::function<void(const Ins<T>&, T* out)>;

template <class T>
Tensor<T> wrap(const T* p, const Shape& s) {
  return Tensor<T>(s, std::vector<T>(p, p + s.numel()));
}
std::vector<index_t> wrap_targets(const std::int64_t* p, index_t n) {
  return std::vector<index_t>(p, p + n);
}
template <class T>
void put(const Tensor<T>& v, T* out) {
  std::copy(v.begin(), v.end(), out);
}
template <class T>
Tensor<f50> to50(const Tensor<T>& t) {
  return t.template cast<f50>();
}
Tensor<f50> abs50(const Tensor<f50>& t) {
  return map(t, [](const f50& v) { return f50(abs(v)); });
}
std::vector<index_t> same_k(const Shape& s, index_t k) {
  return std::vector<index_t>(static_cast<std::size_t>(s.numel()), k);
}

// One op and direction, as this test knows it.
template <class T>
struct OpDef {
  std::string name;
  std::function<OracleReport(const Body<T>&, const OracleOptions&)> check;
  std::function<Tensor<f50>(const Ins<T>&)> exact;         // the definition, in 50 digits
  std::function<Tensor<f50>(const Ins<T>&)> s;             // this test's S
  std::function<std::vector<index_t>(const Ins<T>&)> k;    // this test's K
  std::function<Tensor<T>(const Ins<T>&)> fast;            // a correct third-party kernel
  std::function<Tensor<T>(const Ins<T>&)> bug;             // the planted indexing bug
};

constexpr index_t L = 4;  // the libm budget, oracle/activation.hpp: 2 ulp = 4 roundings

// ---------------------------------------------------------------- problems
const oracle::LinearProblem linear_problem{Shape{5, 7}, Shape{4, 7}, true};
oracle::Pool2dProblem pool_problem() {
  oracle::Pool2dProblem p;
  p.x = Shape{2, 3, 7, 8};
  p.params.kernel = {3, 3};
  p.params.stride = {2, 2};
  p.params.pad = {1, 1};
  return p;
}
const Shape eltwise_shape{3, 5};
const Shape softmax_shape{2, 3, 2, 2};  // dim 1 = 3 channels, at each of 2x2 pixels
const Shape log_softmax_shape{4, 5};
const Shape mse_shape{3, 4};
const oracle::CrossEntropyProblem ce_problem{4, 5};

// ---------------------------------------------------------------- linear
template <class T>
std::vector<OpDef<T>> linear_ops() {
  const LinearGeom g = make_linear_geom(linear_problem.x, linear_problem.w, nullptr);
  LinearGeom gb = g;
  gb.has_bias = true;
  const Shape xs = g.x_shape(), ws = g.w_shape(), bs = g.b_shape(), ys = g.y_shape();
  std::vector<OpDef<T>> ops;
  OpDef<T> fwd;
  fwd.name = "linear_forward";
  fwd.check = [=](const Body<T>& body, const OracleOptions& o) {
    return oracle::check_linear_forward<T>(
        linear_problem,
        [=](const T* x, const T* w, const T* b, T* y) {
          body({{wrap(x, xs), wrap(w, ws), wrap(b, bs)}, {}}, y);
        },
        o);
  };
  fwd.exact = [=](const Ins<T>& in) {
    const Tensor<f50> b = to50(in.t[2]);
    return ref::linear_forward(gb, to50(in.t[0]), to50(in.t[1]), &b);
  };
  fwd.s = [=](const Ins<T>& in) {
    const Tensor<f50> b = abs50(to50(in.t[2]));
    return ref::linear_forward(gb, abs50(to50(in.t[0])), abs50(to50(in.t[1])), &b);
  };
  fwd.k = [=](const Ins<T>&) { return same_k(ys, g.in + 1); };  // in products + the bias
  fwd.fast = [=](const Ins<T>& in) { return fast::linear_forward(gb, in.t[0], in.t[1], &in.t[2]); };
  fwd.bug = [=](const Ins<T>& in) {  // the loop over features stops one short
    Tensor<T> y(ys);
    for (index_t n = 0; n < g.n; ++n)
      for (index_t o = 0; o < g.out; ++o) {
        T acc = in.t[2][o];
        for (index_t i = 0; i + 1 < g.in; ++i) acc += in.t[0](n, i) * in.t[1](o, i);
        y(n, o) = acc;
      }
    return y;
  };
  ops.push_back(fwd);

  OpDef<T> bd;
  bd.name = "linear_backward_data";
  bd.check = [=](const Body<T>& body, const OracleOptions& o) {
    return oracle::check_linear_backward_data<T>(
        linear_problem,
        [=](const T* dy, const T* w, T* dx) { body({{wrap(dy, ys), wrap(w, ws)}, {}}, dx); }, o);
  };
  bd.exact = [=](const Ins<T>& in) {
    return ref::linear_backward_data(g, to50(in.t[0]), to50(in.t[1]));
  };
  bd.s = [=](const Ins<T>& in) {
    return ref::linear_backward_data(g, abs50(to50(in.t[0])), abs50(to50(in.t[1])));
  };
  bd.k = [=](const Ins<T>&) { return same_k(xs, g.out); };
  bd.fast = [=](const Ins<T>& in) { return fast::linear_backward_data(g, in.t[0], in.t[1]); };
  bd.bug = [=](const Ins<T>& in) {  // reads w transposed-in-place: w[i*out + o] as if (in,out)
    Tensor<T> dx(xs);
    for (index_t n = 0; n < g.n; ++n)
      for (index_t i = 0; i < g.in; ++i) {
        T acc(0);
        for (index_t o = 0; o < g.out; ++o) acc += in.t[0](n, o) * in.t[1][i * g.out + o];
        dx(n, i) = acc;
      }
    return dx;
  };
  ops.push_back(bd);

  OpDef<T> bw;
  bw.name = "linear_backward_weights";
  bw.check = [=](const Body<T>& body, const OracleOptions& o) {
    return oracle::check_linear_backward_weights<T>(
        linear_problem,
        [=](const T* x, const T* dy, T* dw) { body({{wrap(x, xs), wrap(dy, ys)}, {}}, dw); }, o);
  };
  bw.exact = [=](const Ins<T>& in) {
    return ref::linear_backward_weights(g, to50(in.t[0]), to50(in.t[1]));
  };
  bw.s = [=](const Ins<T>& in) {
    return ref::linear_backward_weights(g, abs50(to50(in.t[0])), abs50(to50(in.t[1])));
  };
  bw.k = [=](const Ins<T>&) { return same_k(ws, g.n); };
  bw.fast = [=](const Ins<T>& in) { return fast::linear_backward_weights(g, in.t[0], in.t[1]); };
  bw.bug = [=](const Ins<T>& in) {  // skips the last sample of the batch
    Tensor<T> dw(ws);
    for (index_t o = 0; o < g.out; ++o)
      for (index_t i = 0; i < g.in; ++i) {
        T acc(0);
        for (index_t n = 0; n + 1 < g.n; ++n) acc += in.t[1](n, o) * in.t[0](n, i);
        dw(o, i) = acc;
      }
    return dw;
  };
  ops.push_back(bw);

  OpDef<T> bb;
  bb.name = "linear_backward_bias";
  bb.check = [=](const Body<T>& body, const OracleOptions& o) {
    return oracle::check_linear_backward_bias<T>(
        linear_problem, [=](const T* dy, T* db) { body({{wrap(dy, ys)}, {}}, db); }, o);
  };
  bb.exact = [=](const Ins<T>& in) { return ref::linear_backward_bias(g, to50(in.t[0])); };
  bb.s = [=](const Ins<T>& in) { return ref::linear_backward_bias(g, abs50(to50(in.t[0]))); };
  bb.k = [=](const Ins<T>&) { return same_k(bs, g.n); };
  bb.fast = [=](const Ins<T>& in) { return fast::linear_backward_bias(g, in.t[0]); };
  bb.bug = [=](const Ins<T>& in) {  // strides through dy along the wrong axis
    Tensor<T> db(bs);
    for (index_t o = 0; o < g.out; ++o) {
      T acc(0);
      for (index_t n = 0; n < g.n; ++n) acc += in.t[0][(o % g.n) * g.out + n % g.out];
      db[o] = acc;
    }
    return db;
  };
  ops.push_back(bb);
  return ops;
}

// ---------------------------------------------------------------- pools
// Windows that can hold one element: ceil(3/2)^2 = 4.
constexpr index_t pool_windows = 4;

template <class T>
std::vector<OpDef<T>> pool_ops() {
  const oracle::Pool2dProblem pr = pool_problem();
  const Pool2dGeom g = make_pool2d_geom(pr.x, pr.params, "test");
  const Shape xs = g.x_shape(), ys = g.y_shape();
  const index_t kk = g.prm.kernel[0] * g.prm.kernel[1];
  std::vector<OpDef<T>> ops;

  OpDef<T> mf;
  mf.name = "max_pool2d_forward";
  mf.check = [=](const Body<T>& body, const OracleOptions& o) {
    return oracle::check_max_pool2d_forward<T>(
        pr, [=](const T* x, T* y) { body({{wrap(x, xs)}, {}}, y); }, o);
  };
  mf.exact = [=](const Ins<T>& in) { return ref::max_pool2d_forward(g, to50(in.t[0])); };
  mf.s = [=](const Ins<T>& in) { return abs50(ref::max_pool2d_forward(g, to50(in.t[0]))); };
  mf.k = [=](const Ins<T>&) { return same_k(ys, 0); };  // a selection: exact
  mf.fast = [=](const Ins<T>& in) { return fast::max_pool2d_forward(g, in.t[0]); };
  mf.bug = [=](const Ins<T>& in) {  // the window's last column is never looked at
    Tensor<T> y(ys);
    for (index_t n = 0; n < g.n; ++n)
      for (index_t c = 0; c < g.c; ++c)
        for (index_t p = 0; p < g.p; ++p)
          for (index_t q = 0; q < g.q; ++q) {
            T m = -std::numeric_limits<T>::infinity();
            for (index_t i = 0; i < 3; ++i)
              for (index_t j = 0; j < 2; ++j) {
                const index_t h = p * 2 - 1 + i, w = q * 2 - 1 + j;
                if (h >= 0 && h < g.h && w >= 0 && w < g.w) m = std::max(m, in.t[0](n, c, h, w));
              }
            y(n, c, p, q) = m;
          }
    return y;
  };
  ops.push_back(mf);

  OpDef<T> mb;
  mb.name = "max_pool2d_backward";
  mb.check = [=](const Body<T>& body, const OracleOptions& o) {
    return oracle::check_max_pool2d_backward<T>(
        pr, [=](const T* x, const T* dy, T* dx) { body({{wrap(x, xs), wrap(dy, ys)}, {}}, dx); },
        o);
  };
  mb.exact = [=](const Ins<T>& in) {
    return ref::max_pool2d_backward(g, to50(in.t[0]), to50(in.t[1]));
  };
  mb.s = [=](const Ins<T>& in) {
    return ref::max_pool2d_backward(g, to50(in.t[0]), abs50(to50(in.t[1])));
  };
  mb.k = [=](const Ins<T>&) { return same_k(xs, pool_windows); };
  mb.fast = [=](const Ins<T>& in) { return fast::max_pool2d_backward(g, in.t[0], in.t[1]); };
  mb.bug = [=](const Ins<T>& in) {  // every batch element routed by the argmax of n = 0
    Tensor<T> dx(xs, T(0));
    const index_t plane = g.c * g.h * g.w;
    for (index_t n = 0; n < g.n; ++n)
      for (index_t c = 0; c < g.c; ++c)
        for (index_t p = 0; p < g.p; ++p)
          for (index_t q = 0; q < g.q; ++q) {
            const index_t at = ref::detail::max_pool2d_argmax(g, in.t[0], 0, c, p, q);
            dx[n * plane + at] += in.t[1](n, c, p, q);
          }
    return dx;
  };
  ops.push_back(mb);

  OpDef<T> af;
  af.name = "avg_pool2d_forward";
  af.check = [=](const Body<T>& body, const OracleOptions& o) {
    return oracle::check_avg_pool2d_forward<T>(
        pr, [=](const T* x, T* y) { body({{wrap(x, xs)}, {}}, y); }, o);
  };
  af.exact = [=](const Ins<T>& in) { return ref::avg_pool2d_forward(g, to50(in.t[0])); };
  af.s = [=](const Ins<T>& in) { return ref::avg_pool2d_forward(g, abs50(to50(in.t[0]))); };
  af.k = [=](const Ins<T>&) { return same_k(ys, kk + 1); };
  af.fast = [=](const Ins<T>& in) { return fast::avg_pool2d_forward(g, in.t[0]); };
  af.bug = [=](const Ins<T>& in) {  // the window one row too low (pad forgotten in height)
    Tensor<T> y(ys);
    for (index_t n = 0; n < g.n; ++n)
      for (index_t c = 0; c < g.c; ++c)
        for (index_t p = 0; p < g.p; ++p)
          for (index_t q = 0; q < g.q; ++q) {
            T acc(0);
            for (index_t i = 0; i < 3; ++i)
              for (index_t j = 0; j < 3; ++j) {
                const index_t h = p * 2 + i, w = q * 2 - 1 + j;
                if (h < g.h && w >= 0 && w < g.w) acc += in.t[0](n, c, h, w);
              }
            y(n, c, p, q) = acc / T(9);
          }
    return y;
  };
  ops.push_back(af);

  OpDef<T> ab;
  ab.name = "avg_pool2d_backward";
  ab.check = [=](const Body<T>& body, const OracleOptions& o) {
    return oracle::check_avg_pool2d_backward<T>(
        pr, [=](const T* dy, T* dx) { body({{wrap(dy, ys)}, {}}, dx); }, o);
  };
  ab.exact = [=](const Ins<T>& in) { return ref::avg_pool2d_backward(g, to50(in.t[0])); };
  ab.s = [=](const Ins<T>& in) { return ref::avg_pool2d_backward(g, abs50(to50(in.t[0]))); };
  ab.k = [=](const Ins<T>&) { return same_k(xs, pool_windows + 1); };
  ab.fast = [=](const Ins<T>& in) { return fast::avg_pool2d_backward(g, in.t[0]); };
  ab.bug = [=](const Ins<T>& in) {  // scatter into the window, the last column forgotten
    Tensor<T> dx(xs, T(0));
    for (index_t n = 0; n < g.n; ++n)
      for (index_t c = 0; c < g.c; ++c)
        for (index_t p = 0; p < g.p; ++p)
          for (index_t q = 0; q < g.q; ++q)
            for (index_t i = 0; i < 3; ++i)
              for (index_t j = 0; j < 2; ++j) {
                const index_t h = p * 2 - 1 + i, w = q * 2 - 1 + j;
                if (h >= 0 && h < g.h && w >= 0 && w < g.w)
                  dx(n, c, h, w) += in.t[0](n, c, p, q) / T(9);
              }
    return dx;
  };
  ops.push_back(ab);
  return ops;
}

// ---------------------------------------------------------------- activations
// Per slice along dim 1 of x: m - x_c, R_c = ceil(m - x_c), R = ceil(sum_j p_j (m - x_j)),
// lse = log sum_j exp(x_j - m) (activation.hpp's definitions, computed here on their own).
struct Slices {
  std::vector<f50> dist, lse;
  std::vector<index_t> rc, r;
};
Slices slices(const Tensor<f50>& x) {
  using std::exp;
  using std::log;
  const index_t outer = x.size(0), c = x.size(1), inner = x.numel() / (outer * c);
  Slices s;
  const auto n = static_cast<std::size_t>(x.numel());
  s.dist.resize(n), s.lse.resize(n), s.rc.resize(n), s.r.resize(n);
  auto up = [](const f50& v) { return static_cast<index_t>(std::ceil(static_cast<double>(v))); };
  for (index_t o = 0; o < outer; ++o)
    for (index_t i = 0; i < inner; ++i) {
      auto at = [&](index_t ch) { return (o * c + ch) * inner + i; };
      f50 m = x[at(0)];
      for (index_t ch = 1; ch < c; ++ch)
        if (x[at(ch)] > m) m = x[at(ch)];
      f50 sum = 0, spread = 0;
      for (index_t ch = 0; ch < c; ++ch) sum += exp(x[at(ch)] - m);
      for (index_t ch = 0; ch < c; ++ch) spread += exp(x[at(ch)] - m) / sum * (m - x[at(ch)]);
      for (index_t ch = 0; ch < c; ++ch) {
        const auto k = static_cast<std::size_t>(at(ch));
        s.dist[k] = m - x[at(ch)];
        s.rc[k] = up(s.dist[k]);
        s.r[k] = up(spread);
        s.lse[k] = log(sum);
      }
    }
  return s;
}

// The index of element i of a (d0, d1) tensor read transposed, as if it were (d1, d0).
index_t transposed(index_t i, index_t d0, index_t d1) {
  const index_t r = i / d1, c = i % d1;
  const index_t flat = c * d0 + r;  // position in the transposed (d1, d0) buffer
  return flat;
}

template <class T>
OpDef<T> unary_forward(const std::string& name, const Shape& shape,
                       OracleReport (*check)(const oracle::ActivationProblem&,
                                             const std::type_identity_t<oracle::UnaryFn<T>>&,
                                             const OracleOptions&)) {
  OpDef<T> d;
  d.name = name;
  d.check = [=](const Body<T>& body, const OracleOptions& o) {
    return check({shape}, [=](const T* x, T* y) { body({{wrap(x, shape)}, {}}, y); }, o);
  };
  return d;
}
template <class T>
OpDef<T> unary_backward(const std::string& name, const Shape& shape,
                        OracleReport (*check)(const oracle::ActivationProblem&,
                                              const std::type_identity_t<
                                                  oracle::UnaryBackwardFn<T>>&,
                                              const OracleOptions&)) {
  OpDef<T> d;
  d.name = name;
  d.check = [=](const Body<T>& body, const OracleOptions& o) {
    return check({shape}, [=](const T* y, const T* dy, T* dx) {
      body({{wrap(y, shape), wrap(dy, shape)}, {}}, dx);
    }, o);
  };
  return d;
}

template <class T>
std::vector<OpDef<T>> activation_ops() {
  using std::exp;
  const Shape es = eltwise_shape;
  const index_t d0 = es[0], d1 = es[1];
  std::vector<OpDef<T>> ops;

  auto rf = unary_forward<T>("relu_forward", es, &oracle::check_relu_forward<T>);
  rf.exact = [](const Ins<T>& in) { return ref::relu_forward(to50(in.t[0])); };
  rf.s = [](const Ins<T>& in) { return abs50(ref::relu_forward(to50(in.t[0]))); };
  rf.k = [=](const Ins<T>&) { return same_k(es, 0); };
  rf.fast = [](const Ins<T>& in) { return fast::relu_forward(in.t[0]); };
  rf.bug = [=](const Ins<T>& in) {  // reads x transposed
    Tensor<T> y(es);
    for (index_t i = 0; i < y.numel(); ++i)
      y[i] = std::max(in.t[0][transposed(i, d0, d1)], T(0));
    return y;
  };
  ops.push_back(rf);

  auto rb = unary_backward<T>("relu_backward", es, &oracle::check_relu_backward<T>);
  rb.exact = [](const Ins<T>& in) { return ref::relu_backward(to50(in.t[0]), to50(in.t[1])); };
  rb.s = [](const Ins<T>& in) {
    return abs50(ref::relu_backward(to50(in.t[0]), to50(in.t[1])));
  };
  rb.k = [=](const Ins<T>&) { return same_k(es, 0); };
  rb.fast = [](const Ins<T>& in) { return fast::relu_backward(in.t[0], in.t[1]); };
  rb.bug = [=](const Ins<T>& in) {  // the mask of element i taken from element i + 1
    Tensor<T> dx(es);
    for (index_t i = 0; i < dx.numel(); ++i)
      dx[i] = in.t[0][(i + 1) % dx.numel()] > T(0) ? in.t[1][i] : T(0);
    return dx;
  };
  ops.push_back(rb);

  auto sf = unary_forward<T>("sigmoid_forward", es, &oracle::check_sigmoid_forward<T>);
  sf.exact = [](const Ins<T>& in) { return ref::sigmoid_forward(to50(in.t[0])); };
  sf.s = [](const Ins<T>& in) { return abs50(ref::sigmoid_forward(to50(in.t[0]))); };
  sf.k = [=](const Ins<T>&) { return same_k(es, 2 * L + 2); };
  sf.fast = [](const Ins<T>& in) { return fast::sigmoid_forward(in.t[0]); };
  sf.bug = [=](const Ins<T>& in) {
    Tensor<T> y(es);
    for (index_t i = 0; i < y.numel(); ++i)
      y[i] = T(1) / (T(1) + std::exp(-in.t[0][transposed(i, d0, d1)]));
    return y;
  };
  ops.push_back(sf);

  auto sb = unary_backward<T>("sigmoid_backward", es, &oracle::check_sigmoid_backward<T>);
  sb.exact = [](const Ins<T>& in) { return ref::sigmoid_backward(to50(in.t[0]), to50(in.t[1])); };
  sb.s = [=](const Ins<T>& in) {  // |dy| (|y| + y^2)
    Tensor<f50> s(es);
    for (index_t i = 0; i < s.numel(); ++i) {
      const f50 y = in.t[0][i], dy = in.t[1][i];
      s[i] = abs(dy) * (abs(y) + y * y);
    }
    return s;
  };
  sb.k = [=](const Ins<T>&) { return same_k(es, 3); };
  sb.fast = [](const Ins<T>& in) { return fast::sigmoid_backward(in.t[0], in.t[1]); };
  sb.bug = [=](const Ins<T>& in) {  // dy read transposed
    Tensor<T> dx(es);
    for (index_t i = 0; i < dx.numel(); ++i)
      dx[i] = in.t[1][transposed(i, d0, d1)] * in.t[0][i] * (T(1) - in.t[0][i]);
    return dx;
  };
  ops.push_back(sb);

  auto tf = unary_forward<T>("tanh_forward", es, &oracle::check_tanh_forward<T>);
  tf.exact = [](const Ins<T>& in) { return ref::tanh_forward(to50(in.t[0])); };
  tf.s = [](const Ins<T>& in) { return abs50(ref::tanh_forward(to50(in.t[0]))); };
  tf.k = [=](const Ins<T>&) { return same_k(es, L); };
  tf.fast = [](const Ins<T>& in) { return fast::tanh_forward(in.t[0]); };
  tf.bug = [=](const Ins<T>& in) {  // the last row computed from the first
    Tensor<T> y(es);
    for (index_t i = 0; i < y.numel(); ++i)
      y[i] = std::tanh(in.t[0][i >= (d0 - 1) * d1 ? i % d1 : i]);
    return y;
  };
  ops.push_back(tf);

  auto tb = unary_backward<T>("tanh_backward", es, &oracle::check_tanh_backward<T>);
  tb.exact = [](const Ins<T>& in) { return ref::tanh_backward(to50(in.t[0]), to50(in.t[1])); };
  tb.s = [=](const Ins<T>& in) {  // |dy| (1 + y^2)
    Tensor<f50> s(es);
    for (index_t i = 0; i < s.numel(); ++i) {
      const f50 y = in.t[0][i], dy = in.t[1][i];
      s[i] = abs(dy) * (f50(1) + y * y);
    }
    return s;
  };
  tb.k = [=](const Ins<T>&) { return same_k(es, 3); };
  tb.fast = [](const Ins<T>& in) { return fast::tanh_backward(in.t[0], in.t[1]); };
  tb.bug = [=](const Ins<T>& in) {  // y of the previous element
    Tensor<T> dx(es);
    for (index_t i = 0; i < dx.numel(); ++i) {
      const T y = in.t[0][i == 0 ? 0 : i - 1];
      dx[i] = in.t[1][i] * (T(1) - y * y);
    }
    return dx;
  };
  ops.push_back(tb);

  // softmax over dim 1 of (2,3,2,2); the bug reduces over the last dim (dim=-1).
  const Shape ss = softmax_shape;
  const index_t c = ss[1];
  auto softmax_last_dim = [=](const Tensor<T>& x) {
    Tensor<T> y(ss);
    const index_t w = ss[3];
    for (index_t row = 0; row < x.numel() / w; ++row) {
      T m = x[row * w];
      for (index_t j = 1; j < w; ++j) m = std::max(m, x[row * w + j]);
      T sum(0);
      for (index_t j = 0; j < w; ++j) sum += std::exp(x[row * w + j] - m);
      for (index_t j = 0; j < w; ++j) y[row * w + j] = std::exp(x[row * w + j] - m) / sum;
    }
    return y;
  };
  auto smf = unary_forward<T>("softmax_forward", ss, &oracle::check_softmax_forward<T>);
  smf.exact = [](const Ins<T>& in) { return ref::softmax_forward(to50(in.t[0])); };
  smf.s = [](const Ins<T>& in) { return ref::softmax_forward(to50(in.t[0])); };
  smf.k = [=](const Ins<T>& in) {
    const Slices sl = slices(to50(in.t[0]));
    std::vector<index_t> k(sl.rc.size());
    for (std::size_t i = 0; i < k.size(); ++i) k[i] = c + 2 * L + sl.rc[i] + sl.r[i] + 2;
    return k;
  };
  smf.fast = [](const Ins<T>& in) { return fast::softmax_forward(in.t[0]); };
  smf.bug = [=](const Ins<T>& in) { return softmax_last_dim(in.t[0]); };
  ops.push_back(smf);

  auto smb = unary_backward<T>("softmax_backward", ss, &oracle::check_softmax_backward<T>);
  smb.exact = [](const Ins<T>& in) { return ref::softmax_backward(to50(in.t[0]), to50(in.t[1])); };
  smb.s = [=](const Ins<T>& in) {  // |y_c| (|dy_c| + sum_j |y_j dy_j|), slices over dim 1
    Tensor<f50> s(ss);
    const index_t inner = ss[2] * ss[3];
    for (index_t o = 0; o < ss[0]; ++o)
      for (index_t i = 0; i < inner; ++i) {
        f50 dot = 0;
        for (index_t ch = 0; ch < c; ++ch) {
          const index_t at = (o * c + ch) * inner + i;
          dot += abs(f50(in.t[0][at])) * abs(f50(in.t[1][at]));
        }
        for (index_t ch = 0; ch < c; ++ch) {
          const index_t at = (o * c + ch) * inner + i;
          s[at] = abs(f50(in.t[0][at])) * (abs(f50(in.t[1][at])) + dot);
        }
      }
    return s;
  };
  smb.k = [=](const Ins<T>&) { return same_k(ss, c + 2); };
  smb.fast = [](const Ins<T>& in) { return fast::softmax_backward(in.t[0], in.t[1]); };
  smb.bug = [=](const Ins<T>& in) {  // the dot over the last dim instead of dim 1
    Tensor<T> dx(ss);
    const index_t w = ss[3];
    for (index_t row = 0; row < dx.numel() / w; ++row) {
      T dot(0);
      for (index_t j = 0; j < w; ++j) dot += in.t[0][row * w + j] * in.t[1][row * w + j];
      for (index_t j = 0; j < w; ++j)
        dx[row * w + j] = in.t[0][row * w + j] * (in.t[1][row * w + j] - dot);
    }
    return dx;
  };
  ops.push_back(smb);

  // log_softmax over dim 1 of (4,5); the bug reduces over dim 0.
  const Shape ls = log_softmax_shape;
  const index_t lc = ls[1], ln = ls[0];
  auto lsf = unary_forward<T>("log_softmax_forward", ls, &oracle::check_log_softmax_forward<T>);
  lsf.exact = [](const Ins<T>& in) { return ref::log_softmax_forward(to50(in.t[0])); };
  lsf.s = [=](const Ins<T>& in) {  // 1 + |x_c| + (m - x_c) + lse + |y_c|
    const Tensor<f50> x = to50(in.t[0]), y = ref::log_softmax_forward(x);
    const Slices sl = slices(x);
    Tensor<f50> s(ls);
    for (index_t i = 0; i < s.numel(); ++i) {
      const auto k = static_cast<std::size_t>(i);
      s[i] = f50(1) + abs(x[i]) + sl.dist[k] + sl.lse[k] + abs(y[i]);
    }
    return s;
  };
  lsf.k = [=](const Ins<T>& in) {
    const Slices sl = slices(to50(in.t[0]));
    std::vector<index_t> k(sl.r.size());
    for (std::size_t i = 0; i < k.size(); ++i) k[i] = lc + sl.r[i] + 2 * L + 2;
    return k;
  };
  lsf.fast = [](const Ins<T>& in) { return fast::log_softmax_forward(in.t[0]); };
  lsf.bug = [=](const Ins<T>& in) {  // log-sum-exp over dim 0 (the batch) instead of dim 1
    Tensor<T> y(ls);
    for (index_t col = 0; col < lc; ++col) {
      T m = in.t[0](0, col);
      for (index_t n = 1; n < ln; ++n) m = std::max(m, in.t[0](n, col));
      T sum(0);
      for (index_t n = 0; n < ln; ++n) sum += std::exp(in.t[0](n, col) - m);
      for (index_t n = 0; n < ln; ++n) y(n, col) = in.t[0](n, col) - m - std::log(sum);
    }
    return y;
  };
  ops.push_back(lsf);

  auto lsb = unary_backward<T>("log_softmax_backward", ls, &oracle::check_log_softmax_backward<T>);
  lsb.exact = [](const Ins<T>& in) {
    return ref::log_softmax_backward(to50(in.t[0]), to50(in.t[1]));
  };
  lsb.s = [=](const Ins<T>& in) {  // |dy_c| + exp(y_c) sum_j |dy_j|
    Tensor<f50> s(ls);
    for (index_t n = 0; n < ln; ++n) {
      f50 sum = 0;
      for (index_t j = 0; j < lc; ++j) sum += abs(f50(in.t[1](n, j)));
      for (index_t j = 0; j < lc; ++j)
        s(n, j) = abs(f50(in.t[1](n, j))) + exp(f50(in.t[0](n, j))) * sum;
    }
    return s;
  };
  lsb.k = [=](const Ins<T>&) { return same_k(ls, lc + L + 1); };
  lsb.fast = [](const Ins<T>& in) { return fast::log_softmax_backward(in.t[0], in.t[1]); };
  lsb.bug = [=](const Ins<T>& in) {  // the sum of dy over dim 0
    Tensor<T> dx(ls);
    for (index_t col = 0; col < lc; ++col) {
      T sum(0);
      for (index_t n = 0; n < ln; ++n) sum += in.t[1](n, col);
      for (index_t n = 0; n < ln; ++n)
        dx(n, col) = in.t[1](n, col) - std::exp(in.t[0](n, col)) * sum;
    }
    return dx;
  };
  ops.push_back(lsb);
  return ops;
}

// ---------------------------------------------------------------- losses
template <class T>
std::vector<OpDef<T>> loss_ops() {
  const Shape ms = mse_shape;
  const index_t m = ms.numel();
  std::vector<OpDef<T>> ops;

  OpDef<T> mf;
  mf.name = "mse_loss_forward";
  mf.check = [=](const Body<T>& body, const OracleOptions& o) {
    return oracle::check_mse_loss_forward<T>(
        {ms}, [=](const T* x, const T* t, T* loss) { body({{wrap(x, ms), wrap(t, ms)}, {}}, loss); },
        o);
  };
  mf.exact = [](const Ins<T>& in) { return ref::mse_loss_forward(to50(in.t[0]), to50(in.t[1])); };
  mf.s = [](const Ins<T>& in) { return ref::mse_loss_forward(to50(in.t[0]), to50(in.t[1])); };
  mf.k = [=](const Ins<T>&) { return std::vector<index_t>{m + 4}; };
  mf.fast = [=](const Ins<T>& in) { return fast::mse_loss_forward(in.t[0], in.t[1], m); };
  mf.bug = [=](const Ins<T>& in) {  // the last element left out of the sum
    T acc(0);
    for (index_t i = 0; i + 1 < m; ++i) acc += (in.t[0][i] - in.t[1][i]) * (in.t[0][i] - in.t[1][i]);
    return Tensor<T>::scalar(acc / T(double(m)));
  };
  ops.push_back(mf);

  OpDef<T> mb;
  mb.name = "mse_loss_backward";
  mb.check = [=](const Body<T>& body, const OracleOptions& o) {
    return oracle::check_mse_loss_backward<T>(
        {ms},
        [=](const T* x, const T* t, const T* dl, T* dx) {
          body({{wrap(x, ms), wrap(t, ms), wrap(dl, Shape{})}, {}}, dx);
        },
        o);
  };
  mb.exact = [](const Ins<T>& in) {
    return ref::mse_loss_backward(to50(in.t[0]), to50(in.t[1]), f50(in.t[2][0]));
  };
  mb.s = [](const Ins<T>& in) {
    return abs50(ref::mse_loss_backward(to50(in.t[0]), to50(in.t[1]), f50(in.t[2][0])));
  };
  mb.k = [=](const Ins<T>&) { return same_k(ms, 4); };
  mb.fast = [=](const Ins<T>& in) {
    return fast::mse_loss_backward(in.t[0], in.t[1], in.t[2][0], m);
  };
  mb.bug = [=](const Ins<T>& in) {  // target read one element off
    Tensor<T> dx(ms);
    for (index_t i = 0; i < m; ++i)
      dx[i] = T(2) * in.t[2][0] / T(double(m)) * (in.t[0][i] - in.t[1][(i + 1) % m]);
    return dx;
  };
  ops.push_back(mb);

  const index_t nb = ce_problem.n, nc = ce_problem.c;
  const Shape cs{nb, nc};
  OpDef<T> cf;
  cf.name = "cross_entropy_forward";
  cf.check = [=](const Body<T>& body, const OracleOptions& o) {
    return oracle::check_cross_entropy_forward<T>(
        ce_problem,
        [=](const T* x, const std::int64_t* t, T* loss) {
          body({{wrap(x, cs)}, wrap_targets(t, nb)}, loss);
        },
        o);
  };
  cf.exact = [](const Ins<T>& in) { return ref::cross_entropy_forward(to50(in.t[0]), in.targets); };
  cf.s = [=](const Ins<T>& in) {  // mean_n (1 + |x_t| + (m - x_t) + lse + loss_n)
    const Tensor<f50> x = to50(in.t[0]);
    const Slices sl = slices(x);
    f50 s = 0;
    for (index_t n = 0; n < nb; ++n) {
      const index_t at = n * nc + in.targets[static_cast<std::size_t>(n)];
      const auto k = static_cast<std::size_t>(at);
      const f50 loss_n = sl.dist[k] + sl.lse[k];
      s += f50(1) + abs(x[at]) + sl.dist[k] + sl.lse[k] + loss_n;
    }
    return Tensor<f50>::scalar(s / f50(double(nb)));
  };
  cf.k = [=](const Ins<T>& in) {
    const Slices sl = slices(to50(in.t[0]));
    index_t r = 0;
    for (index_t n = 0; n < nb; ++n)
      r = std::max(r, sl.r[static_cast<std::size_t>(n * nc)]);
    return std::vector<index_t>{nc + r + 2 * L + nb + 3};
  };
  cf.fast = [=](const Ins<T>& in) { return fast::cross_entropy_forward(in.t[0], in.targets, nb); };
  cf.bug = [=](const Ins<T>& in) {  // the target of row n + 1 picked for row n
    std::vector<index_t> shifted(in.targets.size());
    for (std::size_t n = 0; n < shifted.size(); ++n)
      shifted[n] = in.targets[(n + 1) % shifted.size()];
    return fast::cross_entropy_forward(in.t[0], shifted, nb);
  };
  ops.push_back(cf);

  OpDef<T> cb;
  cb.name = "cross_entropy_backward";
  cb.check = [=](const Body<T>& body, const OracleOptions& o) {
    return oracle::check_cross_entropy_backward<T>(
        ce_problem,
        [=](const T* x, const std::int64_t* t, const T* dl, T* dx) {
          body({{wrap(x, cs), wrap(dl, Shape{})}, wrap_targets(t, nb)}, dx);
        },
        o);
  };
  cb.exact = [](const Ins<T>& in) {
    return ref::cross_entropy_backward(to50(in.t[0]), in.targets, f50(in.t[1][0]));
  };
  cb.s = [=](const Ins<T>& in) {  // |dloss| / N (p + |p - onehot|)
    const Tensor<f50> p = ref::softmax_forward(to50(in.t[0]));
    Tensor<f50> s(cs);
    for (index_t n = 0; n < nb; ++n)
      for (index_t j = 0; j < nc; ++j) {
        const f50 onehot = j == in.targets[static_cast<std::size_t>(n)] ? 1 : 0;
        s(n, j) = abs(f50(in.t[1][0])) / f50(double(nb)) * (p(n, j) + abs(p(n, j) - onehot));
      }
    return s;
  };
  cb.k = [=](const Ins<T>& in) {
    const Slices sl = slices(to50(in.t[0]));
    std::vector<index_t> k(sl.rc.size());
    for (std::size_t i = 0; i < k.size(); ++i) k[i] = nc + 2 * L + sl.rc[i] + sl.r[i] + 6;
    return k;
  };
  cb.fast = [=](const Ins<T>& in) {
    return fast::cross_entropy_backward(in.t[0], in.targets, in.t[1][0], nb);
  };
  cb.bug = [=](const Ins<T>& in) {  // the one-hot subtracted in the next row
    std::vector<index_t> shifted(in.targets.size());
    for (std::size_t n = 0; n < shifted.size(); ++n)
      shifted[n] = in.targets[(n + 1) % shifted.size()];
    return fast::cross_entropy_backward(in.t[0], shifted, in.t[1][0], nb);
  };
  ops.push_back(cb);
  return ops;
}

template <class T>
std::vector<OpDef<T>> all_ops() {
  std::vector<OpDef<T>> ops;
  for (auto* f : {&linear_ops<T>, &pool_ops<T>, &activation_ops<T>, &loss_ops<T>})
    for (auto& op : f()) ops.push_back(std::move(op));
  return ops;
}

bool is_gradient(const std::string& name) { return name.find("backward") != std::string::npos; }

// ---------------------------------------------------------------- 1. correct kernels pass
template <class T>
void expect_fast_kernels_pass() {
  for (const OpDef<T>& op : all_ops<T>()) {
    SCOPED_TRACE(op.name + " " + ScalarTraits<T>::name);
    const OracleReport r = op.check([&](const Ins<T>& in, T* out) { put(op.fast(in), out); }, {});
    EXPECT_TRUE(r.passed()) << printed(r);
    EXPECT_EQ(r.op, op.name);
    EXPECT_GT(r.numel, 0);
    EXPECT_LE(r.max_ratio, 1.0);
    std::printf("%-24s %s worst at %.3g of the bound\n", op.name.c_str(), ScalarTraits<T>::name,
                r.max_ratio);
    if (!is_gradient(op.name)) continue;
    // The same kernel adding into the buffer passes when declared accumulate, and fails
    // (as "accumulated into") when declared overwrite.
    OracleOptions acc;
    acc.grad_mode = GradMode::accumulate;
    auto adding = [&](const Ins<T>& in, T* out) {
      const Tensor<T> g = op.fast(in);
      for (index_t i = 0; i < g.numel(); ++i) out[i] += g[i];
    };
    const OracleReport ra = op.check(adding, acc);
    EXPECT_TRUE(ra.passed()) << printed(ra);
    const OracleReport ro = op.check(adding, {});
    EXPECT_FALSE(ro.passed());
  }
}
TEST(RawOracleOps, FastKernelsPassEveryCheckInFloat) { expect_fast_kernels_pass<float>(); }
TEST(RawOracleOps, FastKernelsPassEveryCheckInDouble) { expect_fast_kernels_pass<double>(); }

// ---------------------------------------------------------------- 2. the bound is tight
double gamma_of(double k, double u) { return k * u / (1 - k * u); }

template <class T>
T next_up(T v) {
  return std::nextafter(v, std::numeric_limits<T>::infinity());
}

struct Placement {
  bool above = false;
  index_t at = -1;
  double allowed = 0, error = 0, step = 0;  // the bound, the placed error, the T grid there
};

// Writes the exact result rounded once, except at pl.at (chosen on the first call: where the
// T grid is finest relative to the bound; elements with bound 0 count as finest of all), which
// gets the largest T within exact + bound, or the smallest T beyond it.
template <class T>
void place(const OpDef<T>& op, const Ins<T>& in, T* out, Placement& pl) {
  const double u = ScalarTraits<T>::unit_roundoff();
  const Tensor<f50> exact = op.exact(in), s = op.s(in);
  const std::vector<index_t> k = op.k(in);
  const index_t n = exact.numel();
  std::vector<double> allowed(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    allowed[std::size_t(i)] = gamma_of(double(k[std::size_t(i)]), u) * static_cast<double>(s[i]);
  if (pl.at < 0) {
    double best = -1;
    for (index_t i = 0; i < n; ++i) {
      const T v = io::round_to<T>(exact[i]);
      const double fine = allowed[std::size_t(i)] / double(next_up(v) - v);
      const double score = allowed[std::size_t(i)] == 0 ? 1e300 : fine;
      if (exact[i] != 0 && score > best) best = score, pl.at = i;
    }
  }
  for (index_t i = 0; i < n; ++i) out[i] = io::round_to<T>(exact[i]);
  const std::size_t a = std::size_t(pl.at);
  const f50 bound = exact[pl.at] + f50(allowed[a]);
  T v = io::round_to<T>(bound);
  if (pl.above)
    while (f50(v) <= bound) v = next_up(v);
  else
    while (f50(v) > bound) v = std::nextafter(v, -std::numeric_limits<T>::infinity());
  out[pl.at] = v;
  pl.allowed = allowed[a];
  pl.error = static_cast<double>(abs(f50(v) - exact[pl.at]));
  pl.step = double(next_up(v) - v);
}

template <class T>
void expect_bounds_tight() {
  for (const OpDef<T>& op : all_ops<T>()) {
    SCOPED_TRACE(op.name + " " + ScalarTraits<T>::name);
    Placement below, over;
    over.above = true;
    const OracleReport pass =
        op.check([&](const Ins<T>& in, T* out) { place(op, in, out, below); }, {});
    const OracleReport fail =
        op.check([&](const Ins<T>& in, T* out) { place(op, in, out, over); }, {});
    ASSERT_GE(below.at, 0);
    ASSERT_EQ(below.at, over.at);
    EXPECT_LE(below.error, below.allowed);
    EXPECT_GT(over.error, over.allowed);
    EXPECT_LE(over.error - over.allowed, 2 * over.step);  // one grid step past the bound
    EXPECT_TRUE(pass.passed()) << printed(pass);
    EXPECT_FALSE(fail.passed());
    EXPECT_EQ(fail.failing, 1) << printed(fail);
    ASSERT_TRUE(fail.worst_ratio_index.has_value());
    EXPECT_EQ(*fail.worst_ratio_index, over.at);
    EXPECT_GT(fail.max_ratio, 1.0);
  }
}
TEST(RawOracleOps, EveryBoundFailsJustAboveAndPassesJustBelowInFloat) {
  expect_bounds_tight<float>();
}
TEST(RawOracleOps, EveryBoundFailsJustAboveAndPassesJustBelowInDouble) {
  expect_bounds_tight<double>();
}

// ---------------------------------------------------------------- 3. planted indexing bugs
template <class T>
void expect_bugs_caught() {
  for (const OpDef<T>& op : all_ops<T>()) {
    SCOPED_TRACE(op.name + " " + ScalarTraits<T>::name);
    const OracleReport r = op.check([&](const Ins<T>& in, T* out) { put(op.bug(in), out); }, {});
    EXPECT_FALSE(r.passed()) << printed(r);
    EXPECT_GT(r.failing, 0);
    EXPECT_GT(r.max_ratio, 1.0);
    EXPECT_NE(printed(r).find("FAIL"), std::string::npos);
  }
}
TEST(RawOracleOps, PlantedIndexingBugOfEveryOpIsCaughtInFloat) { expect_bugs_caught<float>(); }
TEST(RawOracleOps, PlantedIndexingBugOfEveryOpIsCaughtInDouble) { expect_bugs_caught<double>(); }

// ---------------------------------------------------------------- guards, for the new ops
TEST(RawOracleOps, NeverWrittenElementAndModifiedInputAreReported) {
  const auto ops = activation_ops<double>();
  const OpDef<double>& lsb = ops[9];
  ASSERT_EQ(lsb.name, "log_softmax_backward");
  // Skips element 7 in both calls: never written, in overwrite mode and in accumulate mode.
  for (GradMode mode : {GradMode::overwrite, GradMode::accumulate}) {
    OracleOptions o;
    o.grad_mode = mode;
    const OracleReport r = lsb.check(
        [&](const Ins<double>& in, double* out) {
          const Tensor<double> g = lsb.fast(in);
          for (index_t i = 0; i < g.numel(); ++i)
            if (i != 7) out[i] = mode == GradMode::accumulate ? out[i] + g[i] : g[i];
        },
        o);
    EXPECT_FALSE(r.passed());
    ASSERT_EQ(r.unwritten.size(), 1u) << printed(r);
    EXPECT_EQ(r.unwritten[0], 7);
    EXPECT_NE(printed(r).find("dx[1,2] was never written"), std::string::npos) << printed(r);
  }
  const OracleReport m = oracle::check_cross_entropy_forward<float>(
      ce_problem, [&](const float* x, const std::int64_t* t, float* loss) {
        const_cast<std::int64_t*>(t)[0] ^= 1;  // scribbles on the targets
        *loss = 0;
        (void)x;
      });
  EXPECT_FALSE(m.passed());
  ASSERT_EQ(m.modified_inputs.size(), 1u);
  EXPECT_EQ(m.modified_inputs[0], "targets");
}

TEST(RawOracleOps, ReportSaysTheDimensionAndTheModel) {
  const auto ops = activation_ops<float>();
  const OracleReport r = ops[6].check(
      [&](const Ins<float>& in, float* out) { put(ops[6].fast(in), out); }, {});
  ASSERT_EQ(r.op, "softmax_forward");
  const std::string s = printed(r);
  EXPECT_NE(s.find("dim 1"), std::string::npos) << s;
  EXPECT_NE(s.find("S = y"), std::string::npos) << s;
  EXPECT_NE(s.find("(per element)"), std::string::npos) << s;  // K varies with R_c
}

}  // namespace
}  // namespace tapegrad

// ---------------------------------------------------------------- exact-input mode
namespace tapegrad {
namespace {

// b = floor((p - ceil(log2 K)) / 2): float K = 27 -> (24 - 5) / 2 = 9; double K = 576 ->
// (53 - 10) / 2 = 21; K = 2^24 in float leaves 0 bits ({-1, 0, 1}); 2^25 is refused.
TEST(RawOracleExactInputs, RangeFollowsPrecisionAndReductionLength) {
  EXPECT_EQ(oracle::exact_input_bits<float>(27), 9);
  EXPECT_EQ(oracle::exact_input_bits<double>(576), 21);
  EXPECT_EQ(oracle::exact_input_bits<float>(index_t(1) << 24), 0);
  EXPECT_THROW(oracle::exact_input_bits<float>(index_t(1) << 25), std::invalid_argument);
  for (float v : oracle::exact_input_values<float>(2000, 3, 0, 9)) {
    EXPECT_EQ(v, std::round(v));
    EXPECT_LE(std::fabs(v), 512.0f);
  }
}

oracle::Conv2dProblem exact_conv_problem() {
  oracle::Conv2dProblem pr;
  pr.x = Shape{2, 4, 9, 8};
  pr.w = Shape{6, 2, 3, 3};
  pr.params.stride = {2, 1};
  pr.params.pad = {1, 2};
  pr.params.dilation = {1, 2};
  pr.params.groups = 2;
  pr.bias = true;
  return pr;
}

// Every correct kernel gives the exact result on exact inputs, whatever its order: the fast
// kernels (blocked, vectorized, FMA) pass with equality.
template <class T>
void expect_fast_sums_exact() {
  OracleOptions ex;
  ex.exact_inputs = true;
  const oracle::Conv2dProblem pr = exact_conv_problem();
  const Shape bs{pr.w[0]};
  const Conv2dGeom g = make_conv2d_geom(pr.x, pr.w, &bs, pr.params);
  const OracleReport f = oracle::check_conv2d_forward<T>(
      pr,
      [&](const T* x, const T* w, const T* b, T* y) {
        const Tensor<T> bt = wrap(b, bs);
        put(fast::conv2d_forward(g, wrap(x, g.x_shape()), wrap(w, g.w_shape()), &bt), y);
      },
      ex);
  EXPECT_TRUE(f.passed()) << printed(f);
  EXPECT_EQ(f.reduction_length, 0);
  EXPECT_EQ(f.max_abs_error, 0);
  EXPECT_NE(printed(f).find("equality"), std::string::npos);
  const OracleReport w = oracle::check_conv2d_backward_weights<T>(
      pr,
      [&](const T* x, const T* dy, T* dw) {
        put(fast::conv2d_backward_weights(g, wrap(x, g.x_shape()), wrap(dy, g.y_shape())), dw);
      },
      ex);
  EXPECT_TRUE(w.passed()) << printed(w);
  for (const OpDef<T>& op : linear_ops<T>()) {
    SCOPED_TRACE(op.name);
    const OracleReport r = op.check([&](const Ins<T>& in, T* out) { put(op.fast(in), out); }, ex);
    EXPECT_TRUE(r.passed()) << printed(r);
    EXPECT_EQ(r.max_abs_error, 0);
  }
}
TEST(RawOracleExactInputs, FastKernelsAreExactInFloat) { expect_fast_sums_exact<float>(); }
TEST(RawOracleExactInputs, FastKernelsAreExactInDouble) { expect_fast_sums_exact<double>(); }

// An error of one unit in the last place at one element: far inside the derived bound on random
// inputs (gamma(K) S is many ulps), caught by exact-input mode's equality.
TEST(RawOracleExactInputs, OneUlpAtOneElementPassesTheBoundAndFailsEquality) {
  for (const OpDef<float>& op : linear_ops<float>()) {
    SCOPED_TRACE(op.name);
    auto off_by_one_ulp = [&](const Ins<float>& in, float* out) {
      Tensor<float> v = map(op.exact(in), io::round_to<float>);
      v[1] = next_up(v[1]);
      put(v, out);
    };
    EXPECT_TRUE(op.check(off_by_one_ulp, {}).passed());
    OracleOptions ex;
    ex.exact_inputs = true;
    const OracleReport r = op.check(off_by_one_ulp, ex);
    EXPECT_FALSE(r.passed()) << printed(r);
    EXPECT_EQ(r.failing, 1);
    EXPECT_EQ(*r.worst_ratio_index, 1);
  }
}

}  // namespace
}  // namespace tapegrad
