// The element-wise loops over a whole parameter set (the combination's sums in dist/, the
// optimizer's updates in train/) as ONE parallel loop over the set's concatenated elements,
// instead of one loop (and one parallel region) per tensor: lenet5's ten tensors hold 61,706
// elements, only fc1.w's 48,000 of them enough for a region of their own, and a step paid a
// region per large tensor per pass while the small ones stayed on one thread.
//
// Thread t of a team of T takes elements [t*N/T, (t+1)*N/T) of the concatenation, cut into
// pieces that each lie within one tensor, and calls f(tensor, begin, end) for each piece, in
// tensor order. An element's arithmetic never depends on which thread runs it or on how its
// tensor was cut, so the results are the same bits for any number of threads. Sets under
// parallel_min elements (where a region costs more than it saves) run on the calling thread,
// as one piece per tensor. f must not throw (it runs inside an OpenMP region).
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "tapegrad/net/params.hpp"

namespace tapegrad {

using ParamRangeFn = std::function<void(std::size_t tensor, index_t begin, index_t end)>;

// sizes[i]: the elements of tensor i (src/net/param_ranges.cpp).
void for_each_param_range(const std::vector<index_t>& sizes, const ParamRangeFn& f);

template <class T>
void for_each_param_range(const ParamSet<T>& params, const ParamRangeFn& f) {
  std::vector<index_t> sizes;
  sizes.reserve(params.size());
  for (const auto& p : params) sizes.push_back(p.value.numel());
  for_each_param_range(sizes, f);
}

}  // namespace tapegrad
