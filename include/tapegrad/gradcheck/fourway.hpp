// The four-way gradient check of a network spec (DESIGN.md, "the four ways to a gradient").
//
// For one random problem (input, parameters, targets; deterministic from a seed) the gradient
// of the loss w.r.t. the input and every parameter tensor is computed by
//   (1) op tape         Tape<T> + ops:: (hand-derived VJPs through the dispatch kernels)
//   (2) scalar tape     VarTape<T> running the generic ref:: forward on Var<T>
//   (3) hand-written    layers::Sequential<T> (the layers' own backward loops)
//   (4) finite diff.    central differences of the ref:: forward in f50
// and judged against the 50-digit reference: the scalar tape on Var<f50> (exact to ~1e-45).
// Way 4 is the independent ground truth for that reference: it trusts no derivative rule.
// The problem is generated in double, rounded once to T, and the T values are what every way
// (and the f50 reference, exactly) sees.
//
// Errors, per tensor and per way (vs the reference g):
//   max abs error   max_i |a_i - g_i| (computed in f50)
//   max rel error   max abs error / S, with the tensor's scale S = max_i |g_i|
//   tol used        max_i |a_i - g_i| / tol_i: the fraction of the per-element tolerance used
//                   (pass iff <= 1; ways 1-3 against tol_i, way 4 against fd_tol)
//   max ULP error   max_i ulps(a_i, round_T(g_i))  (ways 1-3; in T)
//   worst           the flat index of the element with the largest abs error
//
// Tolerance of ways 1-3 (derived; see gradcheck/tolerance.hpp for gamma), per element i:
//   tol_i = gamma_T(K) * G_abs[i],  K = NetSpec::reduction_depth(N) + 2
// Every gradient element is a sum over the paths from the loss to that element; along a path
// every forward value and every backward product went through reductions whose lengths, summed
// over the layers (forward + backward-data + backward-weights, + a few roundings per
// exp/tanh), are at most reduction_depth(N); +1 for rounding the problem's numbers, +1 for
// rounding the reference to compare. With Higham's eq. 3.5 the error of an element is at most
// gamma(K) * (sum of |terms| along all paths to it). G_abs[i] is that sum of |terms|, computed
// in f50 by abs_gradient_scales(): the backward pass with every quantity replaced by a bound on
// its magnitude. NOT max |g| per tensor: a gradient can be the result of heavy cancellation
// (a conv bias gradient sum_{n,p,q} dy cancels to ~1e-16 |dy| when the loss is nearly
// stationary in it; smallest case: input 1 3 3; conv2d out=1 kernel=1 bias=true; flatten;
// linear out=1; loss mse), and then every way is one ulp of the terms off a tiny g: about 20%
// of random networks false-failed against gamma(K) * max |g| (found by props_networks.cpp).
// The forward pass can cancel too (...linear out=1; linear out=1 bias=false; loss mse with the
// output ~ the target), so the magnitudes are seeded from A_l, the activations of the forward
// pass run on |x| and |params|: A_l bounds the sum of |terms| behind a_l, hence (times gamma)
// a_l's forward rounding error, which every gradient computed from a_l inherits.
//   loss seed     mse: 2 (|A_out| + |t|) / M;  cross_entropy: (p + onehot)(1 + max|A_out|) / N
//   conv/linear   d_in = backward_data(|dy|, |w|), dW = backward_weights(A_l, |dy|), db = sum |dy|
//   relu, pools   the same routing (decided on the f50 forward) applied to |dy|; flatten: reshape
//   sigmoid       |dy| y  (= |dy| (y(1-y) + y^2): the derivative plus the error of y (1-y))
//   tanh          |dy|    (= |dy| ((1-y^2) + y^2))
// Every term of the real backward is bounded in magnitude by the corresponding term here, so
// G_abs[i] >= sum of |terms| behind g_i >= |g_i|. A wrong VJP gives errors of order |g|, far
// above gamma(K) G_abs (e.g. lenet5, batch 2: K ~ 3400, gamma ~ 4e-13 in double, 2e-4 in
// float). The report keeps S = max |g| and S_abs = max_i G_abs[i] per tensor; the tolerance is
// per element, so a tensor's tol = gamma(K) * S_abs is only the largest of its elements'.
// The price: G_abs is a worst-case bound, and through a deep network it compounds
// (|W_L|...|W_1| |x| grows by ~sqrt(fan_in) per layer where the signed values do not): lenet5
// gets S_abs ~ 1e5..1e9 against S ~ 1, so in float (gamma(3354) ~ 2e-4) its tolerance no
// longer excludes O(S) errors. Rows that pass only at gamma(K) * G_abs and not at the old
// gamma(K) * S are therefore flagged (TensorRow::strict, "ok*" in the table).
//
// Tolerance of way 4 (finite differences, step h = 1e-15 in f50, u50 = 2^-167):
//   |central difference - f'| <= h^2 |f'''| / 6 + 2 u50 |L| / h
//   fd_tol = 1e-24 * max(S_abs, 1): admits |f'''| up to ~6e6 S_abs and |L| up to ~1e25.
// Kinks (relu at 0, max-pool ties) within h of the point make the one-sided differences
// d+ = (f(x+h) - f(x)) / h and d- = (f(x) - f(x-h)) / h disagree by O(jump) instead of
// O(h f''); an element with |d+ - d-| > 1e-8 (1 + |d|) is flagged as a kink, excluded and
// counted. For big tensors FD checks a deterministic subset (the elements the three other ways
// found worst, then random ones, within a cost budget): the table says how many.
//
// Attribution: when exactly one way fails, it "stands apart" from the other three; otherwise
// the failing ways are listed. Mistrust: a tensor whose reference gradient is more than half
// exact zeros (dead relus, saturated sigmoids) is "mistrusted" -- agreement there proves
// little -- and so is the whole check when more than half of all entries are exact zeros.
// Mistrust is reported, not failed.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <limits>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tapegrad/gradcheck/tolerance.hpp"
#include "tapegrad/net/network.hpp"
#include "tapegrad/net/problem.hpp"
#include "tapegrad/net/reference.hpp"
#include "tapegrad/net/sequential.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/var/var.hpp"

