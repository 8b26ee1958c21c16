// Way 4 of the four-way check (gradcheck/fourway.hpp): finite differences of a network's loss
// in f50 at chosen elements of one gradient tensor, through gradcheck/finite_diff.hpp (the one
// finite-difference implementation: Richardson-extrapolated central differences, its error
// estimate and its two-test kink detector). The forward restarts at the perturbed tensor's
// layer: the activations before it do not depend on the tensor, so each evaluation costs
// only the layers from there on (for the input x, the whole network).
//
// Which elements: all when affordable, else the elements the other three ways found worst,
// then random ones (the project's Rng), at most `max_elements` and within a budget of f50
// multiply-adds (finite_diff evaluates the loss 4 times per element).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <set>
#include <vector>

#include "tapegrad/gradcheck/finite_diff.hpp"
#include "tapegrad/net/problem.hpp"
#include "tapegrad/net/reference.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/random.hpp"
#include "tapegrad/scalar.hpp"

namespace tapegrad::gradcheck {

// f50 evaluations finite_diff makes per element (f(x +- h), f(x +- h/2)).
inline constexpr double fd_evaluations_per_element = 4;

// The layer a gradient tensor's forward restarts at: 0 for x (tensor 0), else the layer of
// parameter tensor - 1.
inline std::size_t fd_start_layer(const NetSpec& spec, std::size_t tensor) {
  return tensor == 0 ? 0 : static_cast<std::size_t>(spec.params[tensor - 1].layer);
}

// The elements of gradient tensor `tensor` (numel elements) to difference: every one when
// affordable, else each way's worst (worst[w], -1 for none) first, then random ones drawn with
// Rng(seed * golden + tensor + 1). cost_per_element: f50 multiply-adds of one element.
inline std::vector<index_t> fd_elements(index_t numel, index_t max_elements, double budget,
                                        double cost_per_element,
                                        const std::vector<index_t>& worst, std::uint64_t seed,
                                        std::size_t tensor) {
  const index_t afford = std::max<index_t>(3, static_cast<index_t>(budget / cost_per_element));
  const index_t want = std::min({numel, max_elements, afford});
  std::vector<index_t> idx;
  if (want >= numel) {
    for (index_t i = 0; i < numel; ++i) idx.push_back(i);
    return idx;
  }
  std::set<index_t> seen;
  for (const index_t wi : worst)
    if (wi >= 0 && static_cast<index_t>(idx.size()) < want && seen.insert(wi).second)
      idx.push_back(wi);
  Rng rng(seed * 0x9E3779B97F4A7C15ull + tensor + 1);
  while (static_cast<index_t>(idx.size()) < want) {
    const auto i = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(numel)));
    if (seen.insert(i).second) idx.push_back(i);
  }
  return idx;
}

struct NetworkFd {
  std::vector<f50> value;  // d loss / d element, per requested element
  std::vector<bool> kink;  // the stencil straddles a kink: not to be judged
  index_t evaluations = 0;
};

// Finite differences of the loss of `spec` at `v` w.r.t. the elements `idx` of gradient tensor
// `tensor` (0: x, k: v.params[k-1]). acts: the f50 activations (reference_activations).
inline NetworkFd network_finite_diff(const NetSpec& spec, const NetValues<f50>& v,
                                     const std::vector<Tensor<f50>>& acts, std::size_t tensor,
                                     const std::vector<index_t>& idx, double rel_step = 1e-15) {
  const std::size_t start = fd_start_layer(spec, tensor);
  const Tensor<f50>& full = tensor == 0 ? v.x : v.params[tensor - 1];
  Tensor<f50> sel(Shape{static_cast<index_t>(idx.size())});
  for (std::size_t j = 0; j < idx.size(); ++j) sel[static_cast<index_t>(j)] = full[idx[j]];
  // The loss as a function of the selected elements, from the tensor's layer on.
  std::vector<Tensor<f50>> params = v.params;
  Tensor<f50> x = v.x;
  auto loss = [&](const std::vector<Tensor<f50>>& in) {
    Tensor<f50>& t = tensor == 0 ? x : params[tensor - 1];
    for (std::size_t j = 0; j < idx.size(); ++j) t[idx[j]] = in[0][static_cast<index_t>(j)];
    return reference_loss_from(spec, start, tensor == 0 ? x : acts[start], params, v.targets);
  };
  FiniteDiffOptions opt;
  opt.rel_step = rel_step;
  const FiniteDiffResult r = finite_diff(loss, {std::move(sel)}, opt);
  NetworkFd out;
  out.evaluations = r.evaluations;
  for (std::size_t j = 0; j < idx.size(); ++j) {
    out.value.push_back(r.grad[0][static_cast<index_t>(j)]);
    out.kink.push_back(r.kink[0][static_cast<index_t>(j)] != 0);
  }
  return out;
}

}  // namespace tapegrad::gradcheck
