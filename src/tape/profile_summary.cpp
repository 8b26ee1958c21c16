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

Summary summarize(const std::vector<Span>& spans) {
  Summary sum;
  // Per thread, the open step span and the direct-child time inside it.
  struct Open {
    int depth = -1;
    std::int64_t t0 = 0, t1 = 0, covered = 0;
  };
  std::map<int, Open> open;
  auto close_step = [&](Open& o) {
    if (o.depth < 0) return;
    sum.untracked_s += secs(std::max<std::int64_t>(0, (o.t1 - o.t0) - o.covered));
    o.depth = -1;
  };
  // Spans are in each thread's order of opening, threads one after another.
  for (const Span& sp : spans) {
    if (sp.t1 < 0) continue;  // markers
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
    o.covered += sp.t1 - sp.t0;
    if (sp.phase == Phase::forward || sp.phase == Phase::backward) {
      OpStats& s = find_or_add(sum.ops, sp.name);
      if (sp.phase == Phase::forward) {
        ++s.calls;
        s.forward_s += secs(sp.t1 - sp.t0);
        s.forward_flops += sp.flops;
      } else {
        s.backward_s += secs(sp.t1 - sp.t0);
        s.backward_flops += sp.flops;
      }
    } else {
      PartStats& s = find_or_add(sum.parts, sp.name);
      s.phase = sp.phase;
      ++s.calls;
      s.seconds += secs(sp.t1 - sp.t0);
    }
  }
  for (auto& [thread, o] : open) close_step(o);
  return sum;
}

}  // namespace tapegrad::profile
