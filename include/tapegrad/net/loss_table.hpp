// The table of losses (the last line of a spec, `loss mse`), read like the layer table
// (net/layer_table.hpp): the parser, the op tape, the hand-written layers, the reference
// forward, the four-way tolerance, random problems and training metrics all go through an
// entry here, none names a loss.
//
// `count` is the divisor of the loss's mean (kernels/loss_ref.hpp): by default the count of
// the batch at hand (count_of), and for a batch split into shards, that of the whole batch.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include "tapegrad/errors.hpp"
#include "tapegrad/kernels/activation_ref.hpp"
#include "tapegrad/kernels/loss_ref.hpp"
#include "tapegrad/layers/layers.hpp"
#include "tapegrad/net/visit.hpp"
#include "tapegrad/ops/ops.hpp"
#include "tapegrad/random.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tape/tape.hpp"

namespace tapegrad {

using layers::Targets;

// The class a row of logits predicts: its largest entry, the first one on ties.
template <class T>
index_t argmax_row(const Tensor<T>& z, index_t n) {
  index_t best = 0;
  for (index_t c = 1; c < z.size(1); ++c)
    if (z(n, c) > z(n, best)) best = c;
  return best;
}

// loss = sum_i (out_i - t_i)^2 / count, over every element (count: the elements)
struct MseLoss {
  static constexpr std::string_view name = "mse";
  static constexpr std::string_view doc = "mean squared error; targets of the output's shape";

  static void check_output(const Shape&) {}
  static index_t count_of(const Shape& out) { return out.numel(); }

  template <class T>
  static void check_targets(const Shape& out, const Targets<T>& t) {
    check_mse_loss(out, t.values.shape());
  }

  template <class T>
  static TapeTensor<T> record(const TapeTensor<T>& out, const Targets<T>& t, index_t count) {
    return ops::mse_loss(out, out.tape().view(t.values, false), count);
  }
  template <class T>
  static T reference(const Tensor<T>& out, const Targets<T>& t, index_t count) {
    check_mse_loss(out.shape(), t.values.shape());
    return ref::mse_loss_forward(out, t.values, count)[0];
  }
  template <class T>
  static std::unique_ptr<layers::LossLayer<T>> hand_written(index_t count) {
    return std::make_unique<layers::MSELoss<T>>(count);
  }

  // The magnitude seed of the four-way tolerance: 2 (|A_out| + |t|) / count.
  static Tensor<f50> magnitude_seed(const Tensor<f50>&, const Tensor<f50>& out_abs,
                                    const Targets<f50>& t, index_t count) {
    Tensor<f50> d(out_abs.shape());
    for (index_t i = 0; i < d.numel(); ++i)
      d[i] = 2 * (abs(out_abs[i]) + abs(t.values[i])) / f50(count);
    return d;
  }
  // the mean over every element
  static index_t reduction_length(const Shape& out) { return out.numel() + 2; }

  // targets ~ U[0, 1)
  static void random_targets(Rng& rng, const Shape& out, Targets<double>& t) {
    t.values = Tensor<double>(out);
    for (double& e : t.values) e = rng.uniform(0, 1);
  }

  // Samples predicted right: every output element within 0.5 of its target (0/1 targets:
  // the output rounds to the target).
  template <class T>
  static index_t correct(const Tensor<T>& out, const Targets<T>& t) {
    const index_t n = out.size(0), per = out.numel() / n;
    index_t ok = 0;
    for (index_t i = 0; i < n; ++i) {
      bool all = true;
      for (index_t j = 0; j < per; ++j) {
        const T d = out[i * per + j] - t.values[i * per + j];
        all = all && d < T(0.5) && d > T(-0.5);
      }
      ok += all ? 1 : 0;
    }
    return ok;
  }
};

// loss = sum_n -log softmax(out_n)[t_n] / count (count: the samples)
struct CrossEntropyLoss {
  static constexpr std::string_view name = "cross_entropy";
  static constexpr std::string_view doc = "softmax cross-entropy; one class label per sample";

  static void check_output(const Shape& out) {
    check_arg(out.rank() == 2, "cross_entropy", "the network output must be 2-d (N,classes), got ",
              out, " (add 'flatten' / 'linear' before it)");
  }
  static index_t count_of(const Shape& out) { return out[0]; }

  template <class T>
  static void check_targets(const Shape& out, const Targets<T>& t) {
    check_cross_entropy(out, t.labels);
  }

  template <class T>
  static TapeTensor<T> record(const TapeTensor<T>& out, const Targets<T>& t, index_t count) {
    return ops::cross_entropy(out, t.labels, count);
  }
  template <class T>
  static T reference(const Tensor<T>& out, const Targets<T>& t, index_t count) {
    check_cross_entropy(out.shape(), t.labels);
    return ref::cross_entropy_forward(out, t.labels, count)[0];
  }
  template <class T>
  static std::unique_ptr<layers::LossLayer<T>> hand_written(index_t count) {
    return std::make_unique<layers::SoftmaxCrossEntropy<T>>(count);
  }

  // (p + onehot)(1 + max|A_out|) / count
  static Tensor<f50> magnitude_seed(const Tensor<f50>& out, const Tensor<f50>& out_abs,
                                    const Targets<f50>& t, index_t count) {
    const Tensor<f50> p = ref::softmax_forward(out);
    f50 zmax(0);
    for (const f50& z : out_abs)
      if (abs(z) > zmax) zmax = abs(z);
    Tensor<f50> d(out.shape());
    for (index_t n = 0; n < out.size(0); ++n)
      for (index_t c = 0; c < out.size(1); ++c)
        d(n, c) = (p(n, c) + (c == t.labels[static_cast<std::size_t>(n)] ? 1 : 0)) * (1 + zmax) /
                  f50(count);
    return d;
  }
  // log-sum-exp over the classes, mean over the batch
  static index_t reduction_length(const Shape& out) { return 2 * out[1] + out[0] + 8; }

  // labels ~ U{0..C-1}
  static void random_targets(Rng& rng, const Shape& out, Targets<double>& t) {
    for (index_t i = 0; i < out[0]; ++i) {
      auto c = static_cast<index_t>(rng.uniform(0, 1) * static_cast<double>(out[1]));
      t.labels.push_back(c < out[1] ? c : out[1] - 1);
    }
  }

  // Samples whose largest logit (the first, on ties) is the label.
  template <class T>
  static index_t correct(const Tensor<T>& out, const Targets<T>& t) {
    index_t ok = 0;
    for (index_t n = 0; n < out.size(0); ++n)
      ok += argmax_row(out, n) == t.labels[static_cast<std::size_t>(n)] ? 1 : 0;
    return ok;
  }
};

using LossKinds = std::tuple<MseLoss, CrossEntropyLoss>;
inline constexpr int num_loss_kinds = static_cast<int>(std::tuple_size_v<LossKinds>);

// Calls f(Loss{}) with the entry of `kind` (an index into LossKinds).
template <class F>
decltype(auto) visit_loss_kind(int kind, F&& f) {
  return visit_kind<LossKinds>(kind, std::forward<F>(f));
}

inline int find_loss_kind(std::string_view name) { return find_kind<LossKinds>(name); }

inline std::string_view loss_kind_name(int kind) {
  return visit_loss_kind(kind, [](auto k) { return decltype(k)::name; });
}

// "mse or cross_entropy"
inline std::string loss_kind_list() {
  std::string s;
  for (int k = 0; k < num_loss_kinds; ++k) {
    if (k) s += k + 1 == num_loss_kinds ? " or " : ", ";
    s += loss_kind_name(k);
  }
  return s;
}

}  // namespace tapegrad
