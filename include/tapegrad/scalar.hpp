// The three precisions tapegrad computes in, and the few traits generic code needs.
//
//   float    unit roundoff u = 2^-24
//   double   unit roundoff u = 2^-53
//   f50      boost::multiprecision::cpp_bin_float_50: 50 decimal digits (168-bit mantissa),
//            u = 2^-167 ~ 5e-51, header-only. Used as the reference precision.
//
// Generic kernels call math through argument-dependent lookup (`using std::exp; exp(x)`) so that
// f50 and Var<T> find their own overloads.
#pragma once

#include <boost/multiprecision/cpp_bin_float.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

namespace tapegrad {

using f50 = boost::multiprecision::cpp_bin_float_50;

template <class T>
struct ScalarTraits;

template <>
struct ScalarTraits<float> {
  static constexpr const char* name = "float";
  static double unit_roundoff() { return std::ldexp(1.0, -24); }
};
template <>
struct ScalarTraits<double> {
  static constexpr const char* name = "double";
  static double unit_roundoff() { return std::ldexp(1.0, -53); }
};
template <>
struct ScalarTraits<f50> {
  static constexpr const char* name = "f50";
  static double unit_roundoff() {
    return std::ldexp(1.0, 1 - std::numeric_limits<f50>::digits);
  }
};

// Conversion between the precisions (and to double for reports). Plain scalars only; Var<T>
// provides its own value_of().
template <class To, class From>
To scalar_cast(const From& x) {
  if constexpr (std::is_same_v<To, From>) {
    return x;
  } else {
    return static_cast<To>(x);
  }
}

// v as the accumulator type Acc of a reference kernel's element function: v itself (no copy)
// when the types agree, else the conversion Acc(v) -- exact for the one mixed use, double
// tensors summed in f50 by the exact engine's fallback (kernels/exact.hpp).
template <class Acc, class T>
decltype(auto) to_acc(const T& v) {
  if constexpr (std::is_same_v<Acc, T>) {
    return (v);  // const T&
  } else {
    return static_cast<Acc>(v);
  }
}

// The plain value of a scalar (identity here; Var<T> overloads it in var/var.hpp).
template <class T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
T value_of(T x) {
  return x;
}
inline const f50& value_of(const f50& x) { return x; }

inline bool is_finite(float x) { return std::isfinite(x); }
inline bool is_finite(double x) { return std::isfinite(x); }
inline bool is_finite(const f50& x) { return boost::multiprecision::isfinite(x); }

}  // namespace tapegrad
