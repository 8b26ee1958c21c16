// What a profile says: per op, calls and time in forward and backward with their flops; per
// other part of a step (data, combine, update), its time; and the step time no span covers.
//
//   step time = sum over the step's direct child spans + untracked
// untracked is the tape's own bookkeeping (recording, clearing, moving gradients), the loops
// between spans and the profiler itself; the summary reports it, so the table always adds up
// to the step time.
//
// Shards side by side (a Phase::shards span; train::Parallel::shards): the shards' spans lie
// on the G threads that ran them. Each counts 1/G of its duration, so the ops' times remain
// shares of the step's wall time that add up to it, and an op's GFLOP/s are those of the G
// threads together. The rest of the region's time is shards_wait_s: the region's wall time
// less its spans' weighted sum, i.e. threads waiting for the others (or for the CPU), and the
// tape's bookkeeping inside the shards:
//   step time = direct children outside regions + regions (their spans + shards_wait) + untracked
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
  double shards_wait_s = 0;  // inside shards side by side, outside their spans (see above)
  std::vector<OpStats> ops;      // in order of first appearance
  std::vector<PartStats> parts;  // non-op children of steps
  double eval_s = 0;             // evaluations (outside steps)
  // Adds another summary's figures (spans summarized step by step).
  void add(const Summary& o);
};

// Summarizes the spans of training steps (Phase::step spans and everything inside them on the
// same thread, and the top-level spans of their side-by-side regions on other threads; op
// spans nested inside other op spans count once, at the outer one).
Summary summarize(const std::vector<Span>& spans);

}  // namespace tapegrad::profile
