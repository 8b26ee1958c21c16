// The four-way gradient check of a network spec (DESIGN.md, "the four ways to a gradient").
//
// For one random problem (input, parameters, targets; deterministic from a seed) the gradient
// of the loss w.r.t. the input and every parameter tensor is computed by
//   (1) op tape         Tape<T> + ops:: (hand-derived VJPs through the dispatch kernels)
//   (2) scalar tape     VarTape<T> running the generic ref:: forward on Var<T>
//   (3) hand-written    layers::Sequential<T> (the layers' own backward loops)
//   (4) finite diff.    Richardson-extrapolated central differences of the ref:: forward in f50
// and judged against the 50-digit reference: the scalar tape on Var<f50> (exact to ~1e-45).
// Way 4 is the independent ground truth for that reference: it trusts no derivative rule.
// The problem is generated in double, rounded once to T, and the T values are what every way
// (and the f50 reference, exactly) sees.
//
// The parts, one file each:
//   gradcheck/ways.hpp            ways 1-3 and the reference on one problem
//   gradcheck/magnitude.hpp       G_abs, the magnitude bound behind tol_i = gamma_T(K) G_abs[i]
//   gradcheck/network_fd.hpp      way 4: finite_diff.hpp at chosen elements, restarting the
//                                 forward at the perturbed tensor's layer
//   gradcheck/decisions.hpp       relu / max-pool decisions a way in T takes differently from
//                                 the reference, and the reference along the way's branch
//   gradcheck/judge.hpp           one tensor's row: every way against its tolerance
//   gradcheck/fourway_report.hpp  the report, the verdict and the table `tapegrad check` prints
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tapegrad/gradcheck/decisions.hpp"
#include "tapegrad/gradcheck/fourway_report.hpp"
#include "tapegrad/gradcheck/judge.hpp"
#include "tapegrad/gradcheck/magnitude.hpp"
#include "tapegrad/gradcheck/network_fd.hpp"
#include "tapegrad/gradcheck/tolerance.hpp"
#include "tapegrad/gradcheck/ways.hpp"
#include "tapegrad/net/problem.hpp"
#include "tapegrad/net/reference.hpp"
#include "tapegrad/scalar.hpp"

