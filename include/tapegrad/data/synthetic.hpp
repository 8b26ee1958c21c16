// The tutorial's experiment made concrete: a small deterministic set of 3x3 one-channel images
// with a rule a 3x3 convolution can learn.
//
//   The rule: an image is an edge with its bright side on the left (target 1) or on the right
//   (target 0): target = 1 iff mean(left column) > mean(right column).
//
// Every pixel is drawn uniformly from [0, 1) by the project's Rng; images whose two column
// means differ by less than 0.2 are drawn again, so the classes are separated by a margin and
// a sigmoid network can drive the squared error towards zero (the tutorial's "loss decreased
// ... near zero"). The set depends only on `seed` (the training set and the held-out test set
// use different seeds), never on the training run's --seed.
#pragma once

#include <cstdint>

#include "tapegrad/data/dataset.hpp"

namespace tapegrad::data {

inline constexpr index_t synthetic_train_size = 64;
inline constexpr index_t synthetic_test_size = 64;
inline constexpr std::uint64_t synthetic_train_seed = 2021;  // the tutorial's year
inline constexpr std::uint64_t synthetic_test_seed = 2022;

Dataset make_synthetic(index_t count, std::uint64_t seed, std::string name);

}  // namespace tapegrad::data
