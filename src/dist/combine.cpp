// The one-process combination's sum; see include/tapegrad/dist/combine.hpp.
#include "tapegrad/dist/combine.hpp"

namespace tapegrad::dist {

namespace {
constexpr index_t parallel_min = 16384;  // as the optimizer's (train/optimizer.cpp)
}  // namespace

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
      const index_t n = g.numel();
#pragma omp parallel for schedule(static) if (n >= parallel_min)
      for (index_t j = 0; j < n; ++j) acc[j] += s[j];
    }
    if (first) g.fill(T(0));
  }
}

template void sum_in_shard_order(std::vector<std::vector<Tensor<float>>>&, ParamSet<float>&);
template void sum_in_shard_order(std::vector<std::vector<Tensor<double>>>&, ParamSet<double>&);

}  // namespace tapegrad::dist
