// The one search loop behind every oracle::search_<op> (oracle/search.hpp): an op hands over
// how to draw a geometry (inside a RapidCheck property), how to run its check on a geometry,
// and how to tag one for the case mix; run_search does the rest for every op alike:
//   random cases (RapidCheck: seed, case count, shrinking) | one replayed descriptor | a batch
//   file -> each case: the check, the callback's exceptions caught -> the result.
// Internal to src/oracle; not installed.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/oracle/search.hpp"

namespace tapegrad::oracle::search_driver {

// The RapidCheck size every choice is drawn at (its maximum, 100): uniform over the range.
inline constexpr int kFullSize = 100;

// What a throwing callback becomes on its way out of the check (the search catches it).
struct KernelThrew {
  std::string what;
};
// Call inside a catch (...) block: throws KernelThrew describing the current exception.
[[noreturn]] void rethrow_as_kernel_threw();

// Calls the user's callback, turning anything it throws into KernelThrew.
template <class F, class... A>
void guarded(const F& f, A&&... a) {
  try {
    f(std::forward<A>(a)...);
  } catch (...) {
    rethrow_as_kernel_threw();
  }
}

struct SearchOp {
  std::string op;         // "conv2d_forward"
  const char* dtype;      // "float32"
  bool exact_inputs;      // the op's check supports exact-input mode
  // Inside a RapidCheck property: draws a geometry (descriptor text) with *rc::gen::...
  std::function<std::string(const SearchOptions&)> draw;
  // Runs the check on one case; throws KernelThrew when the callback threw.
  std::function<OracleReport(const std::string& geometry, const OracleOptions&)> run;
  // The case-mix tags of a geometry ("groups > 1", "padding", ...).
  std::function<std::vector<std::string>(const std::string& geometry)> tags;
};

SearchResult run_search(const SearchOp& op, const SearchOptions& opt);

}  // namespace tapegrad::oracle::search_driver
