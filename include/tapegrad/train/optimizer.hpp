// Optimizers that update a parameter set in place from its gradients, with PyTorch 1.13's
// formulas and order of operations (torch/optim/sgd.py, adam.py, single-tensor path), so a
// recipe transfers between the two:
//
//   sgd    d = g + wd * w;  buf = d on the first step, else momentum * buf + d;  w -= lr * buf
//          (dampening 0, no Nesterov; without momentum, w -= lr * d)
//   adam   d = g + wd * w (L2, as torch.optim.Adam's weight_decay);
//          m = beta1 m + (1 - beta1) d;  v = beta2 v + (1 - beta2) d^2;
//          w -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// Each update is element-wise, so it is the same bits for any number of threads. The state
// (momentum buffers, Adam moments, the step count) is a list of named tensors, which
// checkpoints save and restore (train/checkpoint.hpp): "sgd.momentum.conv1.w",
// "adam.m.conv1.w", "adam.v.conv1.w".
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/net/params.hpp"

namespace tapegrad::train {

struct OptimConfig {
  std::string name = "sgd";  // sgd | adam
  double lr = 0.01;
  double momentum = 0;       // sgd
  double weight_decay = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam
  // The learning rate of step t = 1, 2, ...: constant, lr; cosine (PyTorch's CosineAnnealingLR
  // stepped every batch, eta_min 0, T_max = schedule_steps), lr * (1 + cos(pi * (t-1) / T)) / 2,
  // and 0 past T.
  std::string schedule = "constant";
  std::int64_t schedule_steps = 0;

  double lr_at(std::int64_t t) const {
    if (schedule == "constant") return lr;
    const double k = static_cast<double>(std::min<std::int64_t>(t - 1, schedule_steps));
    return lr * 0.5 * (1 + std::cos(std::acos(-1.0) * k / static_cast<double>(schedule_steps)));
  }

  // Throws std::invalid_argument naming the option for values out of range.
  void validate() const {
    check_arg(name == "sgd" || name == "adam", "optimizer", "expected sgd or adam, got ",
              quote(name));
    check_arg(std::isfinite(lr) && lr > 0, "optimizer", "--lr must be positive, got ", lr);
    check_arg(std::isfinite(momentum) && momentum >= 0 && momentum < 1, "optimizer",
              "--momentum must be in [0, 1), got ", momentum);
    check_arg(std::isfinite(weight_decay) && weight_decay >= 0, "optimizer",
              "--weight-decay must be non-negative, got ", weight_decay);
    check_arg(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0, "optimizer",
              "adam needs 0 <= beta1, beta2 < 1 and eps > 0");
    check_arg(name == "sgd" || momentum == 0, "optimizer",
              "--momentum applies to sgd only (adam has beta1)");
    check_arg(schedule == "constant" || schedule == "cosine", "optimizer",
              "--lr-schedule: expected constant or cosine, got ", quote(schedule));

  }
};

template <class T>
class Optimizer {
 public:
  struct StateTensor {
    std::string name;
    Tensor<T>* tensor;
  };

  explicit Optimizer(OptimConfig cfg, const ParamSet<T>& params) : cfg_(std::move(cfg)) {
    cfg_.validate();
    check_arg(cfg_.schedule == "constant" || cfg_.schedule_steps > 0, "optimizer",
              "a cosine schedule needs its length in steps");
    const std::size_t n = params.size();
    if (cfg_.name == "sgd" && cfg_.momentum > 0) slots_.emplace_back("sgd.momentum.", n);
    if (cfg_.name == "adam") {
      slots_.emplace_back("adam.m.", n);
      slots_.emplace_back("adam.v.", n);
    }
    for (auto& [prefix, tensors] : slots_)
      for (std::size_t i = 0; i < n; ++i) tensors[i] = Tensor<T>(params[i].value.shape());
    names_.reserve(n);
    for (const auto& p : params) names_.push_back(p.name);
  }

  const OptimConfig& config() const { return cfg_; }
  std::int64_t steps() const { return steps_; }
  // The learning rate the last step used (the first step's before any).
  double lr() const { return cfg_.lr_at(std::max<std::int64_t>(steps_, 1)); }

  // One update of every parameter from its .grad (one parallel loop over the whole set:
  // net/param_ranges.hpp).
  void step(ParamSet<T>& params) {
    check_arg(params.size() == names_.size(), "optimizer", "parameter set changed size");
    ++steps_;
    update(params);
  }

  // The state as named tensors (pointers into the optimizer: load by writing through them).
  std::vector<StateTensor> state() {
    std::vector<StateTensor> out;
    for (auto& [prefix, tensors] : slots_)
      for (std::size_t i = 0; i < tensors.size(); ++i) out.push_back({prefix + names_[i], &tensors[i]});
    return out;
  }
  void set_steps(std::int64_t s) {
    check_arg(s >= 0, "optimizer", "step count must be non-negative");
    steps_ = s;
  }

 private:
  // The element-wise updates (src/train/optimizer.cpp): elements [b, e) of tensor i; each
  // element's arithmetic is the same whichever thread runs it.
  void update(ParamSet<T>& params);
  void sgd(Tensor<T>& w, const Tensor<T>& g, Tensor<T>* buf, index_t b, index_t e) const;
  void adam(Tensor<T>& w, const Tensor<T>& g, Tensor<T>& m, Tensor<T>& v, index_t b,
            index_t e) const;

  OptimConfig cfg_;
  std::vector<std::pair<std::string, std::vector<Tensor<T>>>> slots_;
  std::vector<std::string> names_;
  std::int64_t steps_ = 0;
};

extern template class Optimizer<float>;
extern template class Optimizer<double>;

}  // namespace tapegrad::train
