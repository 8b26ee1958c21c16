// Data sets: see include/tapegrad/data/dataset.hpp, fashion_mnist.hpp and synthetic.hpp.
#include "tapegrad/data/dataset.hpp"

#include <cmath>

#include "tapegrad/data/fashion_mnist.hpp"
#include "tapegrad/data/synthetic.hpp"
#include "tapegrad/io/idx.hpp"
#include "tapegrad/random.hpp"

namespace tapegrad::data {

void Dataset::truncate(index_t n) {
  check_arg(n > 0 && n <= size, "data", "cannot keep ", n, " samples of ", name, " (it has ",
            size, ")");
  const auto m = static_cast<std::size_t>(sample_numel());
  const auto k = static_cast<std::size_t>(n);
  if (!pixels.empty()) pixels.resize(k * m);
  if (!values.empty()) values.resize(k * m);
  if (!labels.empty()) labels.resize(k);
  if (!targets.empty()) targets.resize(k * static_cast<std::size_t>(target_numel()));
  size = n;
}

Dataset load_fashion_mnist(const std::filesystem::path& dir, std::string_view split) {
  check_arg(split == "train" || split == "test", "fashion-mnist", "split must be train or test");
  const std::string stem = split == "train" ? "train" : "t10k";
  const auto images_path = dir / (stem + "-images-idx3-ubyte.gz");
  const auto labels_path = dir / (stem + "-labels-idx1-ubyte.gz");
  const std::string images_name = quote(images_path.string());
  const std::string labels_name = quote(labels_path.string());
  io::IdxArray images = io::read_idx(images_path);
  if (images.dims.size() != 3 || images.dims[1] != 28 || images.dims[2] != 28) {
    std::string got;
    for (std::size_t i = 0; i < images.dims.size(); ++i)
      got += (i ? "x" : "") + std::to_string(images.dims[i]);
    fail_arg(images_name, "expected images of N x 28 x 28, the file holds ", got);
  }
  io::IdxArray labels = io::read_idx(labels_path);
  if (labels.dims.size() != 1) fail_arg(labels_name, "expected 1-d labels, the file holds ",
                                        labels.dims.size(), " dimensions");
  if (labels.dims[0] != images.dims[0])
    fail_arg(labels_name, "holds ", labels.dims[0], " labels but ", images_name, " holds ",
             images.dims[0], " images");
  Dataset d;
  d.name = "fashion-mnist " + std::string(split);
  d.sample = {1, 28, 28};
  d.size = images.dims[0];
  d.pixels = std::move(images.data);
  d.scale = 1.0 / 255.0;
  d.mean = fashion_mnist_mean;
  d.stddev = fashion_mnist_std;
  d.classes = 10;
  d.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  d.labels.reserve(labels.data.size());
  for (std::size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= 10)
      throw std::out_of_range(labels_name + ": label " + std::to_string(i) + " is " +
                              std::to_string(labels.data[i]) + ", expected a class in [0, 10)");
    d.labels.push_back(labels.data[i]);
  }
  return d;
}

Dataset make_synthetic(index_t count, std::uint64_t seed, std::string name) {
  check_positive("synthetic", "count", count);
  Dataset d;
  d.name = std::move(name);
  d.sample = {1, 3, 3};
  d.size = count;
  d.target_sample = {1};
  Rng rng(seed);
  for (index_t i = 0; i < count; ++i) {
    double px[9], diff = 0;
    do {
      for (double& p : px) p = rng.uniform(0, 1);
      diff = (px[0] + px[3] + px[6] - px[2] - px[5] - px[8]) / 3;  // left mean - right mean
    } while (std::abs(diff) < 0.2);
    d.values.insert(d.values.end(), px, px + 9);
    d.targets.push_back(diff > 0 ? 1.0 : 0.0);
  }
  return d;
}

Dataset make_random(const std::vector<index_t>& sample, index_t n, index_t classes,
                    const std::vector<index_t>& target_sample, std::uint64_t seed) {
  check_positive("random data", "samples", n);
  Dataset d;
  d.name = "random";
  d.sample = sample;
  d.size = n;
  Rng rng(seed);
  const index_t m = d.sample_numel();
  if (classes > 0) {
    d.classes = classes;
    d.scale = 1.0 / 255, d.mean = 0.5, d.stddev = 0.25;
    for (index_t i = 0; i < n * m; ++i) d.pixels.push_back(static_cast<std::uint8_t>(rng.below(256)));
    for (index_t i = 0; i < n; ++i) d.labels.push_back(static_cast<index_t>(rng.below(static_cast<std::uint64_t>(classes))));
    for (index_t c = 0; c < classes; ++c) d.class_names.push_back(std::to_string(c));
  } else {
    d.target_sample = target_sample;
    for (index_t i = 0; i < n * m; ++i) d.values.push_back(rng.uniform(0, 1));
    for (index_t i = 0; i < n * d.target_numel(); ++i) d.targets.push_back(rng.uniform(0, 1));
  }
  return d;
}

}  // namespace tapegrad::data