namespace tapegrad::gradcheck {

enum Way { way_op_tape = 0, way_scalar_tape = 1, way_hand_written = 2, way_finite_diff = 3 };
inline constexpr int num_ways = 4;
inline const char* way_name(int w) {
  static const char* names[] = {"op tape", "scalar tape", "hand-written", "finite diff"};
  return names[w];
}

struct FourWayOptions {
  index_t batch = 2;
  std::uint64_t seed = 1;
  // Finite differences: at most this many elements per tensor, and at most about this many
  // f50 multiply-adds for all of them (2 forward passes, from the perturbed layer on, per
  // element); the worst elements of the other ways are always included.
  index_t fd_max_per_tensor = 64;
  double fd_budget_macs = 4e7;
  double fd_step = 1e-15;
};

struct WayError {
  double max_abs = 0, max_rel = 0;
  double max_tol_frac = 0;    // max_i |a_i - g_i| / tol_i (pass iff <= 1)
  std::uint64_t max_ulp = 0;  // ways 1-3 only
  index_t worst = -1;
  index_t checked = 0;  // elements compared
  bool pass = true;
};

struct TensorRow {
  std::string name;
  Shape shape;
  double scale = 0;      // S = max |reference gradient|
  double abs_scale = 0;  // S_abs = max_i G_abs[i] (the magnitude bound; >= S)
  double tol = 0;        // ways 1-3: gamma(K) * S_abs, the largest per-element tolerance
  double fd_tol = 0;     // way 4: 1e-24 * max(S_abs, 1)
  std::array<WayError, num_ways> way{};
  index_t kinks = 0;     // FD elements excluded as kinks
  index_t zeros = 0;     // exact zeros in the reference gradient
  bool mistrusted = false;
  // Ways 1-3 also within gamma(K) * S (the old per-tensor, no-cancellation tolerance). A row
  // that passes but is not `strict` passed only thanks to G_abs: expected where the gradient
  // cancels (S_abs >> S), but G_abs also grows with depth (|W_L|...|W_1| |x| compounds), so a
  // deep network's early layers get a loose tolerance; the table marks such rows "ok*".
  bool strict = true;
  std::string attribution;  // empty when every way passes

