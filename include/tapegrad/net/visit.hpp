// visit_kind<Kinds>(i, f): calls f(K{}) with the i-th type of the tuple Kinds, through a table
// of function pointers built at compile time (the layer and loss tables are tuples of types).
#pragma once

#include <cassert>
#include <cstddef>
#include <tuple>
#include <utility>

namespace tapegrad {

namespace visit_detail {
template <class Kinds, class F, std::size_t... I>
decltype(auto) visit(int kind, F& f, std::index_sequence<I...>) {
  using R = decltype(f(std::tuple_element_t<0, Kinds>{}));
  using Fn = R (*)(F&);
  static constexpr Fn table[] = {
      [](F& g) -> R { return g(std::tuple_element_t<I, Kinds>{}); }...};
  return table[kind](f);
}
}  // namespace visit_detail

// f must return the same type for every kind.
template <class Kinds, class F>
decltype(auto) visit_kind(int kind, F&& f) {
  constexpr std::size_t n = std::tuple_size_v<Kinds>;
  assert(kind >= 0 && static_cast<std::size_t>(kind) < n);
  return visit_detail::visit<Kinds>(kind, f, std::make_index_sequence<n>{});
}

// The index of the kind whose static `name` equals `name`, or -1.
template <class Kinds, class Name>
int find_kind(const Name& name) {
  constexpr int n = static_cast<int>(std::tuple_size_v<Kinds>);
  for (int k = 0; k < n; ++k)
    if (visit_kind<Kinds>(k, [](auto kind) { return decltype(kind)::name; }) == name) return k;
  return -1;
}

}  // namespace tapegrad
