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

// Same shape, and element by element the same bits, except that any NaN matches any NaN. For
// comparing two compilations of an operation (a fast kernel against the reference): which NaN
// comes out of an operation on two NaNs (or on a NaN and a default NaN such as inf - inf) is the
// first operand's on x86, and compilers may swap the operands of + and * (IEEE 754 leaves the
// payload unspecified), so NaN bits differ between -O1 and -O3 or GCC and clang for the same
// source. Everything else, signed zeros included, must be the same bits.
template <class T>
bool same_values(const Tensor<T>& a, const Tensor<T>& b) {
  if (a.shape() != b.shape()) return false;
  for (index_t i = 0; i < a.numel(); ++i) {
    const T x = a.data()[i], y = b.data()[i];
    if (x != x && y != y) continue;  // both NaN
    if (std::memcmp(&x, &y, sizeof(T)) != 0) return false;
  }
  return true;
}

// Restores OpenMP's thread count when a test returns or fails.
struct ThreadsGuard {
  int saved = omp_get_max_threads();
  ~ThreadsGuard() { omp_set_num_threads(saved); }
};

}  // namespace tapegrad::test
