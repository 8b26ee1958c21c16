// Ways 1-3 of the four-way check (gradcheck/fourway.hpp), and the reference, on one problem of
// a network spec. Each returns the gradient of the loss w.r.t. x, then every parameter (in
// NetSpec order), and where the check needs them the activations the way computed (every
// layer's input, then the output), to see which decisions of relu / max-pool it took:
//   (1) op tape         Tape<T> + ops:: (hand-derived VJPs through the dispatch kernels)
//   (2) scalar tape     VarTape<S> running the generic ref:: forward on Var<S>; S = T, and
//                       S = f50 for the reference (exact to ~1e-45)
//   (3) hand-written    layers::Sequential<T> (the layers' own backward loops)
// Ways 1 and 3 run the same forward: the ops and the hand-written layers call the same
// dispatch kernels on the same values, so one set of activations (taken from the layers)
// stands for both.
#pragma once

#include <vector>

#include "tapegrad/net/network.hpp"
#include "tapegrad/net/problem.hpp"
#include "tapegrad/net/reference.hpp"
#include "tapegrad/net/sequential.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tape/tape.hpp"
#include "tapegrad/var/var.hpp"

namespace tapegrad::gradcheck {

template <class T>
struct WayResult {
  std::vector<Tensor<T>> grad;  // x, then the parameters
  std::vector<Tensor<T>> acts;  // each layer's input, then the output (where recorded)
  T loss = T(0);
};

// (1) The op tape.
template <class T>
WayResult<T> op_tape_way(const NetSpec& spec, const NetValues<T>& v) {
  WayResult<T> r;
  Tape<T> tape;
  const auto x = tape.leaf(v.x);
  std::vector<TapeTensor<T>> ps;
  for (const auto& p : v.params) ps.push_back(tape.leaf(p));
  const auto loss = record_network(spec, x, ps, v.targets);
  r.loss = loss.value()[0];
  tape.backward(loss);
  r.grad.push_back(tape.grad(x));
  for (const auto& p : ps) r.grad.push_back(tape.grad(p));
  return r;
}

// Layer l's output from its input a: the kind's reference forward, or, where `branch` gives
// the layer's choices (gradcheck/decisions.hpp), the element each output takes (or 0).
template <class S>
Tensor<S> branch_layer(const NetSpec& spec, std::size_t l, const Tensor<S>& a,
                       const std::vector<Tensor<S>>& params,
                       const std::vector<Tensor<index_t>>* branch) {
  if (!branch || (*branch)[l].numel() == 0) return reference_layer(spec.layers[l], a, params);
  const Tensor<index_t>& chosen = (*branch)[l];
  Tensor<S> y(chosen.shape());
  for (index_t o = 0; o < chosen.numel(); ++o)
    if (chosen[o] >= 0) y[o] = a[chosen[o]];
  return y;
}

// (2) The scalar tape on Var<S>. With `branch`, the network whose deciding layers take the
// given choices: the reference taken along another precision's branch.
template <class S>
WayResult<S> scalar_tape_way(const NetSpec& spec, const NetValues<S>& v,
                             const std::vector<Tensor<index_t>>* branch = nullptr) {
  WayResult<S> r;
  VarTape<S> tape;
  const Tensor<Var<S>> x = make_variables(tape, v.x);
  std::vector<Tensor<Var<S>>> params;
  for (const auto& p : v.params) params.push_back(make_variables(tape, p));
  const Targets<Var<S>> targets{v.targets.labels, make_constants(v.targets.values)};
  Tensor<Var<S>> a = x;
  r.acts.push_back(v.x);
  for (std::size_t l = 0; l < spec.layers.size(); ++l) {
    a = branch_layer(spec, l, a, params, branch);
    r.acts.push_back(values(a));
  }
  const Var<S> loss = reference_loss_from(spec, spec.layers.size(), a, params, targets);
  r.loss = loss.value();
  tape.backward(loss);
  r.grad.push_back(adjoints(tape, x));
  for (const auto& p : params) r.grad.push_back(adjoints(tape, p));
  return r;
}

// (3) The hand-written layers. The activations come from a second, layer-by-layer forward
// of the same layers (same kernels, same values).
template <class T>
WayResult<T> hand_written_way(const NetSpec& spec, const NetValues<T>& v) {
  WayResult<T> r;
  {
    auto probe = build_sequential(spec, v.params);
    r.acts.push_back(v.x);
    for (std::size_t l = 0; l < probe.size(); ++l)
      r.acts.push_back(probe.layer(l).forward(r.acts.back()));
  }
  auto net = build_sequential(spec, v.params);
  r.loss = net.forward_loss(v.x, v.targets);
  r.grad.push_back(net.backward());
  for (const auto& p : net.params()) r.grad.push_back(*p.grad);
  return r;
}

}  // namespace tapegrad::gradcheck
