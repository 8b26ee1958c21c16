// Judging one gradient tensor of the four-way check (gradcheck/fourway.hpp): ways 1-3 (full
// tensors in T) element by element against tol_i = gamma_T(K) * G_abs[i] (magnitude.hpp), and
// the finite differences (f50, at a subset of elements) against fd_tol, all against the
// 50-digit reference. Also used by tests with fabricated gradients.
//
// Tolerance of way 4 (finite differences in f50, gradcheck/finite_diff.hpp's Richardson
// stencil with h ~ 1e-15 |x|, u50 = 2^-167): its error is O(h^4 f^(5)) + 3 eps_f / h, far below
//   fd_tol = 1e-24 * max(S_abs, 1)
// which admits |f'''| up to ~6e6 S_abs and |L| up to ~1e25 even for a plain central difference.
// Elements whose stencil straddles a kink (relu at 0, a max-pool tie within h) are excluded and
// counted (TensorRow::kinks).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/gradcheck/compare.hpp"
#include "tapegrad/gradcheck/fourway_report.hpp"
#include "tapegrad/gradcheck/tolerance.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::gradcheck {

// What one of ways 1-3 is judged against when it is not the reference itself: the reference
// gradient along the way's own branch and its magnitude bound (null: the row's own).
struct BranchReference {
  const Tensor<f50>* ref = nullptr;
  const Tensor<f50>* g_abs = nullptr;
};

// ULP distance in T between a way's value and the rounded reference; "infinitely many" when
// either is not finite (compare.hpp's ulp_distance counts finite and infinite values only).
template <class T>
std::uint64_t way_ulps(T a, T b) {
  if (!(std::isfinite(a) && std::isfinite(b))) return std::numeric_limits<std::uint64_t>::max();
  return ulp_distance(a, b);
}

// ref, g_abs: the reference gradient and its magnitude bound (same shape); ways: ways 1-3 in
// T; fd_*: the elements finite differences computed, their values and kink flags; depth: K;
// along[w]: where way w is judged against its branch's reference instead (decisions.hpp).
template <class T>
TensorRow judge_tensor(const std::string& name, const Tensor<f50>& ref,
                       const Tensor<f50>& g_abs, const std::array<const Tensor<T>*, 3>& ways,
                       const std::vector<index_t>& fd_index, const std::vector<f50>& fd_value,
                       const std::vector<bool>& fd_kink, index_t depth,
                       const std::array<BranchReference, 3>& along = {}) {
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
  row.scale = static_cast<double>(smax);
  row.abs_scale = static_cast<double>(sabs);
  row.tol = gam * row.abs_scale;
  row.fd_tol = 1e-24 * std::max(row.abs_scale, 1.0);
  row.mistrusted = 2 * row.zeros > ref.numel();
  auto rel = [&](double e) { return row.scale > 0 ? e / row.scale : (e > 0 ? INFINITY : 0.0); };
  // err / tol, with 0 / 0 = 0 (an element whose bound is exactly zero must be exact).
  auto frac = [](double e, double t) { return e == 0 ? 0.0 : (t > 0 ? e / t : INFINITY); };
  for (int w = 0; w < 3; ++w) {
    const Tensor<T>& a = *ways[static_cast<std::size_t>(w)];
    const BranchReference& br = along[static_cast<std::size_t>(w)];
    const Tensor<f50>& r = br.ref ? *br.ref : ref;
    const Tensor<f50>& ga = br.g_abs ? *br.g_abs : g_abs;
    WayError& e = row.way[static_cast<std::size_t>(w)];
    e.checked = a.numel();
    check_shape("four_way_check", way_name(w), a.shape(), ref.shape());
    check_shape("four_way_check", "branch reference", r.shape(), ref.shape());
    check_shape("four_way_check", "branch magnitude bound", ga.shape(), ref.shape());
    bool pass = true;
    for (index_t i = 0; i < a.numel(); ++i) {
      const double err = static_cast<double>(abs(f50(a[i]) - r[i]));
      const bool finite = std::isfinite(static_cast<double>(a[i]));
      const double err_f = finite ? err : INFINITY;
      const double tol_i = gam * static_cast<double>(ga[i]);
      if (e.worst < 0 || err_f > e.max_abs || std::isnan(err_f)) {
        e.max_abs = err_f;
        e.worst = i;
      }
      const double fr = frac(err_f, tol_i);
      if (fr > e.max_tol_frac || std::isnan(fr)) e.max_tol_frac = fr;
      if (!(err_f <= tol_i)) pass = false;  // NaN/inf never pass
      e.max_ulp = std::max(e.max_ulp, way_ulps(a[i], static_cast<T>(r[i])));
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
    const double err = static_cast<double>(abs(fd_value[j] - ref[i]));
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

}  // namespace tapegrad::gradcheck
