// One parallel loop over a parameter set's elements; see include/tapegrad/net/param_ranges.hpp.
#include "tapegrad/net/param_ranges.hpp"

#include <omp.h>

#include <algorithm>

namespace tapegrad {

namespace {
// Below this many elements in the whole set the loop stays on the calling thread: a region
// costs a few us, lenet5's whole SGD update (61,706 elements) about 10 us on one thread.
constexpr index_t parallel_min = 16384;

// The pieces of the concatenated elements [lo, hi), in tensor order.
void run_span(const std::vector<index_t>& sizes, index_t lo, index_t hi, const ParamRangeFn& f) {
  index_t first = 0;  // concatenated index of tensor i's element 0
  for (std::size_t i = 0; i < sizes.size() && first < hi; first += sizes[i], ++i) {
    const index_t b = std::max(lo, first), e = std::min(hi, first + sizes[i]);
    if (b < e) f(i, b - first, e - first);
  }
}
}  // namespace

void for_each_param_range(const std::vector<index_t>& sizes, const ParamRangeFn& f) {
  index_t total = 0;
  for (const index_t n : sizes) total += n;
  if (total < parallel_min || omp_get_max_threads() == 1) {
    run_span(sizes, 0, total, f);
    return;
  }
#pragma omp parallel
  {
    const auto t = static_cast<index_t>(omp_get_thread_num());
    const auto n = static_cast<index_t>(omp_get_num_threads());
    run_span(sizes, total * t / n, total * (t + 1) / n, f);
  }
}

}  // namespace tapegrad
