// Shape: the sizes of a row-major tensor, overflow-checked once at construction.
//
// Dimension letters used across tapegrad (one legend, here):
//   n batch, c input channels, h w input height/width,
//   k output channels (filters), r s kernel height/width, p q output height/width.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tapegrad {

using index_t = std::int64_t;

// a * b for sizes, throwing std::length_error instead of overflowing.
inline index_t checked_mul(index_t a, index_t b, const char* what = "size") {
  if (a < 0 || b < 0) throw std::invalid_argument(std::string(what) + ": negative size");
  if (a != 0 && b > std::numeric_limits<index_t>::max() / a)
    throw std::length_error(std::string(what) + ": " + std::to_string(a) + " * " +
                            std::to_string(b) + " overflows a 64-bit size");
  return a * b;
}

// a + b for sizes, throwing std::length_error instead of overflowing.
inline index_t checked_add(index_t a, index_t b, const char* what = "size") {
  if (a < 0 || b < 0) throw std::invalid_argument(std::string(what) + ": negative size");
  if (b > std::numeric_limits<index_t>::max() - a)
    throw std::length_error(std::string(what) + ": " + std::to_string(a) + " + " +
                            std::to_string(b) + " overflows a 64-bit size");
  return a + b;
}

class Shape {
 public:
  // Largest element count a tensor may hold: keeps numel * sizeof(T) (T up to the 50-digit
  // type, 40 bytes here) far from overflow, and far above any real use.
  static constexpr index_t max_numel = index_t{1} << 48;

  Shape() : numel_(1) {}  // 0-d: one element (a scalar, e.g. a loss)
  Shape(std::initializer_list<index_t> dims) : dims_(dims) { numel_ = compute_numel(dims_); }
  explicit Shape(std::vector<index_t> dims) : dims_(std::move(dims)) {
    numel_ = compute_numel(dims_);
  }

  index_t rank() const { return static_cast<index_t>(dims_.size()); }
  index_t numel() const { return numel_; }
  index_t operator[](index_t i) const { return dims_.at(static_cast<std::size_t>(i)); }
  const std::vector<index_t>& dims() const { return dims_; }

  bool operator==(const Shape& o) const { return dims_ == o.dims_; }
  bool operator!=(const Shape& o) const { return !(*this == o); }

  // "[2,3,8,8]"; "[]" for 0-d.
  std::string str() const {
    std::string s = "[";
    for (std::size_t i = 0; i < dims_.size(); ++i) {
      if (i) s += ',';
      s += std::to_string(dims_[i]);
    }
    return s + "]";
  }

  // str() on a stream: lets a message take the Shape itself (check_arg(..., "got ", x)), so
  // that the text is built only when the check fails, not on every call of a hot path.
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

 private:
  static index_t compute_numel(const std::vector<index_t>& dims) {
    index_t n = 1;
    for (index_t d : dims) {
      if (d < 0)
        throw std::invalid_argument("shape: dimension " + std::to_string(d) +
                                    " is negative");
      n = checked_mul(n, d, "shape");
    }
    if (n > max_numel)
      throw std::length_error("shape: " + std::to_string(n) + " elements exceeds the limit of " +
                              std::to_string(max_numel));
    return n;
  }

  std::vector<index_t> dims_;
  index_t numel_;
};

// The multi-index of flat (row-major) element `flat` of `shape`, as "[1,0,2]" ("[]" for 0-d).
// Strings are appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict, GCC bug
// 105651) on `"[" + std::to_string(...)` chains.
inline std::string index_str(const Shape& shape, index_t flat) {
  std::vector<index_t> idx(static_cast<std::size_t>(shape.rank()));
  for (index_t d = shape.rank() - 1; d >= 0; --d) {
    const index_t n = shape[d];
    idx[static_cast<std::size_t>(d)] = n ? flat % n : 0;
    flat = n ? flat / n : 0;
  }
  std::string s = "[";
  for (std::size_t i = 0; i < idx.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(idx[i]);
  }
  s += ']';
  return s;
}

}  // namespace tapegrad
