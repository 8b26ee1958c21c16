// The profiler: scoped spans, Stan Math's `profile` in spirit. A Scope on the stack times what
// runs until it closes, on the thread that opened it:
//
//   profile::Scope s("conv2d", profile::Phase::forward);   // every op opens one (ops/ops.hpp),
//   s.flops(geom.flops());                                  //   around its forward, and the tape
//   if (s.tracing()) s.args(geom.str());                    //   around each VJP (Phase::backward)
//
// The trainer adds the step, data loading, the gradient combination and the optimizer update.
//
// Off by default, and then free: a Scope reads one relaxed atomic flag and does nothing else.
// On (profile::start), each thread appends spans to its own log (no lock, no shared counter);
// collect() gathers them. With tracing on, spans also keep a description (their geometry) for
// the Chrome trace (io/chrome_trace.hpp); without it, nothing but a name pointer, two times and
// a flop count is stored per span.
//
// Times are steady_clock nanoseconds since start(). Spans of one thread nest (a Scope closes
// before its parent); depth is the nesting level on that thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace tapegrad::profile {

enum class Phase : std::uint8_t {
  step,      // one training step (everything below happens inside one)
  forward,   // an op's forward pass (validation, kernel, recording)
  backward,  // an op's VJP during the tape's backward sweep
  data,      // filling a batch
  combine,   // summing shard gradients
  update,    // the optimizer
  shards,    // a step's shards side by side (train::Parallel::shards): the shards' own spans
             // (batch, ops) lie on the threads that ran them, inside this span's time
  eval,      // evaluating a data set
  other,
};
const char* phase_name(Phase p);

struct Span {
  const char* name;  // static strings (op names, "step", ...)
  Phase phase;
  int thread;        // 0 for the thread that called start(), then in order of first use
  int depth;
  std::int64_t step; // the training step the span belongs to (set_step), -1 outside any
  std::int64_t t0, t1;  // ns since start(); t1 < 0: an instant (a marker, see mark())
  double flops;      // floating-point operations of the span's work (0: not counted)
  std::string args;  // only when tracing: e.g. the geometry
};

struct Options {
  bool trace = false;  // keep descriptions for a trace file
};

namespace detail {
extern std::atomic<bool> enabled_flag;
extern std::atomic<bool> tracing_flag;
}  // namespace detail

inline bool enabled() { return detail::enabled_flag.load(std::memory_order_relaxed); }
inline bool tracing() { return detail::tracing_flag.load(std::memory_order_relaxed); }

// Clears every log and turns profiling on. Not to be called while spans are open.
void start(const Options& opt = {});
// Turns profiling off (logs are kept for collect()).
void stop();
// Turns the keeping of descriptions on or off while profiling (a trace of the first steps of
// a long run, then summaries only).
void set_tracing(bool on);
// Every thread's spans, in each thread's order of opening.
std::vector<Span> collect();
// Drops the logged spans (profiling stays on): a caller that summarizes as it goes keeps
// memory flat over long runs.
void clear();
// The step later spans belong to (the trainer sets it before each step).
void set_step(std::int64_t step);
// An instant marker on the calling thread ("epoch", args "2"): a Chrome trace instant event.
void mark(const char* name, std::string args = {});
// ns since start().
std::int64_t now();

class Scope {
 public:
  Scope(const char* name, Phase phase) {
    if (enabled()) open(name, phase);
  }
  ~Scope() {
    if (index_ >= 0) close();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

  bool active() const { return index_ >= 0; }
  bool tracing() const { return active() && profile::tracing(); }
  void flops(double f);
  void args(std::string text);

 private:
  void open(const char* name, Phase phase);
  void close();
  std::int64_t index_ = -1;  // into this thread's log
};

}  // namespace tapegrad::profile
