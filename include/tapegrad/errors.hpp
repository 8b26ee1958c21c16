// The few helpers that build every validation message in one shape:
//   conv2d: w in-channels is 4, expected 3 = x channels / groups (x [2,3,8,8], w [16,4,3,3])
// Entry points (ops, layers, readers, CLI) validate; kernels only assert.
//   std::invalid_argument  shapes and configuration
//   std::out_of_range      indices and labels
//   std::domain_error      NaN / Inf
//   std::length_error      sizes that overflow
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "tapegrad/shape.hpp"

namespace tapegrad {

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
}  // namespace detail

// Throws std::invalid_argument("op: <parts...>") unless cond holds.
template <class... Parts>
void check_arg(bool cond, std::string_view op, const Parts&... parts) {
  if (!cond) throw std::invalid_argument(detail::concat(op, ": ", parts...));
}

template <class... Parts>
[[noreturn]] void fail_arg(std::string_view op, const Parts&... parts) {
  throw std::invalid_argument(detail::concat(op, ": ", parts...));
}

// "op: x must be 4-d (N,C,H,W), got [2,3]"
inline void check_rank(std::string_view op, std::string_view arg, const Shape& s, index_t rank,
                       std::string_view layout) {
  check_arg(s.rank() == rank, op, arg, " must be ", rank, "-d ", layout, ", got ", s.str());
}

// "op: b has shape [5], expected [4]"
inline void check_shape(std::string_view op, std::string_view arg, const Shape& got,
                        const Shape& expected) {
  check_arg(got == expected, op, arg, " has shape ", got.str(), ", expected ", expected.str());
}

// "op: stride must be positive, got 0"
inline void check_positive(std::string_view op, std::string_view what, index_t v) {
  check_arg(v > 0, op, what, " must be positive, got ", v);
}

inline void check_non_negative(std::string_view op, std::string_view what, index_t v) {
  check_arg(v >= 0, op, what, " must be non-negative, got ", v);
}

}  // namespace tapegrad
