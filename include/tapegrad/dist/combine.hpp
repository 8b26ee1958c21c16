// The gradient combination: one pluggable step between the shards' backward passes and the
// optimizer. A training step cuts its global batch into a fixed number of shards (set by the
// trainer, never by the number of threads or processes); each shard's gradient is computed
// with the loss divided by the global count, and the combination sums them in shard order:
//
//   g = (...((g_0 + g_1) + g_2) + ...) + g_{S-1}        (element-wise, always this order)
//
// Because the order is fixed by the shard index alone, whoever computed the shards -- one
// process with any number of threads, or P processes each holding some of them -- the sum is
// the same bits. This header is the one-process combination; an MPI one (built with
// TAPEGRAD_MPI) gathers every shard's gradient and sums in the same order.
#pragma once

#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/net/params.hpp"

namespace tapegrad::dist {

// shards[s][i]: the gradient of parameter i from shard s (an empty vector: the shard was
// empty). The sum lands in params[i].grad: the first non-empty shard's tensor, then each later
// one added in turn (shards is consumed: its tensors are moved from).
template <class T>
void sum_in_shard_order(std::vector<std::vector<Tensor<T>>>& shards, ParamSet<T>& params) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    Tensor<T>& g = params[i].grad;
    bool first = true;
    for (auto& shard : shards) {
      if (shard.empty()) continue;
      check_shape("combine", params[i].name, shard[i].shape(), g.shape());
      if (first) {
        g = std::move(shard[i]);
        first = false;
        continue;
      }
      T* acc = g.data();
      const T* s = shard[i].data();
      for (index_t j = 0, n = g.numel(); j < n; ++j) acc[j] += s[j];
    }
    if (first) g.fill(T(0));
  }
}

}  // namespace tapegrad::dist
