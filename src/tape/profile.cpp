// The profiler; see include/tapegrad/tape/profile.hpp.
#include "tapegrad/tape/profile.hpp"

#include <chrono>
#include <memory>
#include <mutex>

namespace tapegrad::profile {

namespace detail {
std::atomic<bool> enabled_flag{false};
std::atomic<bool> tracing_flag{false};
}  // namespace detail

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::step: return "step";
    case Phase::forward: return "forward";
    case Phase::backward: return "backward";
    case Phase::data: return "data";
    case Phase::combine: return "combine";
    case Phase::update: return "update";
    case Phase::shards: return "shards";
    case Phase::eval: return "eval";
    case Phase::other: return "other";
  }
  return "?";
}

namespace {

using clock = std::chrono::steady_clock;

// One thread's log. Registered once, kept for the process's life (threads of OpenMP's pool
// come back; a log outliving its thread is harmless).
struct ThreadLog {
  int thread = 0;
  int depth = 0;
  std::vector<Span> spans;
};

struct Registry {
  std::mutex mu;
  std::vector<std::unique_ptr<ThreadLog>> logs;
  clock::time_point t0 = clock::now();
  std::atomic<std::int64_t> step{-1};
};

Registry& registry() {
  static Registry r;
  return r;
}

ThreadLog& this_thread_log() {
  thread_local ThreadLog* log = nullptr;
  if (!log) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.logs.push_back(std::make_unique<ThreadLog>());
    log = r.logs.back().get();
    log->thread = static_cast<int>(r.logs.size()) - 1;
  }
  return *log;
}

}  // namespace

std::int64_t now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - registry().t0).count();
}

void start(const Options& opt) {
  Registry& r = registry();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    for (auto& log : r.logs) log->spans.clear(), log->depth = 0;
    r.t0 = clock::now();
    r.step = -1;
  }
  this_thread_log();  // the caller's thread gets the first log it does not already have
  detail::tracing_flag = opt.trace;
  detail::enabled_flag = true;
}

void stop() { detail::enabled_flag = false; }

void set_tracing(bool on) { detail::tracing_flag = on; }

void clear() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (auto& log : r.logs) {
    // Open spans (depth > 0) stay: their Scope will close them by index.
    if (log->depth == 0) log->spans.clear();
  }
}

std::vector<Span> collect() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<Span> out;
  for (auto& log : r.logs) out.insert(out.end(), log->spans.begin(), log->spans.end());
  return out;
}

void set_step(std::int64_t step) { registry().step = step; }

void mark(const char* name, std::string args) {
  if (!enabled()) return;
  ThreadLog& log = this_thread_log();
  log.spans.push_back(Span{name, Phase::other, log.thread, log.depth,
                           registry().step.load(std::memory_order_relaxed), now(), -1, 0.0,
                           std::move(args)});
}

void Scope::open(const char* name, Phase phase) {
  ThreadLog& log = this_thread_log();
  index_ = static_cast<std::int64_t>(log.spans.size());
  log.spans.push_back(Span{name, phase, log.thread, log.depth++, registry().step.load(std::memory_order_relaxed),
                           now(), 0, 0.0, {}});
}

void Scope::close() {
  ThreadLog& log = this_thread_log();
  log.spans[static_cast<std::size_t>(index_)].t1 = now();
  --log.depth;
}

void Scope::flops(double f) {
  if (index_ >= 0) this_thread_log().spans[static_cast<std::size_t>(index_)].flops = f;
}

void Scope::args(std::string text) {
  if (index_ >= 0) this_thread_log().spans[static_cast<std::size_t>(index_)].args = std::move(text);
}

}  // namespace tapegrad::profile
