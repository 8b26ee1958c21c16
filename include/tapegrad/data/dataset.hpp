// A data set in memory, and the batches cut from it.
//
// Inputs are either 8-bit pixels, turned into numbers per batch as
//   x = (pixel * scale - mean) / stddev          (in the training precision T)
// or real values already (the synthetic set). Targets are class labels (for cross_entropy)
// or real values with a per-sample shape (for mse).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/layers/layers.hpp"
#include "tapegrad/shape.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::data {

struct Dataset {
  std::string name;             // "fashion-mnist train", "synthetic train"
  std::vector<index_t> sample;  // per-sample input dims, e.g. {1, 28, 28}
  index_t size = 0;             // samples

  std::vector<std::uint8_t> pixels;  // size * prod(sample), or empty when `values` is used
  double scale = 1, mean = 0, stddev = 1;
  std::vector<double> values;        // size * prod(sample) real inputs

  std::vector<index_t> labels;        // classification: one per sample, in [0, classes)
  index_t classes = 0;
  std::vector<std::string> class_names;
  std::vector<index_t> target_sample;  // regression: per-sample target dims
  std::vector<double> targets;         // size * prod(target_sample)

  index_t sample_numel() const {
    index_t m = 1;
    for (index_t d : sample) m *= d;
    return m;
  }
  index_t target_numel() const {
    index_t m = 1;
    for (index_t d : target_sample) m *= d;
    return m;
  }
  bool classification() const { return classes > 0; }
  // The shape of a batch of n inputs: (n, sample...).
  Shape batch_shape(index_t n) const {
    std::vector<index_t> d{n};
    d.insert(d.end(), sample.begin(), sample.end());
    return Shape(d);
  }
  // The first n samples only (n <= size): for quick runs and tests.
  void truncate(index_t n);
};

// x and targets of the samples `idx`, in that order; x is reshaped (reusing its buffer) to
// (idx.size(), sample...).
template <class T>
void fill_batch(const Dataset& d, std::span<const index_t> idx, Tensor<T>& x,
                layers::Targets<T>& t) {
  const auto n = static_cast<index_t>(idx.size());
  const index_t m = d.sample_numel();
  const Shape shape = d.batch_shape(n);
  if (x.shape() != shape) x = Tensor<T>(shape);
  T* out = x.data();
  if (!d.pixels.empty()) {
    const T scale(d.scale), mean(d.mean), stddev(d.stddev);
    for (index_t i = 0; i < n; ++i) {
      const std::uint8_t* px = d.pixels.data() + idx[static_cast<std::size_t>(i)] * m;
      // The samples lie at random places in a set far larger than the caches: the lines of
      // the sample two ahead are requested now (a lenet5 step's batch fill, 64 of 60,000
      // 784-byte images, took 35-40 us waiting on memory, 12-20 us with this).
      if (i + 2 < n) {
        const std::uint8_t* nx = d.pixels.data() + idx[static_cast<std::size_t>(i + 2)] * m;
        for (index_t j = 0; j < m; j += 64) __builtin_prefetch(nx + j);
      }
      for (index_t j = 0; j < m; ++j) out[i * m + j] = (T(px[j]) * scale - mean) / stddev;
    }
  } else {
    for (index_t i = 0; i < n; ++i) {
      const double* v = d.values.data() + idx[static_cast<std::size_t>(i)] * m;
      for (index_t j = 0; j < m; ++j) out[i * m + j] = static_cast<T>(v[j]);
    }
  }
  t.labels.clear();
  if (d.classification()) {
    for (index_t i : idx) t.labels.push_back(d.labels[static_cast<std::size_t>(i)]);
  } else {
    const index_t k = d.target_numel();
    std::vector<index_t> dims{n};
    dims.insert(dims.end(), d.target_sample.begin(), d.target_sample.end());
    if (t.values.shape() != Shape(dims)) t.values = Tensor<T>(Shape(dims));
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < k; ++j)
        t.values[i * k + j] = static_cast<T>(d.targets[static_cast<std::size_t>(idx[static_cast<std::size_t>(i)] * k + j)]);
  }
}

// A set of n random samples shaped like a model's data, for benchmarks and tests that need no
// real data: with classes > 0, 8-bit pixels (normalised as (p/255 - 0.5)/0.25) and labels in
// [0, classes); otherwise real inputs and targets ~ U[0, 1) with the given per-sample shapes.
Dataset make_random(const std::vector<index_t>& sample, index_t n, index_t classes,
                    const std::vector<index_t>& target_sample, std::uint64_t seed);

}  // namespace tapegrad::data
