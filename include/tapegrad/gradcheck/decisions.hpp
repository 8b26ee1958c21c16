// The decisions of non-differentiable ops in the four-way check (gradcheck/fourway.hpp): a
// relu's sign and a max-pool window's argmax, which a way computing in T may take differently
// from the 50-digit reference without any bug.
//
// Why. A way in T computes its forward pass with rounding errors; where a max-pool window's
// two largest inputs are closer than that error (or a relu input is that close to 0), T may
// take the other element (the other sign) than f50. Its gradient is then the exact gradient of
// ANOTHER smooth piece of the function -- correct, and O(|dy|) away from the reference
// (found by the deep property pass: input 1 4 5; conv2d kernel=3,1 pad=1 dilation=1,2;
// avg_pool2d kernel=1; conv2d kernel=3,1 pad=0,1; max_pool2d kernel=2 stride=1; flatten;
// linear out=1; loss mse at batch 2, seed 49: all three float ways "failed" conv2.w at 1.2e3
// times its tolerance). Finite differences in f50 do not see it: their stencil (h ~ 1e-15)
// does not straddle a margin of ~1e-9.
//
// What the check does, per way computing in T (ways 1 and 3 share a forward, way 2 has its
// own; gradcheck/ways.hpp):
//   1. the decisions of every relu / max_pool2d layer on the way's own activations (the
//      layer table's `decide`, run on them exactly: a T value is an f50 value), against the
//      reference's on the f50 activations;
//   2. for each decision taken differently, its margin in f50, m = a[ref's choice] - a[the
//      way's choice] >= 0 (a constant-zero candidate counts 0), against the tested
//      precision's forward error bound of the two values,
//          bound = gamma_T(K) * (A[ref's choice] + A[the way's choice]),
//      A the forward pass on |x| and |params| (the sum of |terms| behind each activation, as
//      in magnitude.hpp; K the check's depth, at least the forward's own reduction depth).
//      m <= bound: rounding may have flipped it -- the way is judged against the reference
//      taken along ITS branch: the scalar tape on Var<f50> through the network whose deciding
//      layers take the way's choices there (and the reference's everywhere else), with the
//      magnitude bound routed the same way. Its error there is rounding only again.
//      m > bound: no rounding explains it -- a forward pass is wrong; the way stays judged
//      against the reference (and fails), and the report says so.
//   3. decisions the reference takes with a margin within that bound of a tie (its runner-up
//      as close as rounding) are counted as near ties; every flip and the count are printed.
// Never a false FAIL from a decision, never a bug excused: a flip is only excused when
// rounding in T can cause it, and the way is still judged, against the right piece.
#pragma once

#include <array>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "tapegrad/gradcheck/fourway_report.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/scalar.hpp"

