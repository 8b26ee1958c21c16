// Deterministic random problems for a spec (input, parameters, targets from a seed): what the
// four-way check, the property suite and the benches run on.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/random.hpp"

namespace tapegrad {

// The numbers of one problem: the input, every parameter (in NetSpec::params order) and the
// loss targets.
template <class T>
struct NetValues {
  Tensor<T> x;
  std::vector<Tensor<T>> params;
  Targets<T> targets;

  template <class U>
  NetValues<U> cast() const {
    NetValues<U> v{x.template cast<U>(), {}, targets.template cast<U>()};
    for (const auto& p : params) v.params.push_back(p.template cast<U>());
    return v;
  }
};

// A random problem for `spec` with batch n, deterministic from seed (one Rng, in this order):
//   x ~ U[-1, 1);  w ~ U[-a, a) with a = sqrt(6 / fan_in) (He-uniform), then each output
//   unit's row centred (see below);  b ~ U[-0.1, 0.1);  targets from the loss's entry
//   (cross_entropy labels ~ U{0..C-1};  mse targets ~ U[0, 1)).
inline NetValues<double> random_problem(const NetSpec& spec, index_t n, std::uint64_t seed) {
  check_positive("random_problem", "batch", n);
  Rng rng(seed);
  NetValues<double> v;
  v.x = uniform_tensor<double>(spec.input_shape(n), rng, -1, 1);
  for (const ParamSpec& p : spec.params) {
    const double a = p.bias ? 0.1 : std::sqrt(6.0 / static_cast<double>(p.fan_in));
    Tensor<double> t = uniform_tensor<double>(p.shape, rng, -a, a);
    if (!p.bias) {
      // Centre each output unit's weights (zero sum over its fan-in). Inputs after a relu all
      // share a positive mean; a unit whose weights sum to s != 0 then has the sign of s for
      // every sample, so it is dead for the whole batch half the time and most gradient
      // entries would be exact zeros. Centred rows decorrelate the samples.
      const index_t rows = p.shape[0], cols = p.shape.numel() / p.shape[0];
      for (index_t r = 0; r < rows; ++r) {
        double mean = 0;
        for (index_t c = 0; c < cols; ++c) mean += t[r * cols + c];
        mean /= static_cast<double>(cols);
        if (cols > 1)
          for (index_t c = 0; c < cols; ++c) t[r * cols + c] -= mean;
      }
    }
    v.params.push_back(std::move(t));
  }
  const Shape out = spec.output_shape(n);
  visit_loss_kind(spec.loss, [&](auto loss) { decltype(loss)::random_targets(rng, out, v.targets); });
  return v;
}

}  // namespace tapegrad
