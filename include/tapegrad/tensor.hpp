// Tensor<T>: an N-d, row-major, contiguous array owning its elements.
// T is float, double, f50 or Var<U>; nothing here depends on which.
#pragma once

#include <algorithm>
#include <cassert>
#include <utility>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/shape.hpp"

namespace tapegrad {

template <class T>
class Tensor {
 public:
  using value_type = T;

  Tensor() : data_(1, T(0)) {}  // 0-d zero
  explicit Tensor(Shape shape, const T& fill = T(0))
      : shape_(std::move(shape)), data_(static_cast<std::size_t>(shape_.numel()), fill) {}
  Tensor(Shape shape, std::vector<T> data) : shape_(std::move(shape)), data_(std::move(data)) {
    check_arg(static_cast<index_t>(data_.size()) == shape_.numel(), "tensor", "shape ",
              shape_, " needs ", shape_.numel(), " elements, got ", data_.size());
  }

  // 0-d tensor holding one value.
  static Tensor scalar(const T& v) { return Tensor(Shape{}, std::vector<T>{v}); }

  const Shape& shape() const { return shape_; }
  index_t rank() const { return shape_.rank(); }
  index_t numel() const { return shape_.numel(); }
  index_t size(index_t d) const { return shape_[d]; }

  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  std::vector<T>& vec() { return data_; }
  const std::vector<T>& vec() const { return data_; }
  auto begin() { return data_.begin(); }
  auto end() { return data_.end(); }
  auto begin() const { return data_.begin(); }
  auto end() const { return data_.end(); }

  // Flat (row-major) element access.
  T& operator[](index_t i) {
    assert(i >= 0 && i < numel());
    return data_[static_cast<std::size_t>(i)];
  }
  const T& operator[](index_t i) const {
    assert(i >= 0 && i < numel());
    return data_[static_cast<std::size_t>(i)];
  }

  // Multi-index access; the number of indices must equal the rank (asserted).
  template <class... I>
  T& operator()(I... idx) {
    return data_[static_cast<std::size_t>(offset(idx...))];
  }
  template <class... I>
  const T& operator()(I... idx) const {
    return data_[static_cast<std::size_t>(offset(idx...))];
  }

  void fill(const T& v) { std::fill(data_.begin(), data_.end(), v); }

  // Same elements, another shape of the same element count.
  Tensor reshaped(Shape s) const {
    check_arg(s.numel() == numel(), "reshape", "cannot view ", shape_, " as ", s);
    return Tensor(std::move(s), data_);
  }

  // Element-wise conversion to another precision (each element rounded once).
  template <class U>
  Tensor<U> cast() const {
    std::vector<U> out;
    out.reserve(data_.size());
    for (const T& v : data_) out.push_back(scalar_cast<U>(v));
    return Tensor<U>(shape_, std::move(out));
  }

 private:
  template <class... I>
  index_t offset(I... idx) const {
    static_assert((std::is_integral_v<I> && ...), "tensor indices must be integers");
    assert(static_cast<index_t>(sizeof...(I)) == rank());
    const index_t ix[] = {static_cast<index_t>(idx)...};
    index_t off = 0;
    for (std::size_t d = 0; d < sizeof...(I); ++d) {
      assert(ix[d] >= 0 && ix[d] < shape_[static_cast<index_t>(d)]);
      off = off * shape_[static_cast<index_t>(d)] + ix[d];
    }
    return off;
  }

  Shape shape_;
  std::vector<T> data_;
};

// Apply f to each element, producing a tensor of f's result type.
template <class T, class F>
auto map(const Tensor<T>& x, F f) {
  using U = decltype(f(x[0]));
  std::vector<U> out;
  out.reserve(static_cast<std::size_t>(x.numel()));
  for (const T& v : x) out.push_back(f(v));
  return Tensor<U>(x.shape(), std::move(out));
}

}  // namespace tapegrad
