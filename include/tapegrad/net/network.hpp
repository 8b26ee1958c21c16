// A network of a spec recorded on the op tape: every layer through its table entry's record
// (ops:: with their hand-derived VJPs on the fast kernels; a conv2d or linear followed by an
// activation as one fused op, see Fusion), then the loss.
//
//   Tape<float> tape;
//   const auto x = tape.view(batch.x, /*requires_grad=*/false);   // no copy
//   const auto ps = record_params(tape, params);                  // views of the ParamSet
//   const auto loss = record_network(spec, x, ps, batch.targets, global_count);
//   tape.backward(loss);
//   take_grads(tape, ps, params);                                 // moved, not copied
#pragma once

#include <optional>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/net/params.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/tape/tape.hpp"

namespace tapegrad {

// One view leaf per parameter of the set, in order (the tape reads the set's tensors; they must
// stay alive and unchanged until the tape is cleared).
template <class T>
std::vector<TapeTensor<T>> record_params(Tape<T>& tape, const ParamSet<T>& params,
                                         bool requires_grad = true) {
  std::vector<TapeTensor<T>> handles;
  handles.reserve(params.size());
  for (const auto& p : params) handles.push_back(tape.view(p.value, requires_grad));
  return handles;
}

// After tape.backward(): each parameter's gradient moved into the set.
template <class T>
void take_grads(Tape<T>& tape, const std::vector<TapeTensor<T>>& handles, ParamSet<T>& params) {
  check_arg(handles.size() == params.size(), "take_grads", "got ", handles.size(),
            " handles for ", params.size(), " parameters");
  for (std::size_t i = 0; i < handles.size(); ++i) tape.take_grad(handles[i], params[i].grad);
}

// Whether record_output fuses a layer whose kind can take an activation (conv2d, linear: their
// `fuses_activation`) with the activation layer right after it (relu, sigmoid, tanh: their
// `activation`), recording one fused op (ops.hpp) instead of two. The results are the same bits
// either way (tests/fused_ops_test.cpp); the fused op saves the activation's pass over memory.
enum class Fusion { activations, none };

// The activation the layer after `i` fuses into layer i, or none.
inline Activation fused_activation(const NetSpec& spec, std::size_t i, Fusion fusion) {
  if (fusion == Fusion::none || i + 1 >= spec.layers.size()) return Activation::none;
  const bool takes = visit_layer_kind(spec.layers[i].kind, [](auto kind) {
    return requires { decltype(kind)::fuses_activation; };
  });
  if (!takes) return Activation::none;
  return visit_layer_kind(spec.layers[i + 1].kind, [](auto kind) {
    if constexpr (requires { decltype(kind)::activation; }) return decltype(kind)::activation;
    return Activation::none;
  });
}

// The network output (before the loss); params[i] are handles for spec.params[i].
template <class T>
TapeTensor<T> record_output(const NetSpec& spec, const TapeTensor<T>& x,
                            const std::vector<TapeTensor<T>>& params,
                            Fusion fusion = Fusion::activations) {
  check_arg(params.size() == spec.params.size(), "record_network", "got ", params.size(),
            " parameter tensors, expected ", spec.params.size());
  TapeTensor<T> a = x;
  std::vector<TapeTensor<T>> lp;
  for (std::size_t li = 0; li < spec.layers.size(); ++li) {
    const LayerSpec& L = spec.layers[li];
    lp.clear();
    for (int i : L.params) lp.push_back(params[static_cast<std::size_t>(i)]);
    const Activation act = fused_activation(spec, li, fusion);
    a = visit_layer_kind(L.kind, [&](auto kind) {
      using K = decltype(kind);
      if constexpr (requires { K::fuses_activation; })
        return K::template record<T>(L, a, ParamHandles<T>(lp), act);
      else
        return K::template record<T>(L, a, ParamHandles<T>(lp));
    });
    if (act != Activation::none) ++li;  // the activation layer is in the fused op
  }
  return a;
}

// The loss of `out` against t, divided by count (default: this batch's, NetSpec::loss_count).
template <class T>
TapeTensor<T> record_loss(const NetSpec& spec, const TapeTensor<T>& out, const Targets<T>& t,
                          std::optional<index_t> count = std::nullopt) {
  const index_t m = count.value_or(spec.loss_count(out.shape()[0]));
  return visit_loss_kind(spec.loss, [&](auto loss) {
    return decltype(loss)::template record<T>(out, t, m);
  });
}

// Output and loss in one call.
template <class T>
TapeTensor<T> record_network(const NetSpec& spec, const TapeTensor<T>& x,
                             const std::vector<TapeTensor<T>>& params, const Targets<T>& t,
                             std::optional<index_t> count = std::nullopt,
                             Fusion fusion = Fusion::activations) {
  return record_loss(spec, record_output(spec, x, params, fusion), t, count);
}

}  // namespace tapegrad
