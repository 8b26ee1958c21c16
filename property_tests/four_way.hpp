// The four ways to a gradient of ONE op, judged element by element (DESIGN.md):
//   (1) op tape         Tape<T> + ops:: (hand-derived VJPs through the dispatch kernels)
//   (2) scalar tape     VarTape<T> running the generic ref:: forward on Var<T>
//   (3) hand-written    the layer's own backward loops (where a layer exists)
//   (4) finite diff.    gradcheck::finite_diff of the ref:: forward in f50, at a sample of
//                       elements of every input
// against the reference: the scalar tape on Var<f50> (the ref:: forward in 50 digits), or, for
// the ops linear in the tensor differentiated (conv2d, linear, avg_pool2d), the exact engine's
// VJPs (ExactReference below: the same values to ~n^2 2^-106 of S, about 100x sooner).
//
// The function differentiated is L = <f(inputs), gy> for a random cotangent gy, so the
// gradients are the op's vector-Jacobian products with gy, exactly what a backward pass uses.
//
// Tolerances (derived, per element i of input t; the caller supplies them as a Bound):
//   ways 1-3:  |way - ref| <= gamma_T(k_t) * weight_t[i]
//              e.g. conv2d dx: k = K/G*R*S reduction terms, weight = the same VJP computed in
//              f50 on |w| and |gy| (= sum of |terms|); Higham eq. 3.5 holds for any summation
//              order, so it covers all three ways (and the fast kernels).
//   way 4:     |fd - ref| <= 2 * fd.error[i] + gamma_f50(k_t + 16) * weight_t[i]
//              fd.error is finite_diff's per-element error estimate (truncation + rounding,
//              ~1e-25 relative here); the second term is the reference's own 50-digit rounding.
//              Elements whose stencil straddles a kink (relu at 0, a max-pool tie) are skipped
//              and counted; ways 1-3 are still judged there, against the documented convention
//              that the reference follows.
#pragma once

#include <cmath>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "prop_support.hpp"
#include "tapegrad/gradcheck/finite_diff.hpp"
#include "tapegrad/ops/ops.hpp"
#include "tapegrad/tape/tape.hpp"

