// A spec's network through the reference kernels only (ref::, the definitions): generic over T,
// so it runs on Var<U> (the scalar tape derives its gradient) and on f50 (finite differences,
// the 50-digit reference). Every layer through its table entry's `reference`.
//   reference_activations   the input of every layer, then the output
//   reference_loss_from     the loss from layer `start` on (finite differences restart there)
#pragma once

#include <optional>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/net/spec.hpp"

namespace tapegrad {

// One layer; params are all of the network's, in spec order.
template <class T>
Tensor<T> reference_layer(const LayerSpec& L, const Tensor<T>& a,
                          const std::vector<Tensor<T>>& params) {
  std::vector<const Tensor<T>*> lp;
  for (int i : L.params) lp.push_back(&params[static_cast<std::size_t>(i)]);
  return visit_layer_kind(L.kind, [&](auto kind) {
    return decltype(kind)::template reference<T>(L, a, ParamViews<T>(lp));
  });
}

// acts[i] feeds spec.layers[i]; acts.back() is the output.
template <class T>
std::vector<Tensor<T>> reference_activations(const NetSpec& spec, const Tensor<T>& x,
                                             const std::vector<Tensor<T>>& params) {
  std::vector<Tensor<T>> acts{x};
  for (const LayerSpec& L : spec.layers) acts.push_back(reference_layer(L, acts.back(), params));
  return acts;
}

// The loss from layer `start` on, given that layer's input a; count as in record_loss.
template <class T>
T reference_loss_from(const NetSpec& spec, std::size_t start, const Tensor<T>& a,
                      const std::vector<Tensor<T>>& params, const Targets<T>& t,
                      std::optional<index_t> count = std::nullopt) {
  Tensor<T> cur = a;
  for (std::size_t i = start; i < spec.layers.size(); ++i)
    cur = reference_layer(spec.layers[i], cur, params);
  const index_t m = count.value_or(spec.loss_count(cur.shape()[0]));
  return visit_loss_kind(spec.loss, [&](auto loss) {
    return decltype(loss)::template reference<T>(cur, t, m);
  });
}

// The whole forward loss.
template <class T>
T reference_loss(const NetSpec& spec, const Tensor<T>& x, const std::vector<Tensor<T>>& params,
                 const Targets<T>& t, std::optional<index_t> count = std::nullopt) {
  return reference_loss_from(spec, 0, x, params, t, count);
}

}  // namespace tapegrad
