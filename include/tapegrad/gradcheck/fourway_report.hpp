// The report of the four-way gradient check (gradcheck/fourway.hpp): per gradient tensor one
// row with every way's error against the 50-digit reference, the verdict, and the table that
// `tapegrad check` prints.
//
// Errors, per tensor and per way (vs the reference g):
//   max abs error   max_i |a_i - g_i| (computed in f50)
//   max rel error   max abs error / S, with the tensor's scale S = max_i |g_i|
//   tol used        max_i |a_i - g_i| / tol_i: the fraction of the per-element tolerance used
//                   (pass iff <= 1; ways 1-3 against tol_i, way 4 against fd_tol)
//   max ULP error   max_i ulp_distance(a_i, round_T(g_i))  (ways 1-3; in T; compare.hpp's)
//   worst           the flat index of the element with the largest abs error
// Ways 1-3 are judged against the reference "along their branch" where they took a decision
// of a non-differentiable op differently from it (gradcheck/decisions.hpp); the rows' S and
// exact-zero counts, and finite differences, stay with the reference itself.
//
// Attribution: when exactly one way fails, it "stands apart" from the other three; otherwise
// the failing ways are listed. Mistrust: a tensor whose reference gradient is more than half
// exact zeros (dead relus, saturated sigmoids) is "mistrusted" -- agreement there proves
// little -- and so is the whole check when more than half of all entries are exact zeros.
// Mistrust is reported, not failed.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "tapegrad/gradcheck/tolerance.hpp"
#include "tapegrad/shape.hpp"

namespace tapegrad::gradcheck {

enum Way { way_op_tape = 0, way_scalar_tape = 1, way_hand_written = 2, way_finite_diff = 3 };
inline constexpr int num_ways = 4;
inline const char* way_name(int w) {
  static const char* names[] = {"op tape", "scalar tape", "hand-written", "finite diff"};
  return names[w];
}

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

// A decision of a non-differentiable op (a relu's sign, a max-pool window's argmax) that one
// or more ways in the tested precision took differently from the 50-digit reference.
struct DecisionNote {
  std::string ways;       // "op tape, hand-written, scalar tape"
  std::string layer;      // "max_pool2d2 (spec line 5)"
  std::string output;     // the output element, "[0,0,1,2]"
  std::string reference_takes, tested_takes;  // "input [0,0,1,2]" or "0"
  double margin = 0;      // value(reference's choice) - value(tested choice), in f50
  double bound = 0;       // the tested precision's forward error bound of the two values
  bool within_bound = false;  // true: those ways were judged along their branch
};

struct FourWayReport {
  std::string model, dtype;
  index_t batch = 0;
  std::uint64_t seed = 0;
  index_t depth = 0;  // K of the tolerance
  double loss = 0;
  std::vector<TensorRow> rows;
  bool mistrusted = false;
  // Decisions of relu / max_pool2d layers (every output element of such a layer is one):
  // how many, how many the reference took within the tested precision's forward error bound
  // of a tie, and the ones some way took differently (gradcheck/decisions.hpp).
  index_t decisions = 0, near_ties = 0;
  std::vector<DecisionNote> flips;

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
  // Decisions: printed when some way took one differently (near ties alone change nothing:
  // every way took them as the reference did, so each was judged on the reference's piece).
  if (!flips.empty()) {
    os << "decisions: " << decisions << " (relu signs, max-pool argmaxes); " << near_ties
       << " within " << dtype << "'s forward error bound of a tie (margin <= gamma(K) * (A_i + "
       << "A_j), A = the forward pass on |x|, |params|); " << flips.size()
       << " taken differently from the reference; where the margin is within the bound, the "
          "ways that did so are judged against the reference along their branch:\n";
    for (const DecisionNote& d : flips)
      os << "  " << d.layer << " output " << d.output << ": reference takes "
         << d.reference_takes << ", " << d.ways << " take " << d.tested_takes << "; margin "
         << sci(d.margin) << (d.within_bound ? " <= " : " > ") << "bound " << sci(d.bound)
         << (d.within_bound ? "" : "  (beyond rounding: a forward pass is wrong)") << "\n";
  }
  for (const TensorRow& r : rows)
    for (int w = 0; w < num_ways; ++w) {
      const WayError& e = r.way[static_cast<std::size_t>(w)];
      if (!e.pass) {
        os << r.name << ": " << way_name(w) << " max abs error " << sci(e.max_abs)
           << " at element " << (e.worst >= 0 ? index_str(r.shape, e.worst) : "-") << "; ";
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