namespace tapegrad::gradcheck {

struct FourWayOptions {
  index_t batch = 2;
  std::uint64_t seed = 1;
  // Finite differences: at most this many elements per tensor, and at most about this many
  // f50 multiply-adds for all of them (4 forward passes per element, from the perturbed
  // layer on); the worst elements of the other ways are always included.
  index_t fd_max_per_tensor = 64;
  double fd_budget_macs = 8e7;
  double fd_step = 1e-15;  // finite_diff's rel_step: h = 2^floor(log2(1e-15 max(1, |x|)))
};

// Runs the four ways on the given problem of `spec` (values in double, rounded once to T;
// opt.batch is the problem's own, opt.seed only picks finite-difference elements) and judges
// them.
template <class T>
FourWayReport four_way_check(const NetSpec& spec, const NetValues<double>& problem,
                             const FourWayOptions& opt = {}) {
  check_shape("four_way_check", "x", problem.x.shape(), spec.input_shape(problem.x.size(0)));
  check_arg(problem.params.size() == spec.params.size(), "four_way_check", "got ",
            problem.params.size(), " parameter tensors, expected ", spec.params.size());
  for (std::size_t i = 0; i < spec.params.size(); ++i)
    check_shape("four_way_check", spec.params[i].name.c_str(), problem.params[i].shape(),
                spec.params[i].shape);
  const index_t n = problem.x.size(0);
  const NetValues<T> vt = problem.template cast<T>();
  const NetValues<f50> v50 = vt.template cast<f50>();  // exact: every T is an f50
  const std::size_t nt = spec.params.size() + 1;      // x, then the parameters

  FourWayReport rep;
  rep.model = spec.source;
  rep.dtype = ScalarTraits<T>::name;
  rep.batch = n;
  rep.seed = opt.seed;
  rep.depth = spec.reduction_depth(n) + 2;
  const double gam = gamma<T>(static_cast<double>(rep.depth));

  const WayResult<T> w1 = op_tape_way(spec, vt);
  const WayResult<T> w2 = scalar_tape_way(spec, vt);
  const WayResult<T> w3 = hand_written_way(spec, vt);
  const WayResult<f50> ref = scalar_tape_way(spec, v50);
  rep.loss = static_cast<double>(w1.loss);
  const std::vector<Tensor<f50>>& acts = ref.acts;
  const std::vector<Tensor<f50>> gabs = abs_gradient_scales(spec, v50);

  // Decisions: ways 1 and 3 (one forward, w3.acts) and way 2 (its own) against the reference.
  std::vector<Tensor<f50>> abs_params;
  for (const auto& p : v50.params) abs_params.push_back(map(p, [](const f50& e) { return f50(abs(e)); }));
  const std::vector<Tensor<f50>> acts_abs = reference_activations(
      spec, map(v50.x, [](const f50& e) { return f50(abs(e)); }), abs_params);
  const auto ref_dec = reference_decisions(spec, acts);
  auto as_f50 = [](const std::vector<Tensor<T>>& a) {
    std::vector<Tensor<f50>> out;
    for (const auto& t : a) out.push_back(t.template cast<f50>());
    return out;
  };
  const std::vector<Tensor<f50>> acts13 = as_f50(w3.acts), acts2 = as_f50(w2.acts);
  const DecisionAudit audit13 = audit_decisions(spec, ref_dec, acts, acts_abs, &acts13, gam);
  const DecisionAudit audit2 = audit_decisions(spec, ref_dec, acts, acts_abs, &acts2, gam);
  rep.decisions = audit13.decisions;
  rep.near_ties = audit13.near_ties;
  note_flips(spec, acts, audit13, "op tape, hand-written", rep.flips);
  note_flips(spec, acts, audit2, "scalar tape", rep.flips);
  // The reference along each branch that differs from the reference's (within rounding).
  struct Branch {
    std::vector<Tensor<f50>> grad, gabs;
  };
  auto along = [&](const DecisionAudit& a) -> std::optional<Branch> {
    if (a.follows_reference()) return std::nullopt;
    return Branch{scalar_tape_way(spec, v50, &a.branch).grad,
                  abs_gradient_scales(spec, v50, &a.branch)};
  };
  const std::optional<Branch> b13 = along(audit13), b2 = along(audit2);

  // (4) finite differences in f50 at chosen elements of every tensor, and the rows.
  const double budget_per_tensor = opt.fd_budget_macs / static_cast<double>(nt);
  index_t total = 0, total_zeros = 0;
  for (std::size_t k = 0; k < nt; ++k) {
    const std::array<const Tensor<T>*, 3> ways{&w1.grad[k], &w2.grad[k], &w3.grad[k]};
    std::array<BranchReference, 3> br{};
    if (b13) br[way_op_tape] = br[way_hand_written] = {&b13->grad[k], &b13->gabs[k]};
    if (b2) br[way_scalar_tape] = {&b2->grad[k], &b2->gabs[k]};
    const Tensor<f50>& g = ref.grad[k];
    // each way's worst element (against what it is judged on), first among equals
    std::vector<index_t> worst;
    for (int w = 0; w < 3; ++w) {
      const Tensor<f50>& r = br[static_cast<std::size_t>(w)].ref ? *br[static_cast<std::size_t>(w)].ref : g;
      index_t wi = 0;
      f50 we(-1);
      for (index_t i = 0; i < g.numel(); ++i) {
        const f50 e = abs(f50((*ways[static_cast<std::size_t>(w)])[i]) - r[i]);
        if (e > we) we = e, wi = i;
      }
      worst.push_back(wi);
    }
    const double cost = fd_evaluations_per_element *
                        (spec.forward_macs(fd_start_layer(spec, k), n) + 1);
    const std::vector<index_t> idx = fd_elements(g.numel(), opt.fd_max_per_tensor,
                                                 budget_per_tensor, cost, worst, opt.seed, k);
    const NetworkFd fd = network_finite_diff(spec, v50, acts, k, idx, opt.fd_step);
    const std::string name = k == 0 ? std::string("x") : spec.params[k - 1].name;
    rep.rows.push_back(judge_tensor<T>(name, g, gabs[k], ways, idx, fd.value, fd.kink,
                                       rep.depth, br));
    total += g.numel();
    total_zeros += rep.rows.back().zeros;
  }
  rep.mistrusted = 2 * total_zeros > total;
  return rep;
}

// Runs the four ways on a random problem of `spec` (random_problem, batch and seed from opt).
template <class T>
FourWayReport four_way_check(const NetSpec& spec, const FourWayOptions& opt = {}) {
  check_positive("four_way_check", "batch", opt.batch);
  return four_way_check<T>(spec, random_problem(spec, opt.batch, opt.seed), opt);
}

}  // namespace tapegrad::gradcheck
