// The gradient combination: one pluggable step between the shards' backward passes and the
// optimizer. A training step cuts its global batch into a fixed number of shards (set by the
// trainer, never by the number of threads or processes); each shard's gradient is computed
// with the loss divided by the global count, and the combination sums them in shard order:
//
//   g = (...((g_0 + g_1) + g_2) + ...) + g_{S-1}        (element-wise, always this order)
//
// Because the order is fixed by the shard index alone, whoever computed the shards -- one
// process with any number of threads, or P processes each holding some of them -- the sum is
// the same bits. This header is the one-process combination (Combiner); dist/mpi_combine.hpp's
// MpiCombiner first gathers every rank's shards, then sums in the same order.
#pragma once

#include <utility>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/net/params.hpp"
#include "tapegrad/tape/profile.hpp"

namespace tapegrad::dist {

// shards[s][i]: the gradient of parameter i from shard s (an empty vector: the shard was
// empty). The sum lands in params[i].grad: the first non-empty shard's tensor, then each later
// one added in turn (shards is consumed: its tensors are moved from). Element-wise, so the
// elements of large tensors are summed in parallel (src/dist/combine.cpp) with the same bits.
template <class T>
void sum_in_shard_order(std::vector<std::vector<Tensor<T>>>& shards, ParamSet<T>& params);
extern template void sum_in_shard_order(std::vector<std::vector<Tensor<float>>>&, ParamSet<float>&);
extern template void sum_in_shard_order(std::vector<std::vector<Tensor<double>>>&, ParamSet<double>&);

// What a step's shards leave for the combination, by shard number s = 0 .. shards-1.
template <class T>
struct ShardResults {
  std::vector<std::vector<Tensor<T>>> grads;  // grads[s][i] as above; empty: the shard was
                                              // empty (or, before combine, computed elsewhere)
  std::vector<double> loss;                   // shard s's loss (its share of the batch mean)
  std::vector<index_t> correct;               // its correct predictions

  void reset(index_t shards) {
    const auto n = static_cast<std::size_t>(shards);
    grads.resize(n);
    for (auto& g : grads) g.clear();
    loss.assign(n, 0.0);
    correct.assign(n, 0);
  }
};

// The combination step, between the shards' backward passes and the optimizer. This one is
// the one-process combination: every shard was computed here.
template <class T>
class Combiner {
 public:
  virtual ~Combiner() = default;
  // The shards [first, second) of `shards` this process computes.
  virtual std::pair<index_t, index_t> shard_range(index_t shards) const { return {0, shards}; }
  // Afterwards every shard's loss and correct count are in `r` and params[i].grad holds the
  // sum of every shard's gradient in shard order (profiled as "combine").
  virtual void combine(ShardResults<T>& r, ParamSet<T>& params) {
    profile::Scope s("combine", profile::Phase::combine);
    sum_in_shard_order(r.grads, params);
  }
};

}  // namespace tapegrad::dist
