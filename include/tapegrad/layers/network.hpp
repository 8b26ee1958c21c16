// One network spec, three ways to run it:
//   build_sequential<T>   a Sequential of hand-written layers (their own backward loops)
//   record_network<T>     the same network recorded on the op tape
//   reference_loss<T>     a generic forward loss over the ref:: kernels directly, for
//                         T = Var<U> (the scalar tape) and f50 (finite differences);
//                         reference_activations + reference_loss_from restart it at a layer
// plus deterministic random problems (inputs, parameters, targets) from a seed.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tapegrad/kernels/activation_ref.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/kernels/loss_ref.hpp"
#include "tapegrad/kernels/pool_ref.hpp"
#include "tapegrad/layers/layers.hpp"
#include "tapegrad/layers/spec.hpp"
#include "tapegrad/ops/ops.hpp"
#include "tapegrad/tape/tape.hpp"

namespace tapegrad {

using layers::Targets;

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

// Uniform double in [lo, hi) from 53 random bits: the same numbers on every platform
// (std::uniform_real_distribution is implementation-defined).
inline double uniform(std::mt19937_64& rng, double lo, double hi) {
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  return lo + (hi - lo) * u;
}

// A random problem for `spec` with batch n, deterministic from seed:
//   x ~ U[-1, 1);  w ~ U[-a, a) with a = sqrt(6 / fan_in) (He-uniform), then each output
//   unit's row centred (see below);  b ~ U[-0.1, 0.1);
//   cross_entropy labels ~ U{0..C-1};  mse targets ~ U[0, 1).
inline NetValues<double> random_problem(const NetSpec& spec, index_t n, std::uint64_t seed) {
  check_positive("random_problem", "batch", n);
  std::mt19937_64 rng(seed);
  NetValues<double> v;
  v.x = Tensor<double>(spec.input_shape(n));
  for (double& e : v.x) e = uniform(rng, -1, 1);
  for (const ParamSpec& p : spec.params) {
    Tensor<double> t(p.shape);
    const bool is_bias = p.shape.rank() == 1;
    const double a = is_bias ? 0.1 : std::sqrt(6.0 / static_cast<double>(p.fan_in));
    for (double& e : t) e = uniform(rng, -a, a);
    if (!is_bias) {
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
  if (spec.loss == LossKind::cross_entropy) {
    for (index_t i = 0; i < n; ++i) {
      auto c = static_cast<index_t>(uniform(rng, 0, 1) * static_cast<double>(out[1]));
      v.targets.labels.push_back(c < out[1] ? c : out[1] - 1);
    }
  } else {
    v.targets.values = Tensor<double>(out);
    for (double& e : v.targets.values) e = uniform(rng, 0, 1);
  }
  return v;
}

// ---------------------------------------------------------------- hand-written layers
template <class T>
layers::Sequential<T> build_sequential(const NetSpec& spec, const std::vector<Tensor<T>>& params) {
  using namespace layers;
  check_arg(params.size() == spec.params.size(), "build_sequential", "got ", params.size(),
            " parameter tensors, expected ", spec.params.size());
  Sequential<T> net(spec.loss == LossKind::mse ? Sequential<T>::Loss::mse
                                               : Sequential<T>::Loss::cross_entropy);
  auto bias = [&](const LayerSpec& L) -> std::optional<Tensor<T>> {
    if (L.b_param < 0) return std::nullopt;
    return params[static_cast<std::size_t>(L.b_param)];
  };
  for (const LayerSpec& L : spec.layers) {
    switch (L.kind) {
      case LayerKind::conv2d:
        net.add(std::make_unique<Conv2d<T>>(L.name, params[static_cast<std::size_t>(L.w_param)],
                                            bias(L), L.conv));
        break;
      case LayerKind::linear:
        net.add(std::make_unique<Linear<T>>(L.name, params[static_cast<std::size_t>(L.w_param)],
                                            bias(L)));
        break;
      case LayerKind::relu: net.add(std::make_unique<ReLU<T>>()); break;
      case LayerKind::sigmoid: net.add(std::make_unique<Sigmoid<T>>()); break;
      case LayerKind::tanh: net.add(std::make_unique<Tanh<T>>()); break;
      case LayerKind::max_pool2d: net.add(std::make_unique<MaxPool2d<T>>(L.pool)); break;
      case LayerKind::avg_pool2d: net.add(std::make_unique<AvgPool2d<T>>(L.pool)); break;
      case LayerKind::flatten: net.add(std::make_unique<Flatten<T>>()); break;
    }
  }
  return net;
}

// ---------------------------------------------------------------- the op tape
// Records the network's loss on x's tape; params[i] are handles for spec.params[i].
template <class T>
TapeTensor<T> record_network(const NetSpec& spec, const TapeTensor<T>& x,
                             const std::vector<TapeTensor<T>>& params, const Targets<T>& t) {
  check_arg(params.size() == spec.params.size(), "record_network", "got ", params.size(),
            " parameter tensors, expected ", spec.params.size());
  TapeTensor<T> a = x;
  for (const LayerSpec& L : spec.layers) {
    std::optional<TapeTensor<T>> b;
    if (L.b_param >= 0) b = params[static_cast<std::size_t>(L.b_param)];
    switch (L.kind) {
      case LayerKind::conv2d:
        a = ops::conv2d(a, params[static_cast<std::size_t>(L.w_param)], b, L.conv);
        break;
      case LayerKind::linear:
        a = ops::linear(a, params[static_cast<std::size_t>(L.w_param)], b);
        break;
      case LayerKind::relu: a = ops::relu(a); break;
      case LayerKind::sigmoid: a = ops::sigmoid(a); break;
      case LayerKind::tanh: a = ops::tanh(a); break;
      case LayerKind::max_pool2d: a = ops::max_pool2d(a, L.pool); break;
      case LayerKind::avg_pool2d: a = ops::avg_pool2d(a, L.pool); break;
      case LayerKind::flatten: a = ops::flatten(a); break;
    }
  }
  if (spec.loss == LossKind::mse) return ops::mse_loss(a, x.tape().constant(t.values));
  return ops::cross_entropy(a, t.labels);
}

// ---------------------------------------------------------------- the reference forward
// One layer of the reference forward, ref:: kernels only (runs on Var<U> and f50).
template <class T>
Tensor<T> reference_layer(const LayerSpec& L, const Tensor<T>& a,
                          const std::vector<Tensor<T>>& params) {
  const Tensor<T>* b = L.b_param >= 0 ? &params[static_cast<std::size_t>(L.b_param)] : nullptr;
  switch (L.kind) {
    case LayerKind::conv2d: {
      const Tensor<T>& w = params[static_cast<std::size_t>(L.w_param)];
      const Conv2dGeom g =
          make_conv2d_geom(a.shape(), w.shape(), b ? &b->shape() : nullptr, L.conv);
      return ref::conv2d_forward(g, a, w, b);
    }
    case LayerKind::linear: {
      const Tensor<T>& w = params[static_cast<std::size_t>(L.w_param)];
      const LinearGeom g = make_linear_geom(a.shape(), w.shape(), b ? &b->shape() : nullptr);
      return ref::linear_forward(g, a, w, b);
    }
    case LayerKind::relu: return ref::relu_forward(a);
    case LayerKind::sigmoid: return ref::sigmoid_forward(a);
    case LayerKind::tanh: return ref::tanh_forward(a);
    case LayerKind::max_pool2d:
      return ref::max_pool2d_forward(make_pool2d_geom(a.shape(), L.pool, "max_pool2d"), a);
    case LayerKind::avg_pool2d:
      return ref::avg_pool2d_forward(make_pool2d_geom(a.shape(), L.pool, "avg_pool2d"), a);
    case LayerKind::flatten: return ref::flatten_forward(a);
  }
  return a;
}

// The inputs of every layer, then the network output: acts[i] feeds spec.layers[i],
// acts.back() is the output.
template <class T>
std::vector<Tensor<T>> reference_activations(const NetSpec& spec, const Tensor<T>& x,
                                             const std::vector<Tensor<T>>& params) {
  std::vector<Tensor<T>> acts{x};
  for (const LayerSpec& L : spec.layers) acts.push_back(reference_layer(L, acts.back(), params));
  return acts;
}

// The loss from layer `start` on, given that layer's input a.
template <class T>
T reference_loss_from(const NetSpec& spec, std::size_t start, const Tensor<T>& a,
                      const std::vector<Tensor<T>>& params, const Targets<T>& t) {
  Tensor<T> cur = a;
  for (std::size_t i = start; i < spec.layers.size(); ++i)
    cur = reference_layer(spec.layers[i], cur, params);
  if (spec.loss == LossKind::mse) {
    check_mse_loss(cur.shape(), t.values.shape());
    return ref::mse_loss_forward(cur, t.values)[0];
  }
  check_cross_entropy(cur.shape(), t.labels);
  return ref::cross_entropy_forward(cur, t.labels)[0];
}

// The whole forward loss, ref:: kernels only.
template <class T>
T reference_loss(const NetSpec& spec, const Tensor<T>& x, const std::vector<Tensor<T>>& params,
                 const Targets<T>& t) {
  return reference_loss_from(spec, 0, x, params, t);
}

}  // namespace tapegrad
