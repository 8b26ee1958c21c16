// Profile summaries; see include/tapegrad/tape/profile_summary.hpp.
#include "tapegrad/tape/profile_summary.hpp"

#include <algorithm>
#include <map>

namespace tapegrad::profile {

namespace {
double secs(std::int64_t ns) { return static_cast<double>(ns) * 1e-9; }

template <class V, class Name>
auto& find_or_add(V& v, const Name& name) {
  for (auto& e : v)
    if (e.name == name) return e;
  v.emplace_back();
  v.back().name = name;
  return v.back();
}
}  // namespace

void Summary::add(const Summary& o) {
  steps += o.steps;
  step_s += o.step_s;
  untracked_s += o.untracked_s;
  shards_wait_s += o.shards_wait_s;
  eval_s += o.eval_s;
  for (const OpStats& s : o.ops) {
    OpStats& t = find_or_add(ops, s.name);
    t.calls += s.calls;
    t.forward_s += s.forward_s, t.backward_s += s.backward_s;
    t.forward_flops += s.forward_flops, t.backward_flops += s.backward_flops;
  }
  for (const PartStats& s : o.parts) {
    PartStats& t = find_or_add(parts, s.name);
    t.phase = s.phase;
    t.calls += s.calls;
    t.seconds += s.seconds;
  }
}

namespace {
// A step's shards run side by side (Phase::shards): the span on the step's thread, and the
// shards' own top-level spans (batch, ops) on every thread that ran one, inside its time.
struct Region {
  int thread = 0, depth = 0;
  std::int64_t step = -1, t0 = 0, t1 = 0;
  std::vector<int> threads;        // the threads that ran shards in it
  std::vector<std::size_t> spans;  // its spans (indices)
  bool holds(const Span& sp) const {
    if (sp.step != step || sp.t0 < t0 || sp.t1 > t1) return false;
    return sp.thread == thread ? sp.depth == depth + 1 : sp.depth == 0;
  }
};
}  // namespace

Summary summarize(const std::vector<Span>& spans) {
  Summary sum;
  // The side-by-side regions first. A span inside one is a share of the region's wall time:
  // with G threads running shards, each of its spans counts 1/G of its duration, so the ops'
  // times still add up to the step time and their GFLOP/s are those of all G threads together.
  std::vector<Region> regions;
  std::multimap<std::int64_t, std::size_t> by_step;
  for (const Span& sp : spans)
    if (sp.phase == Phase::shards && sp.t1 >= 0) {
      by_step.emplace(sp.step, regions.size());
      regions.push_back({sp.thread, sp.depth, sp.step, sp.t0, sp.t1, {}, {}});
    }
  std::vector<Region*> in(spans.size(), nullptr);  // the region each span lies in
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const Span& sp = spans[i];
    if (sp.t1 < 0 || sp.phase == Phase::step || sp.phase == Phase::shards) continue;
    auto [lo, hi] = by_step.equal_range(sp.step);
    for (auto it = lo; it != hi; ++it) {
      Region& r = regions[it->second];
      if (!r.holds(sp)) continue;
      in[i] = &r;
      r.spans.push_back(i);
      if (std::find(r.threads.begin(), r.threads.end(), sp.thread) == r.threads.end())
        r.threads.push_back(sp.thread);
      break;
    }
  }
  auto add_span = [&](const Span& sp, double weight) {
    const double t = secs(sp.t1 - sp.t0) * weight;
    if (sp.phase == Phase::forward || sp.phase == Phase::backward) {
      OpStats& s = find_or_add(sum.ops, sp.name);
      if (sp.phase == Phase::forward) {
        ++s.calls;
        s.forward_s += t;
        s.forward_flops += sp.flops;
      } else {
        s.backward_s += t;
        s.backward_flops += sp.flops;
      }
    } else {
      PartStats& s = find_or_add(sum.parts, sp.name);
      s.phase = sp.phase;
      ++s.calls;
      s.seconds += t;
    }
  };
  auto region_of = [&](const Span& sp) -> const Region* {
    auto [lo, hi] = by_step.equal_range(sp.step);
    for (auto it = lo; it != hi; ++it) {
      const Region& r = regions[it->second];
      if (r.thread == sp.thread && r.t0 == sp.t0 && r.depth == sp.depth) return &r;
    }
    return nullptr;
  };

  // Then the steps, thread by thread: per thread, the open step span and the time of its
  // direct children (a side-by-side region counts as the weighted time of what ran in it).
  struct Open {
    int depth = -1;
    std::int64_t t0 = 0, t1 = 0;
    double covered = 0;  // ns
  };
  std::map<int, Open> open;
  auto close_step = [&](Open& o) {
    if (o.depth < 0) return;
    sum.untracked_s += std::max(0.0, static_cast<double>(o.t1 - o.t0) - o.covered) * 1e-9;
    o.depth = -1;
  };
  // Spans are in each thread's order of opening, threads one after another.
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const Span& sp = spans[i];
    if (sp.t1 < 0 || in[i]) continue;  // markers; spans of a region are counted above
    Open& o = open[sp.thread];
    if (o.depth >= 0 && sp.t0 >= o.t1) close_step(o);  // left the step
    if (sp.phase == Phase::step) {
      close_step(o);
      o.depth = sp.depth;
      o.t0 = sp.t0, o.t1 = sp.t1, o.covered = 0;
      ++sum.steps;
      sum.step_s += secs(sp.t1 - sp.t0);
      continue;
    }
    if (sp.phase == Phase::eval && o.depth < 0) sum.eval_s += secs(sp.t1 - sp.t0);
    if (o.depth < 0 || sp.depth != o.depth + 1) continue;  // outside a step, or nested deeper
    if (sp.phase == Phase::shards) {  // the region's spans, here in the step's order
      const double wall = static_cast<double>(sp.t1 - sp.t0);
      double inside = 0;
      if (const Region* r = region_of(sp)) {
        const double weight = 1.0 / static_cast<double>(std::max<std::size_t>(1, r->threads.size()));
        for (std::size_t k : r->spans) {
          add_span(spans[k], weight);
          inside += static_cast<double>(spans[k].t1 - spans[k].t0) * weight;
        }
      }
      sum.shards_wait_s += std::max(0.0, wall - inside) * 1e-9;
      o.covered += std::max(wall, inside);
      continue;
    }
    o.covered += static_cast<double>(sp.t1 - sp.t0);
    add_span(sp, 1.0);
  }
  for (auto& [thread, o] : open) close_step(o);
  return sum;
}

}  // namespace tapegrad::profile
