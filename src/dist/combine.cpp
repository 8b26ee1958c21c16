// The one-process combination's sum; see include/tapegrad/dist/combine.hpp.
#include "tapegrad/dist/combine.hpp"

#include <algorithm>

#include "tapegrad/net/param_ranges.hpp"

namespace tapegrad::dist {

template <class T>
void sum_in_shard_order(std::vector<std::vector<Tensor<T>>>& shards, ParamSet<T>& params) {
  // The first non-empty shard's tensors become the sums (moved, not copied); the later
  // shards are added to them element by element, in shard order, in one parallel loop over
  // the whole set (net/param_ranges.hpp).
  std::vector<std::vector<Tensor<T>>*> later;
  bool first = true;
  for (auto& shard : shards) {
    if (shard.empty()) continue;
    check_arg(shard.size() == params.size(), "combine", "a shard has ", shard.size(),
              " gradients for ", params.size(), " parameters");
    for (std::size_t i = 0; i < params.size(); ++i)
      check_shape("combine", params[i].name, shard[i].shape(), params[i].value.shape());
    if (first) {
      for (std::size_t i = 0; i < params.size(); ++i) params[i].grad = std::move(shard[i]);
      first = false;
    } else {
      later.push_back(&shard);
    }
  }
  if (first) {
    params.zero_grads();
    return;
  }
  if (later.empty()) return;
  // In blocks of `block` elements, so that a block of the sums stays in the L1 cache while
  // every later shard is added to it (a shard at a time over a whole tensor re-read the sums
  // from the L2 cache once per shard).
  constexpr index_t block = 1024;
  for_each_param_range(params, [&](std::size_t i, index_t b, index_t e) {
    T* acc = params[i].grad.data();
    for (index_t j0 = b; j0 < e; j0 += block) {
      const index_t j1 = std::min(e, j0 + block);
      for (const auto* shard : later) {
        const T* s = (*shard)[i].data();
        for (index_t j = j0; j < j1; ++j) acc[j] += s[j];
      }
    }
  });
}

template void sum_in_shard_order(std::vector<std::vector<Tensor<float>>>&, ParamSet<float>&);
template void sum_in_shard_order(std::vector<std::vector<Tensor<double>>>&, ParamSet<double>&);

}  // namespace tapegrad::dist
