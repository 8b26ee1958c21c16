// Helpers shared by the reference-kernel tests (ref_conv2d_test.cpp, ref_ops_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad::test {

// A tensor of shape s holding v (each value converted to T).
template <class T>
Tensor<T> make(Shape s, const std::vector<double>& v) {
  std::vector<T> d;
  for (double e : v) d.push_back(T(e));
  return Tensor<T>(std::move(s), std::move(d));
}

// x[i] = first + i (row-major), as T.
template <class T>
Tensor<T> iota(Shape s, double first = 1) {
  Tensor<T> t(std::move(s));
  for (index_t i = 0; i < t.numel(); ++i) t[i] = T(first + double(i));
  return t;
}

// Uniform reals in [-scale, scale] (drawn as doubles, so exact in f50).
template <class T>
Tensor<T> random_reals(Shape s, unsigned seed, double scale = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-scale, scale);
  Tensor<T> t(std::move(s));
  for (auto& v : t) v = T(dist(rng));
  return t;
}

// got has the given shape and equals want element for element, exactly.
template <class T>
void expect_exact(const Tensor<T>& got, const Shape& shape, const std::vector<double>& want) {
  ASSERT_EQ(got.shape(), shape);
  ASSERT_EQ(got.numel(), static_cast<index_t>(want.size()));
  for (index_t i = 0; i < got.numel(); ++i)
    EXPECT_TRUE(got[i] == T(want[static_cast<std::size_t>(i)]))
        << "element " << i << ": got " << static_cast<double>(got[i]) << ", want "
        << want[static_cast<std::size_t>(i)];
}

template <class T>
T dot(const Tensor<T>& a, const Tensor<T>& b) {
  T acc(0);
  for (index_t i = 0; i < a.numel(); ++i) acc += a[i] * b[i];
  return acc;
}

template <class T>
Tensor<T> abs_of(const Tensor<T>& t) {
  return map(t, [](const T& v) { return v < T(0) ? T(-v) : v; });
}

}  // namespace tapegrad::test