  bool pass() const {
    for (const auto& w : way)
      if (!w.pass) return false;
    return true;
  }
};

struct FourWayReport {
  std::string model, dtype;
  index_t batch = 0;
  std::uint64_t seed = 0;
  index_t depth = 0;  // K of the tolerance
  double loss = 0;
  std::vector<TensorRow> rows;
  bool mistrusted = false;

  bool passed() const {
    for (const auto& r : rows)
      if (!r.pass()) return false;
    return true;
  }
  // "passed[; strict | ; N row(s) ...]", "passed (mistrusted...)..." or "FAILED"
  std::string verdict() const {
    if (!passed()) return "FAILED";
    std::string v =
        mistrusted ? "passed (mistrusted: most gradient entries are exactly zero)" : "passed";
    // Say how strong the pass is: "strict" means every way is also within gamma(K) * S, the
    // bound without the cancellation allowance; otherwise name how many rows needed G_abs.
    int loose = 0;
    for (const auto& r : rows)
      if (!r.strict) ++loose;
    if (loose == 0) return v + "; strict (every row also within gamma(K) * S)";
    return v + "; " + std::to_string(loose) + " row(s) pass only at gamma(K) * G_abs (ok*)";
  }
  void print(std::ostream& os) const;
};

namespace fourway_detail {

// Distance in units in the last place between two finite values of T (float or double).
template <class T>
std::uint64_t ulps(T a, T b) {
  if (!(std::isfinite(a) && std::isfinite(b))) return std::numeric_limits<std::uint64_t>::max();
  using I = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  // Map the sign-magnitude bit patterns onto one monotone integer line.
  auto key = [](T v) -> std::int64_t {
    const I i = std::bit_cast<I>(v);
    return i < 0 ? -static_cast<std::int64_t>(static_cast<U>(i) & ~(U(1) << (sizeof(T) * 8 - 1)))
                 : static_cast<std::int64_t>(i);
  };
  const std::int64_t ka = key(a), kb = key(b);
  return ka > kb ? static_cast<std::uint64_t>(ka - kb) : static_cast<std::uint64_t>(kb - ka);
}

inline double to_double(const f50& v) { return static_cast<double>(v); }

// f50 multiply-adds of the layers from `start` on (the cost of one restarted forward).
inline double forward_macs(const NetSpec& spec, std::size_t start, index_t n) {
  return spec.forward_macs(start, n) + 1;
}

}  // namespace fourway_detail

// The magnitude bounds G_abs of every gradient tensor (x, then the parameters in NetSpec order)
// of the problem `v` (in f50): the backward pass with every quantity replaced by a bound on its
// magnitude, seeded from the forward pass on |x| and |params|. See the derivation at the top
// of this file; tol_i = gamma_T(K) * G_abs[i].
inline std::vector<Tensor<f50>> abs_gradient_scales(const NetSpec& spec,
                                                    const NetValues<f50>& v) {
  const auto absf = [](const Tensor<f50>& t) {
    return map(t, [](const f50& e) { return f50(abs(e)); });
  };
  const std::vector<Tensor<f50>> acts = reference_activations(spec, v.x, v.params);
  std::vector<Tensor<f50>> abs_params;
  for (const auto& p : v.params) abs_params.push_back(absf(p));
  const std::vector<Tensor<f50>> acts_abs = reference_activations(spec, absf(v.x), abs_params);
  const Tensor<f50>& out = acts.back();
  const Tensor<f50>& out_abs = acts_abs.back();
  const index_t count = spec.loss_count(out.size(0));
  Tensor<f50> d = visit_loss_kind(spec.loss, [&](auto loss) {
    return decltype(loss)::magnitude_seed(out, out_abs, v.targets, count);
  });
  std::vector<Tensor<f50>> gp(v.params.size());
  std::vector<const Tensor<f50>*> lp;
  std::vector<Tensor<f50>> dp;
  for (std::size_t li = spec.layers.size(); li-- > 0;) {
    const LayerSpec& L = spec.layers[li];
    lp.clear();
    for (int i : L.params) lp.push_back(&abs_params[static_cast<std::size_t>(i)]);
    dp.assign(L.params.size(), Tensor<f50>());
    const MagnitudeInputs m{acts[li], acts_abs[li], acts[li + 1], ParamViews<f50>(lp)};
    d = visit_layer_kind(L.kind, [&](auto kind) {
      return decltype(kind)::magnitude(L, m, d, std::span<Tensor<f50>>(dp));
    });
    for (std::size_t j = 0; j < dp.size(); ++j)
      gp[static_cast<std::size_t>(L.params[j])] = std::move(dp[j]);
  }
  std::vector<Tensor<f50>> scales{std::move(d)};
  for (auto& t : gp) scales.push_back(std::move(t));
  return scales;
}

// Judges one tensor: ways 1-3 (full tensors in T) against tol_i = gamma_T(depth) * g_abs[i]
// and the FD values at `fd_index` (f50, with their kink flags) against fd_tol, all vs the
// reference `ref`. `g_abs` (same shape as ref) is the magnitude bound of abs_gradient_scales.
// Also used by tests with fabricated gradients.
template <class T>
TensorRow judge_tensor(const std::string& name, const Tensor<f50>& ref,
                       const Tensor<f50>& g_abs, const std::array<const Tensor<T>*, 3>& ways,
                       const std::vector<index_t>& fd_index, const std::vector<f50>& fd_value,
                       const std::vector<bool>& fd_kink, index_t depth) {
  check_shape("four_way_check", "magnitude bound", g_abs.shape(), ref.shape());
  TensorRow row;
  row.name = name;
  row.shape = ref.shape();
  f50 smax(0), sabs(0);
  for (index_t i = 0; i < ref.numel(); ++i) {
    const f50 a = abs(ref[i]);
    if (a > smax) smax = a;
    if (g_abs[i] > sabs) sabs = g_abs[i];
    if (ref[i] == 0) ++row.zeros;
  }
  const double gam = gamma<T>(static_cast<double>(depth));
  row.scale = fourway_detail::to_double(smax);
  row.abs_scale = fourway_detail::to_double(sabs);
  row.tol = gam * row.abs_scale;
  row.fd_tol = 1e-24 * std::max(row.abs_scale, 1.0);
  row.mistrusted = 2 * row.zeros > ref.numel();
  auto rel = [&](double e) { return row.scale > 0 ? e / row.scale : (e > 0 ? INFINITY : 0.0); };
  // err / tol, with 0 / 0 = 0 (an element whose bound is exactly zero must be exact).
  auto frac = [](double e, double t) { return e == 0 ? 0.0 : (t > 0 ? e / t : INFINITY); };
  for (int w = 0; w < 3; ++w) {
    const Tensor<T>& a = *ways[static_cast<std::size_t>(w)];
    WayError& e = row.way[static_cast<std::size_t>(w)];
    e.checked = a.numel();
    check_shape("four_way_check", way_name(w), a.shape(), ref.shape());
    bool pass = true;
    for (index_t i = 0; i < a.numel(); ++i) {
      const double err = fourway_detail::to_double(abs(f50(a[i]) - ref[i]));
      const bool finite = std::isfinite(static_cast<double>(a[i]));
      const double err_f = finite ? err : INFINITY;
      const double tol_i = gam * fourway_detail::to_double(g_abs[i]);
      if (e.worst < 0 || err_f > e.max_abs || std::isnan(err_f)) {
        e.max_abs = err_f;
        e.worst = i;
      }
      const double fr = frac(err_f, tol_i);
      if (fr > e.max_tol_frac || std::isnan(fr)) e.max_tol_frac = fr;
      if (!(err_f <= tol_i)) pass = false;  // NaN/inf never pass
      e.max_ulp = std::max(e.max_ulp, fourway_detail::ulps(a[i], static_cast<T>(ref[i])));
    }
    e.max_rel = rel(e.max_abs);
    e.pass = pass;
    if (!(e.max_abs <= gam * row.scale)) row.strict = false;
  }
  WayError& fd = row.way[way_finite_diff];
  for (std::size_t j = 0; j < fd_index.size(); ++j) {
    if (fd_kink[j]) {
      ++row.kinks;
      continue;
    }
    const index_t i = fd_index[j];
    const double err = fourway_detail::to_double(abs(fd_value[j] - ref[i]));
    ++fd.checked;
    if (fd.worst < 0 || err > fd.max_abs || std::isnan(err)) {
      fd.max_abs = err;
      fd.worst = i;
    }
  }
  fd.max_rel = rel(fd.max_abs);
  fd.max_tol_frac = frac(fd.max_abs, row.fd_tol);
  fd.pass = fd.max_abs <= row.fd_tol;
  // Attribution.
  std::vector<int> failing;
  for (int w = 0; w < num_ways; ++w)
    if (!row.way[static_cast<std::size_t>(w)].pass) failing.push_back(w);
  if (failing.size() == 1) {
    row.attribution = std::string(way_name(failing[0])) + " stands apart from the other three";
  } else if (!failing.empty()) {
    row.attribution = "no single way stands apart: ";
    for (std::size_t k = 0; k < failing.size(); ++k)
      row.attribution += (k ? ", " : "") + std::string(way_name(failing[k]));
    row.attribution += " disagree with the reference";
  }
  return row;
}

// The same without a magnitude bound (tests with fabricated gradients): every element is
// judged at the tensor's scale, G_abs[i] = max_j |ref_j| -- the no-cancellation assumption.
template <class T>
TensorRow judge_tensor(const std::string& name, const Tensor<f50>& ref,
                       const std::array<const Tensor<T>*, 3>& ways,
                       const std::vector<index_t>& fd_index, const std::vector<f50>& fd_value,
                       const std::vector<bool>& fd_kink, index_t depth) {
  f50 smax(0);
  for (const f50& g : ref)
    if (abs(g) > smax) smax = abs(g);
  Tensor<f50> g_abs(ref.shape());
  for (f50& e : g_abs) e = smax;
  return judge_tensor<T>(name, ref, g_abs, ways, fd_index, fd_value, fd_kink, depth);
}

// Runs the four ways on a random problem of `spec` and judges them.
template <class T>
FourWayReport four_way_check(const NetSpec& spec, const FourWayOptions& opt = {}) {
  check_positive("four_way_check", "batch", opt.batch);
  const index_t n = opt.batch;
  const NetValues<T> vt = random_problem(spec, n, opt.seed).template cast<T>();
  const NetValues<f50> v50 = vt.template cast<f50>();  // exact: every T is an f50
  const std::size_t np = spec.params.size();
  const std::size_t nt = np + 1;  // x, then the parameters

  FourWayReport rep;
  rep.model = spec.source;
  rep.dtype = ScalarTraits<T>::name;
  rep.batch = n;
  rep.seed = opt.seed;
  rep.depth = spec.reduction_depth(n) + 2;

  // (1) op tape
  std::vector<Tensor<T>> g1;
  {
    Tape<T> tape;
    const auto x = tape.leaf(vt.x);
    std::vector<TapeTensor<T>> ps;
    for (const auto& p : vt.params) ps.push_back(tape.leaf(p));
    const auto loss = record_network(spec, x, ps, vt.targets);
    rep.loss = static_cast<double>(loss.value()[0]);
    tape.backward(loss);
    g1.push_back(tape.grad(x));
    for (const auto& p : ps) g1.push_back(tape.grad(p));
  }
  // (2) scalar tape in T, and the reference: scalar tape in f50
  auto scalar_tape = [&](const auto& v) {
    using S = typename std::decay_t<decltype(v.x)>::value_type;
    VarTape<S> tape;
    NetValues<Var<S>> vv{make_variables(tape, v.x), {},
                         Targets<Var<S>>{v.targets.labels, make_constants(v.targets.values)}};
    for (const auto& p : v.params) vv.params.push_back(make_variables(tape, p));
    const Var<S> loss = reference_loss(spec, vv.x, vv.params, vv.targets);
    tape.backward(loss);
    std::vector<Tensor<S>> g{adjoints(tape, vv.x)};
    for (const auto& p : vv.params) g.push_back(adjoints(tape, p));
    return g;
  };
  const std::vector<Tensor<T>> g2 = scalar_tape(vt);
  const std::vector<Tensor<f50>> gref = scalar_tape(v50);
  // (3) hand-written layers
  std::vector<Tensor<T>> g3;
  {
    auto net = build_sequential(spec, vt.params);
    net.forward_loss(vt.x, vt.targets);
    g3.push_back(net.backward());
    for (const auto& p : net.params()) g3.push_back(*p.grad);
  }
  // (4) finite differences in f50, restarting the forward at the perturbed tensor's layer
  const std::vector<Tensor<f50>> gabs = abs_gradient_scales(spec, v50);
  const std::vector<Tensor<f50>> acts = reference_activations(spec, v50.x, v50.params);
  const f50 f0 = reference_loss_from(spec, spec.layers.size(), acts.back(), v50.params,
                                     v50.targets);
  const f50 h(opt.fd_step);
  std::vector<std::size_t> start_of(nt, 0);
  for (std::size_t k = 0; k < np; ++k)
    start_of[k + 1] = static_cast<std::size_t>(spec.params[k].layer);
  double budget_per_tensor = opt.fd_budget_macs / static_cast<double>(nt);

  index_t total = 0, total_zeros = 0;
  for (std::size_t k = 0; k < nt; ++k) {
    const index_t numel = gref[k].numel();
    // Which elements: all when affordable, else the other ways' worst, then random ones.
    const double cost = 2 * fourway_detail::forward_macs(spec, start_of[k], n);
    const index_t afford = std::max<index_t>(
        3, static_cast<index_t>(budget_per_tensor / cost));
    const index_t want = std::min({numel, opt.fd_max_per_tensor, afford});
    std::vector<index_t> idx;
    std::set<index_t> seen;
    if (want >= numel) {
      for (index_t i = 0; i < numel; ++i) idx.push_back(i);
    } else {
      // worst element of each way 1-3
      for (const Tensor<T>* g : std::array<const Tensor<T>*, 3>{&g1[k], &g2[k], &g3[k]}) {
        index_t wi = 0;
        f50 we(-1);
        for (index_t i = 0; i < numel; ++i) {
          const f50 e = abs(f50((*g)[i]) - gref[k][i]);
          if (e > we) we = e, wi = i;
        }
        if (seen.insert(wi).second) idx.push_back(wi);
      }
      std::mt19937_64 rng(opt.seed * 0x9E3779B97F4A7C15ull + k + 1);
      while (static_cast<index_t>(idx.size()) < want) {
        const auto i = static_cast<index_t>(rng() % static_cast<std::uint64_t>(numel));
        if (seen.insert(i).second) idx.push_back(i);
      }
    }
    std::vector<f50> fd_val;
    std::vector<bool> fd_kink;
    for (const index_t i : idx) {
      auto loss_at = [&](const f50& delta) {
        if (k == 0) {
          Tensor<f50> x = v50.x;
          x[i] += delta;
          return reference_loss_from(spec, 0, x, v50.params, v50.targets);
        }
        std::vector<Tensor<f50>> ps = v50.params;
        ps[k - 1][i] += delta;
        return reference_loss_from(spec, start_of[k], acts[start_of[k]], ps, v50.targets);
      };
      const f50 fp = loss_at(h), fm = loss_at(-h);
      const f50 dp = (fp - f0) / h, dm = (f0 - fm) / h;
      const f50 d = (fp - fm) / (2 * h);
      fd_val.push_back(d);
      fd_kink.push_back(abs(dp - dm) > f50(1e-8) * (1 + abs(d)));
    }
    const std::string name = k == 0 ? std::string("x") : spec.params[k - 1].name;
    rep.rows.push_back(judge_tensor<T>(name, gref[k], gabs[k], {&g1[k], &g2[k], &g3[k]}, idx, fd_val,
                                       fd_kink, rep.depth));
    total += numel;
    total_zeros += rep.rows.back().zeros;
  }
  rep.mistrusted = 2 * total_zeros > total;
  return rep;
}

inline void FourWayReport::print(std::ostream& os) const {
  auto sci = [](double v) {
    std::ostringstream s;
    s << std::scientific << std::setprecision(1) << v;
    return s.str();
  };
  const double gam = dtype == "float" ? gamma<float>(static_cast<double>(depth))
                                      : gamma<double>(static_cast<double>(depth));
  os << "four-way gradient check: model " << model << ", dtype " << dtype << ", batch " << batch
     << ", seed " << seed << ", loss " << std::setprecision(9) << loss << "\n";
  os << "reference: scalar tape on Var<f50>; per tensor S = max |ref|, S_abs = max G_abs, G_abs "
        "= the sum of |terms| behind each element\n";
  os << "tolerance per element: gamma_" << dtype << "(K) * G_abs[i] with K = " << depth
     << ", gamma = " << sci(gam) << " (ways 1-3);  1e-24 * max(S_abs,1) (finite differences "
        "in f50)\n\n";
  os << std::left << std::setw(10) << "tensor" << std::setw(16) << "shape" << std::setw(9)
     << "S" << std::setw(9) << "S_abs" << std::setw(25) << "op tape" << std::setw(25)
     << "scalar tape" << std::setw(25) << "hand-written" << std::setw(34) << "finite diff (f50)"
     << "status\n";
  for (const TensorRow& r : rows) {
    os << std::left << std::setw(10) << r.name << std::setw(16) << r.shape.str() << std::setw(9)
       << sci(r.scale) << std::setw(9) << sci(r.abs_scale);
    for (int w = 0; w < 3; ++w) {
      const WayError& e = r.way[static_cast<std::size_t>(w)];
      std::string cell =
          sci(e.max_rel) + " " + sci(e.max_tol_frac) + " " + std::to_string(e.max_ulp) + "u";
      os << std::setw(25) << (cell + " ");
    }
    const WayError& fd = r.way[way_finite_diff];
    std::string fdc = sci(fd.max_rel) + " " + sci(fd.max_tol_frac) + " " +
                      std::to_string(fd.checked) + "/" +
                      std::to_string(r.shape.numel());
    if (r.kinks) fdc += " k" + std::to_string(r.kinks);
    os << std::setw(34) << fdc;
    os << (r.pass() ? (r.mistrusted ? "mistrusted" : r.strict ? "ok" : "ok*") : "FAIL");
    if (!r.attribution.empty()) os << "  (" << r.attribution << ")";
    os << "\n";
  }
  os << "\ncolumns: S_abs >> S means the gradient cancels (judged at G_abs, not S); each way: "
        "relative error max_i |err_i| / S,\nmax_i |err_i| / tol_i (the fraction of the tolerance "
        "used; pass iff <= 1) and max ULP "
        "error in "
     << dtype
     << " (ULPs of elements far below G_abs are large and\nharmless); finite diff: relative error, fraction of "
        "its tolerance used, elements checked / total (a subset for big tensors:\nthe other "
        "ways' worst elements, then random ones; kN: N kinks excluded); ok*: passes only at "
        "gamma(K) * G_abs,\nnot at gamma(K) * S (cancellation, or a loose bound deep in the "
        "network)\n";
  for (const TensorRow& r : rows)
    for (int w = 0; w < num_ways; ++w) {
      const WayError& e = r.way[static_cast<std::size_t>(w)];
      if (!e.pass) {
        os << r.name << ": " << way_name(w) << " max abs error " << sci(e.max_abs)
           << " at element " << e.worst << "; ";
        if (w == way_finite_diff)
          os << "exceeds tolerance " << sci(r.fd_tol) << "\n";
        else
          os << "some element's error is " << sci(e.max_tol_frac)
             << " x its tolerance gamma(K) * G_abs[i] (<= " << sci(r.tol) << ")\n";
      }
    }
  os << "verdict: " << verdict() << "\n";
}

}  // namespace tapegrad::gradcheck