namespace tapegrad::props {

struct Bound {
  Tensor<f50> weight;  // tol[i] = gamma_T(k) * weight[i]
  index_t k = 1;
};

struct FourWayStats {
  index_t kinks = 0;       // FD elements skipped as kinks
  index_t fd_checked = 0;  // FD elements compared
};

// The op tape's gradients of <y, gy>, where build records y from the leaves (one per input,
// created in order). The loss is recorded as sum(mul(y, gy)); its backward seeds dy = 1 * gy
// exactly.
template <class T, class Build>
std::vector<Tensor<T>> op_tape_vjp(Build&& build, const std::vector<Tensor<T>>& inputs,
                                   const Tensor<T>& gy) {
  Tape<T> tape;
  std::vector<TapeTensor<T>> leaves;
  for (const auto& t : inputs) leaves.push_back(tape.leaf(t));
  const TapeTensor<T> y = build(leaves);
  const TapeTensor<T> loss = ops::sum(ops::mul(y, tape.constant(gy)));
  tape.backward(loss);
  std::vector<Tensor<T>> g;
  for (const auto& l : leaves) g.push_back(tape.grad(l));
  return g;
}

// Finite differences of L = <f(inputs), gy> in f50 at up to `per_tensor` elements of each
// input (all of them when the input is that small; else a deterministic random sample).
struct FdSample {
  std::vector<std::vector<index_t>> index;  // per input: the flat indices checked
  gradcheck::FiniteDiffResult r;            // r.grad[t][j] is d L / d inputs[t][index[t][j]]
};

template <class F>
FdSample fd_sample(F&& f, const std::vector<Tensor<f50>>& inputs, const Tensor<f50>& gy,
                   index_t per_tensor, std::uint64_t salt) {
  FdSample s;
  std::vector<Tensor<f50>> sel;
  std::mt19937_64 rng(salt);
  for (const auto& t : inputs) {
    std::vector<index_t> idx;
    if (t.numel() <= per_tensor) {
      for (index_t i = 0; i < t.numel(); ++i) idx.push_back(i);
    } else {
      std::set<index_t> seen;
      while (static_cast<index_t>(idx.size()) < per_tensor) {
        const auto i = static_cast<index_t>(rng() % static_cast<std::uint64_t>(t.numel()));
        if (seen.insert(i).second) idx.push_back(i);
      }
    }
    Tensor<f50> v(Shape{static_cast<index_t>(idx.size())});
    for (std::size_t j = 0; j < idx.size(); ++j) v[static_cast<index_t>(j)] = t[idx[j]];
    sel.push_back(std::move(v));
    s.index.push_back(std::move(idx));
  }
  auto loss = [&](const std::vector<Tensor<f50>>& values) {
    std::vector<Tensor<f50>> in = inputs;
    for (std::size_t t = 0; t < in.size(); ++t)
      for (std::size_t j = 0; j < s.index[t].size(); ++j)
        in[t][s.index[t][j]] = values[t][static_cast<index_t>(j)];
    const Tensor<f50> y = f(static_cast<const std::vector<Tensor<f50>>&>(in));
    f50 acc = 0;
    for (index_t i = 0; i < y.numel(); ++i) acc += y[i] * gy[i];
    return acc;
  };
  // The error of one evaluation of L in f50: at most gamma_f50(m) * sum |terms| for the
  // reductions inside f and the final dot product; bounded generously (and simply) by
  // 1e12 * u50 * max(1, sum_i |y_i gy_i|): reductions here have < 1e4 terms, and the factor
  // 1e8 left over absorbs the cancellation inside f. Result: ~1e-24 relative FD error.
  const Tensor<f50> y0 = f(inputs);
  f50 mass = 1;
  for (index_t i = 0; i < y0.numel(); ++i) mass += abs(y0[i] * gy[i]);
  gradcheck::FiniteDiffOptions opt;
  opt.f_abs_error = f50(1e12 * ScalarTraits<f50>::unit_roundoff()) * mass;
  s.r = gradcheck::finite_diff(loss, std::move(sel), opt);
  return s;
}

// The reference from the exact engine (kernels/exact.hpp) instead of the scalar tape in f50,
// for the ops linear in the tensor differentiated -- conv2d, linear, avg_pool2d: each VJP is a
// sum of products of the T inputs and gy, which are exact doubles. `grads` returns them as
// the engine's Precise values, each within beta of the exact VJP, where (exact.hpp, step 3,
// n terms, L <= 16 vector lanes, u = 2^-53, eta = 2^-1075 in the scaled domain)
//   beta <= 2 (n + L)(n + L + 2) u^2 S_p + 2 n eta <= beta_rel(k) * weight + 2^-1000,
//   beta_rel(k) = 4 (k + 32)^2 2^-106,
// with S_p the element's sum of |products| (<= weight, the Bound's own sum of |terms|; for
// avg_pool2d the division by the window shrinks both alike) and the eta term, unscaled, far
// below 2^-1000 for the O(1) values of these problems. Ways 1-3 are then judged against
// tol + beta (the reference is off by at most beta), way 4 against 2 fd.error + beta.
struct ExactReference {
  std::function<std::vector<Tensor<f50>>(const std::vector<Tensor<double>>& inputs,
                                         const Tensor<double>& gy)>
      grads;
  static f50 beta_rel(index_t k) {
    const f50 kk = f50(k + 32);
    return 4 * kk * kk * f50(std::ldexp(1.0, -106));
  }
};

// Runs the four ways and judges them. `f` is a generic callable Tensor<S> f(const
// std::vector<Tensor<S>>&), run for S = Var<T>, Var<f50> and f50. `op_tape` and `hand` return
// the gradient of every input for (inputs, gy) in T (`hand` returns nullopt when the op has no
// hand-written layer). `bound` returns one Bound per input from (inputs in f50, gy in f50).
// `fd_skip` (optional, one mask per input) marks elements finite differences must not judge.
// `exact` (optional): the reference from the exact engine (above) instead of the scalar tape.
// Returns "" when every way passes, else the report of the first failure.
template <class T, class F, class OpTape, class Hand, class BoundFn>
std::string four_way(const std::vector<std::string>& names,
                     const std::vector<Tensor<double>>& inputs_d, const Tensor<double>& gy_d,
                     F&& f, OpTape&& op_tape, Hand&& hand, BoundFn&& bound, index_t fd_per_tensor,
                     std::uint64_t fd_salt, FourWayStats* stats = nullptr,
                     const std::vector<Tensor<std::uint8_t>>* fd_skip = nullptr,
                     const ExactReference* exact = nullptr) {
  std::vector<Tensor<T>> in_t;
  std::vector<Tensor<f50>> in_50;
  for (const auto& t : inputs_d) {
    in_t.push_back(to<T>(t));
    in_50.push_back(in_t.back().template cast<f50>());  // exact
  }
  const Tensor<T> gy_t = to<T>(gy_d);
  const Tensor<f50> gy_50 = gy_t.template cast<f50>();

  std::vector<Tensor<f50>> ref;
  if (exact) {
    std::vector<Tensor<double>> in_dbl;
    for (const auto& t : in_t) in_dbl.push_back(t.template cast<double>());  // exact
    ref = exact->grads(in_dbl, gy_t.template cast<double>());
  } else {
    ref = scalar_tape_vjp<f50>(f, in_50, gy_50);
  }
  const std::string ref_name = exact ? "exact-engine reference" : "50-digit reference";
  const std::vector<Tensor<T>> w1 = op_tape(in_t, gy_t);
  const std::vector<Tensor<T>> w2 = scalar_tape_vjp<T>(f, in_t, gy_t);
  const std::optional<std::vector<Tensor<T>>> w3 = hand(in_t, gy_t);
  const std::vector<Bound> bounds = bound(in_50, gy_50);

  std::optional<FdSample> fd;
  if (fd_per_tensor > 0) fd = fd_sample(f, in_50, gy_50, fd_per_tensor, fd_salt);

  const std::string T_name = ScalarTraits<T>::name;
  for (std::size_t t = 0; t < in_t.size(); ++t) {
    Tensor<f50> tol = reduction_tol<T>(bounds[t].weight, bounds[t].k);
    // the reference's own error: beta for the exact engine; for the scalar tape in f50 the
    // way-4 term below (its rounding is far below tol)
    Tensor<f50> beta(tol.shape());
    if (exact) {
      const f50 rel = ExactReference::beta_rel(bounds[t].k), abs_floor = f50(std::ldexp(1.0, -1000));
      for (index_t i = 0; i < tol.numel(); ++i) {
        beta[i] = rel * bounds[t].weight[i] + abs_floor;
        tol[i] += beta[i];
      }
    }
    const Tensor<f50> g1 = w1[t].template cast<f50>();
    const Tensor<f50> g2 = w2[t].template cast<f50>();
    // The hand-written way may give fewer tensors (a loss layer gives no d/dtarget).
    const bool has3 = w3 && t < w3->size();
    const Tensor<f50> g3 = has3 ? (*w3)[t].template cast<f50>() : Tensor<f50>(Shape{0});
    const std::vector<Column> cols{{"op tape", &g1}, {"scalar tape", &g2},
                                   {"hand-written", has3 ? &g3 : nullptr}};
    const std::string head = "d" + names[t] + " in " + T_name + ", ";
    PROPS_RETURN_IF(judge(head + "op tape (1) vs " + ref_name, g1, ref[t], tol, cols));
    PROPS_RETURN_IF(judge(head + "scalar tape (2) vs " + ref_name, g2, ref[t], tol, cols));
    if (has3)
      PROPS_RETURN_IF(judge(head + "hand-written (3) vs " + ref_name, g3, ref[t], tol, cols));
    if (!fd) continue;
    // (4): finite differences against the reference, at the sampled elements
    const auto& idx = fd->index[t];
    const f50 g50 = gradcheck::gamma<f50>(static_cast<double>(bounds[t].k + 16));
    for (std::size_t j = 0; j < idx.size(); ++j) {
      const auto jj = static_cast<index_t>(j);
      // kinks the stencil saw, and points the caller knows are non-differentiable (a max-pool
      // tie: the function may even be smooth there, e.g. locally constant, while the
      // documented convention picks one branch's slope)
      if (fd->r.kink[t][jj] || (fd_skip && (*fd_skip)[t][idx[j]])) {
        if (stats) ++stats->kinks;
        continue;
      }
      if (stats) ++stats->fd_checked;
      const index_t i = idx[j];
      const f50 err = abs(fd->r.grad[t][jj] - ref[t][i]);
      const f50 tol4 = 2 * fd->r.error[t][jj] + (exact ? beta[i] : g50 * bounds[t].weight[i]);
      if (err <= tol4) continue;
      std::ostringstream os;
      os << "d" << names[t] << ": finite differences (4) disagree with the " << ref_name << " at "
         << index_str(in_t[t].shape(), i) << ": |fd - ref| = " << sci(dbl(err))
         << " > tolerance " << sci(dbl(tol4)) << "\n    reference " << std::setprecision(17)
         << dbl(ref[t][i]) << "\n    finite diff " << dbl(fd->r.grad[t][jj])
         << "\n    op tape " << dbl(g1[i]) << "\n    scalar tape " << dbl(g2[i]) << "\n";
      return os.str();
    }
  }
  return {};
}

}  // namespace tapegrad::props
