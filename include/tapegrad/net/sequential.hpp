// A spec's network as hand-written layers (layers::Sequential, the tutorial's method: each
// layer's own backward loops), built from the layer table's hand_written entries.
#pragma once

#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/layers/layers.hpp"
#include "tapegrad/net/spec.hpp"

namespace tapegrad {

// params: values in spec order (copied into the layers, which own their parameters);
// count: the divisor of the loss's mean, 0 for the batch's own.
template <class T>
layers::Sequential<T> build_sequential(const NetSpec& spec, const std::vector<Tensor<T>>& params,
                                       index_t count = 0) {
  check_arg(params.size() == spec.params.size(), "build_sequential", "got ", params.size(),
            " parameter tensors, expected ", spec.params.size());
  layers::Sequential<T> net(visit_loss_kind(
      spec.loss, [&](auto loss) { return decltype(loss)::template hand_written<T>(count); }));
  std::vector<const Tensor<T>*> lp;
  for (const LayerSpec& L : spec.layers) {
    lp.clear();
    for (int i : L.params) lp.push_back(&params[static_cast<std::size_t>(i)]);
    net.add(visit_layer_kind(L.kind, [&](auto kind) {
      return decltype(kind)::template hand_written<T>(L, ParamViews<T>(lp));
    }));
  }
  return net;
}

}  // namespace tapegrad
