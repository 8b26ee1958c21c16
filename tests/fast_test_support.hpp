// Helpers shared by the fast-kernel tests (fast_kernels_test.cpp, fast_activation_test.cpp).
#pragma once

#include <omp.h>

#include <cstring>

#include "tapegrad/tensor.hpp"

namespace tapegrad::test {

// Same shape and the same bytes (so +0 and -0 differ, and NaN equals the same NaN).
template <class T>
bool same_bits(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), sizeof(T) * static_cast<std::size_t>(a.numel())) == 0;
}

// Restores OpenMP's thread count when a test returns or fails.
struct ThreadsGuard {
  int saved = omp_get_max_threads();
  ~ThreadsGuard() { omp_set_num_threads(saved); }
};

}  // namespace tapegrad::test
