// The parameter set: a network's named tensors (conv1.w, conv1.b, ...) and their gradients,
// owned here, outside any tape. The op tape reads the values without copying
// (net/network.hpp: record_params makes view leaves), backward moves each gradient into the
// set (take_grads), the optimizer updates the values in place (train/), checkpoints save and
// load the set by name (train/checkpoint), and the gradient combination adds shard gradients
// into it (dist/).
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/random.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

template <class T>
class ParamSet {
 public:
  struct Param {
    std::string name;
    Tensor<T> value;
    Tensor<T> grad;  // same shape as value; what the last backward (or combination) left
  };

  ParamSet() = default;

  // Appends a parameter (gradient zero). Names are unique.
  void add(std::string name, Tensor<T> value) {
    check_arg(!find(name), "ParamSet", "parameter '", name, "' added twice");
    Tensor<T> grad(value.shape());
    params_.push_back({std::move(name), std::move(value), std::move(grad)});
  }

  std::size_t size() const { return params_.size(); }
  Param& operator[](std::size_t i) { return params_[i]; }
  const Param& operator[](std::size_t i) const { return params_[i]; }
  auto begin() { return params_.begin(); }
  auto end() { return params_.end(); }
  auto begin() const { return params_.begin(); }
  auto end() const { return params_.end(); }

  std::optional<std::size_t> find(std::string_view name) const {
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (params_[i].name == name) return i;
    return std::nullopt;
  }

  // Scalars in all the values.
  index_t numel() const {
    index_t n = 0;
    for (const Param& p : params_) n += p.value.numel();
    return n;
  }

  void zero_grads() {
    for (Param& p : params_) p.grad.fill(T(0));
  }

  // The values, in order (copies: for checks that take plain tensors).
  std::vector<Tensor<T>> values() const {
    std::vector<Tensor<T>> v;
    for (const Param& p : params_) v.push_back(p.value);
    return v;
  }

  // Every value rounded once to U; gradients zero.
  template <class U>
  ParamSet<U> cast() const {
    ParamSet<U> out;
    for (const Param& p : params_) out.add(p.name, p.value.template cast<U>());
    return out;
  }

 private:
  std::vector<Param> params_;
};

// The set of `spec`'s parameters with the given values (spec order), shapes checked.
template <class T>
ParamSet<T> make_params(const NetSpec& spec, std::vector<Tensor<T>> values) {
  check_arg(values.size() == spec.params.size(), "make_params", "got ", values.size(),
            " parameter tensors, expected ", spec.params.size());
  ParamSet<T> set;
  for (std::size_t i = 0; i < values.size(); ++i) {
    check_shape("make_params", spec.params[i].name, values[i].shape(), spec.params[i].shape);
    set.add(spec.params[i].name, std::move(values[i]));
  }
  return set;
}

// Initializations, each drawing every tensor in parameter order, row-major, from one Rng:
//   pytorch  PyTorch's default for Conv2d and Linear (kaiming_uniform_ with a = sqrt(5), and
//            its bias rule): weights and biases ~ U[-1/sqrt(fan_in), 1/sqrt(fan_in))
//   he       He et al. 2015 for ReLU networks (PyTorch's kaiming_uniform_(nonlinearity='relu')):
//            weights ~ U[-sqrt(6/fan_in), sqrt(6/fan_in)), biases 0
enum class Init { pytorch, he };

inline Init parse_init(std::string_view name) {
  if (name == "pytorch") return Init::pytorch;
  if (name == "he") return Init::he;
  fail_arg("init", "expected pytorch or he, got ", quote(name));
}

template <class T>
ParamSet<T> init_params(const NetSpec& spec, Rng& rng, Init scheme = Init::pytorch) {
  std::vector<Tensor<T>> values;
  for (const ParamSpec& p : spec.params) {
    const double fan = static_cast<double>(p.fan_in);
    if (scheme == Init::he && p.bias) {
      values.emplace_back(p.shape);
      continue;
    }
    const double bound = scheme == Init::he ? std::sqrt(6.0 / fan) : 1.0 / std::sqrt(fan);
    values.push_back(uniform_tensor<T>(p.shape, rng, -bound, bound));
  }
  return make_params(spec, std::move(values));
}

}  // namespace tapegrad