namespace tapegrad::gradcheck {

// A layer kind that takes decisions (net/layer_table.hpp's optional `decide` hook).
template <class Kind>
concept DecidingKind = requires(const LayerSpec& L, const Tensor<f50>& a) {
  { Kind::decide(L, a) } -> std::same_as<Decisions>;
};

// The decisions of layer l on its input a, or nullopt for a differentiable layer.
inline std::optional<Decisions> layer_decisions(const LayerSpec& L, const Tensor<f50>& a) {
  return visit_layer_kind(L.kind, [&](auto kind) -> std::optional<Decisions> {
    if constexpr (DecidingKind<decltype(kind)>)
      return decltype(kind)::decide(L, a);
    else
      return std::nullopt;
  });
}

// One decision a way took differently from the reference.
struct Flip {
  std::size_t layer = 0;
  index_t output = 0;               // flat index into the layer's output
  index_t reference_choice = 0;     // input index, or -1 (the constant 0)
  index_t tested_choice = 0;
  double margin = 0, bound = 0;
  bool within_bound = false;
};

struct DecisionAudit {
  index_t decisions = 0;  // outputs of deciding layers
  index_t near_ties = 0;  // the reference's decisions within the bound of their runner-up
  std::vector<Flip> flips;
  // Per layer: the choices along the tested branch (the reference's, with every flip within
  // the bound replaced by the way's), an empty tensor for layers with nothing to change.
  std::vector<Tensor<index_t>> branch;
  bool follows_reference() const {
    for (const Flip& f : flips)
      if (f.within_bound) return false;
    return true;
  }
};

// The reference's decisions, per layer (nullopt for differentiable layers). acts: f50.
inline std::vector<std::optional<Decisions>> reference_decisions(
    const NetSpec& spec, const std::vector<Tensor<f50>>& acts) {
  std::vector<std::optional<Decisions>> d;
  for (std::size_t l = 0; l < spec.layers.size(); ++l)
    d.push_back(layer_decisions(spec.layers[l], acts[l]));
  return d;
}

// Audits one way's decisions: ref_dec from reference_decisions, acts / acts_abs the f50
// activations on the values and on |x|, |params|, tested the way's activations (exact in
// f50), gam = gamma_T(K). With tested = nullptr only the near ties are counted.
inline DecisionAudit audit_decisions(const NetSpec& spec,
                                     const std::vector<std::optional<Decisions>>& ref_dec,
                                     const std::vector<Tensor<f50>>& acts,
                                     const std::vector<Tensor<f50>>& acts_abs,
                                     const std::vector<Tensor<f50>>* tested, double gam) {
  DecisionAudit audit;
  audit.branch.assign(spec.layers.size(), Tensor<index_t>(Shape{0}));
  for (std::size_t l = 0; l < spec.layers.size(); ++l) {
    if (!ref_dec[l]) continue;
    const Decisions& rd = *ref_dec[l];
    const Tensor<f50>& a = acts[l];
    const Tensor<f50>& A = acts_abs[l];
    auto value = [&](index_t i) { return i >= 0 ? a[i] : f50(0); };
    auto mass = [&](index_t i) { return i >= 0 ? f50(abs(A[i])) : f50(0); };
    auto bound = [&](index_t i, index_t j) { return gam * static_cast<double>(mass(i) + mass(j)); };
    audit.decisions += rd.chosen.numel();
    for (index_t o = 0; o < rd.chosen.numel(); ++o) {
      const index_t r = rd.runner_up[o];
      if (r != -2 &&
          static_cast<double>(value(rd.chosen[o]) - value(r)) <= bound(rd.chosen[o], r))
        ++audit.near_ties;
    }
    if (!tested) continue;
    const Decisions td = *layer_decisions(spec.layers[l], (*tested)[l]);
    Tensor<index_t> branch = rd.chosen;
    bool changed = false;
    for (index_t o = 0; o < rd.chosen.numel(); ++o) {
      const index_t rc = rd.chosen[o], tc = td.chosen[o];
      if (rc == tc) continue;
      Flip f;
      f.layer = l;
      f.output = o;
      f.reference_choice = rc;
      f.tested_choice = tc;
      f.margin = static_cast<double>(value(rc) - value(tc));
      f.bound = bound(rc, tc);
      f.within_bound = f.margin <= f.bound;
      if (f.within_bound) {
        branch[o] = tc;
        changed = true;
      }
      audit.flips.push_back(f);
    }
    if (changed) audit.branch[l] = std::move(branch);
  }
  return audit;
}

// The report's lines for the flips of the ways named `ways` (merged with an identical flip
// of another way already noted).
inline void note_flips(const NetSpec& spec, const std::vector<Tensor<f50>>& acts,
                       const DecisionAudit& audit, const std::string& ways,
                       std::vector<DecisionNote>& notes) {
  for (const Flip& f : audit.flips) {
    const LayerSpec& L = spec.layers[f.layer];
    const Shape in = acts[f.layer].shape(), out = acts[f.layer + 1].shape();
    auto takes = [&](index_t i) { return i >= 0 ? "input " + index_str(in, i) : std::string("0"); };
    DecisionNote n;
    n.ways = ways;
    n.layer = L.name + " (spec line " + std::to_string(L.line) + ")";
    n.output = index_str(out, f.output);
    n.reference_takes = takes(f.reference_choice);
    n.tested_takes = takes(f.tested_choice);
    n.margin = f.margin;
    n.bound = f.bound;
    n.within_bound = f.within_bound;
    bool merged = false;
    for (DecisionNote& o : notes)
      if (o.layer == n.layer && o.output == n.output && o.tested_takes == n.tested_takes) {
        o.ways += ", " + ways;
        merged = true;
      }
    if (!merged) notes.push_back(std::move(n));
  }
}

}  // namespace tapegrad::gradcheck
