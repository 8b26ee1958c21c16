// What a profile says: per op, calls and time in forward and backward with their flops; per
// other part of a step (data, combine, update), its time; and the step time no span covers.
//
//   step time = sum over the step's direct child spans + untracked
// untracked is the tape's own bookkeeping (recording, clearing, moving gradients), the loops
// between spans and the profiler itself; the summary reports it, so the table always adds up
// to the step time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/tape/profile.hpp"

namespace tapegrad::profile {

struct OpStats {
  std::string name;
  std::int64_t calls = 0;  // forward calls
  double forward_s = 0, backward_s = 0;
  double forward_flops = 0, backward_flops = 0;
  double seconds() const { return forward_s + backward_s; }
  double flops() const { return forward_flops + backward_flops; }
};

struct PartStats {
  std::string name;  // "batch", "combine", "sgd", ...
  Phase phase;
  std::int64_t calls = 0;
  double seconds = 0;
};

struct Summary {
  std::int64_t steps = 0;
  double step_s = 0;       // the steps' spans, summed
  double untracked_s = 0;  // step time outside every direct child span
  std::vector<OpStats> ops;      // in order of first appearance
  std::vector<PartStats> parts;  // non-op children of steps
  double eval_s = 0;             // evaluations (outside steps)
  // Adds another summary's figures (spans summarized step by step).
  void add(const Summary& o);
};

// Summarizes the spans of training steps (Phase::step spans and everything inside them on the
// same thread; op spans nested inside other op spans count once, at the outer one).
Summary summarize(const std::vector<Span>& spans);

}  // namespace tapegrad::profile
