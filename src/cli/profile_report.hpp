// The profile of a training run as a table and as profile.json: per op, calls, forward and
// backward time per step, share of the step, GFLOP/s (conv2d and linear, from their geometry)
// and the percentage of the machine's measured peak (kernels/peak.hpp) at the thread count
// used; then data loading, the combination, the optimizer, and the step time no span covers.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "tapegrad/tape/profile_summary.hpp"

namespace tapegrad::cli {

struct ProfileContext {
  std::string title;   // "lenet5, float, batch 64"
  int threads = 1;
  double peak_gflops = 0;  // of `threads` cores in the training precision
};

std::string profile_table(const profile::Summary& s, const ProfileContext& c);
nlohmann::json profile_json(const profile::Summary& s, const ProfileContext& c);

}  // namespace tapegrad::cli
