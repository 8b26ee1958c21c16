// Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 60,000 training and 10,000 test images of
// 28x28 8-bit grey levels in 10 classes, as Debian's `dataset-fashion-mnist` installs them:
//   /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
//
// Inputs are scaled to [0, 1] (pixel / 255) and normalised with the training set's mean and
// standard deviation, fixed here (the values commonly used for Fashion-MNIST, computed over all
// 47,040,000 training pixels; the same for the test set, as it must be):
//   x = (pixel / 255 - 0.2860) / 0.3530
#pragma once

#include <filesystem>
#include <string_view>

#include "tapegrad/data/dataset.hpp"

namespace tapegrad::data {

inline constexpr double fashion_mnist_mean = 0.2860;
inline constexpr double fashion_mnist_std = 0.3530;
inline constexpr const char* fashion_mnist_default_dir = "/usr/share/datasets/fashion-mnist";

// split: "train" or "test" (the t10k files). Checks magic numbers, that images are N x 28 x 28,
// labels N entries in [0, 10), and that both files hold the same N; every problem is one line
// naming the file.
Dataset load_fashion_mnist(const std::filesystem::path& dir, std::string_view split);

}  // namespace tapegrad::data
