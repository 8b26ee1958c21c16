// The profiler (tape/profile.hpp), its summaries (tape/profile_summary.hpp) and the Chrome
// trace writer (io/chrome_trace.hpp).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "tapegrad/data/dataset.hpp"
#include "tapegrad/io/chrome_trace.hpp"
#include "tapegrad/net/params.hpp"
#include "tapegrad/tape/profile.hpp"
#include "tapegrad/tape/profile_summary.hpp"
#include "tapegrad/train/trainer.hpp"

using namespace tapegrad;
using profile::Phase;
using profile::Span;

TEST(Profiler, OffRecordsNothingAndOnNests) {
  profile::stop();
  profile::start();
  profile::stop();
  { profile::Scope s("off", Phase::other); EXPECT_FALSE(s.active()); }
  EXPECT_TRUE(profile::collect().empty());
  profile::start();
  {
    profile::Scope outer("outer", Phase::step);
    profile::Scope inner("inner", Phase::forward);
    inner.flops(42);
    inner.args("ignored when not tracing");  // args are stored as given; tracing gates callers
  }
  profile::stop();
  const auto spans = profile::collect();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_STREQ(spans[0].name, "outer");
  EXPECT_EQ(spans[0].depth, 0);
  EXPECT_EQ(spans[1].depth, 1);
  EXPECT_LE(spans[0].t0, spans[1].t0);
  EXPECT_LE(spans[1].t1, spans[0].t1);  // the inner span closed first
  EXPECT_EQ(spans[1].flops, 42);
}

TEST(ProfileSummary, AddsDirectChildrenAndReportsTheRestAsUntracked) {
  // One step of 100 ns on thread 0: a forward conv2d [10, 40), its backward [50, 80), and data
  // [0, 5); a relu nested INSIDE conv2d's span [20, 30) must not count twice. Covered: 30 + 30
  // + 5 = 65 ns, untracked 35 ns. A second step [200, 300) with one relu [210, 220): 90 ns
  // untracked. An evaluation span outside the steps counts as eval only.
  auto sp = [](const char* n, Phase p, int depth, std::int64_t t0, std::int64_t t1, double f) {
    return Span{n, p, 0, depth, 1, t0, t1, f, {}};
  };
  const std::vector<Span> spans{
      sp("step", Phase::step, 0, 0, 100, 0),        sp("batch", Phase::data, 1, 0, 5, 0),
      sp("conv2d", Phase::forward, 1, 10, 40, 600), sp("relu", Phase::forward, 2, 20, 30, 0),
      sp("conv2d", Phase::backward, 1, 50, 80, 1200), sp("step", Phase::step, 0, 200, 300, 0),
      sp("relu", Phase::forward, 1, 210, 220, 0),   sp("evaluate", Phase::eval, 0, 400, 450, 0)};
  const profile::Summary s = profile::summarize(spans);
  EXPECT_EQ(s.steps, 2);
  EXPECT_DOUBLE_EQ(s.step_s, 200e-9);
  EXPECT_DOUBLE_EQ(s.untracked_s, (35 + 90) * 1e-9);
  EXPECT_DOUBLE_EQ(s.eval_s, 50e-9);
  ASSERT_EQ(s.ops.size(), 2u);
  EXPECT_EQ(s.ops[0].name, "conv2d");
  EXPECT_EQ(s.ops[0].calls, 1);
  EXPECT_DOUBLE_EQ(s.ops[0].forward_s, 30e-9);
  EXPECT_DOUBLE_EQ(s.ops[0].backward_s, 30e-9);
  EXPECT_DOUBLE_EQ(s.ops[0].flops(), 1800);
  EXPECT_EQ(s.ops[1].name, "relu");
  EXPECT_EQ(s.ops[1].calls, 1);  // the nested one is inside conv2d's time
  EXPECT_DOUBLE_EQ(s.ops[1].forward_s, 10e-9);
  ASSERT_EQ(s.parts.size(), 1u);
  EXPECT_EQ(s.parts[0].name, "batch");
}

TEST(ProfileSummary, ShardsSideBySideCountEachThreadsShareOfTheWallTime) {
  // One step [0, 100) on thread 0 with its shards side by side in [10, 90): thread 0 ran a
  // conv2d forward [10, 50) inside the region (depth 2), thread 1 a conv2d forward [12, 72)
  // and a batch [72, 80) at its top level, with a relu nested in its conv2d [20, 30) (counted
  // inside it). Two threads ran shards, so each span counts half: conv2d (40 + 60) / 2 = 50 ns
  // in 2 calls with all of its flops, batch 4 ns. Then sgd [90, 100). The region's waiting is
  // 80 - 54 = 26 ns, untracked the 10 ns before it. A thread-1 span of step 1 outside the
  // region [200, 210) belongs to no step.
  auto sp = [](const char* n, Phase p, int thread, int depth, std::int64_t t0, std::int64_t t1,
               double f) { return Span{n, p, thread, depth, 1, t0, t1, f, {}}; };
  const std::vector<Span> spans{
      sp("step", Phase::step, 0, 0, 0, 100, 0),      sp("shards", Phase::shards, 0, 1, 10, 90, 0),
      sp("conv2d", Phase::forward, 0, 2, 10, 50, 600), sp("sgd", Phase::update, 0, 1, 90, 100, 0),
      sp("conv2d", Phase::forward, 1, 0, 12, 72, 900), sp("relu", Phase::forward, 1, 1, 20, 30, 0),
      sp("batch", Phase::data, 1, 0, 72, 80, 0),     sp("relu", Phase::forward, 1, 0, 200, 210, 0)};
  const profile::Summary s = profile::summarize(spans);
  EXPECT_EQ(s.steps, 1);
  EXPECT_DOUBLE_EQ(s.step_s, 100e-9);
  ASSERT_EQ(s.ops.size(), 1u);
  EXPECT_EQ(s.ops[0].name, "conv2d");
  EXPECT_EQ(s.ops[0].calls, 2);
  EXPECT_DOUBLE_EQ(s.ops[0].forward_s, 50e-9);
  EXPECT_DOUBLE_EQ(s.ops[0].forward_flops, 1500);
  ASSERT_EQ(s.parts.size(), 2u);
  EXPECT_EQ(s.parts[0].name, "batch");  // in the step's order; the region itself is not a
  EXPECT_DOUBLE_EQ(s.parts[0].seconds, 4e-9);  // part, its contents are
  EXPECT_EQ(s.parts[1].name, "sgd");
  EXPECT_DOUBLE_EQ(s.parts[1].seconds, 10e-9);
  EXPECT_NEAR(s.shards_wait_s, 26e-9, 1e-18);  // 80 ns of region, 54 of spans' shares
  EXPECT_NEAR(s.untracked_s, 10e-9, 1e-18);     // [0, 10): before the region
}

// Two profiled steps of lenet5 at batch 32 (after one warm-up step) in `shards` shards, the
// threads used `mode`'s way, checked: every layer's op appears forward (once per layer per
// step) and backward, the flops of conv2d are those of its geometries for the whole batch (a
// step's work does not depend on how it is cut), and the rows add up to the step time
// exactly. The untracked share (the tape's bookkeeping) is far below a quarter in at least
// one of the steps; a missing instrumentation point (the backward sweep, the optimizer) would
// leave half of every step untracked; threads of side-by-side shards waiting for each other
// are shards_wait.
namespace {
void two_steps_add_up(index_t shards, train::Parallel mode, int threads) {
  const NetSpec spec = load_spec("lenet5");
  const data::Dataset d = data::make_random({1, 28, 28}, 64, 10, {}, 1);
  Rng rng(1);
  train::TrainerOptions opt;
  opt.batch = 32;
  opt.steps = 3;
  opt.shards = shards;
  opt.parallel = mode;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  train::Trainer<float> tr(spec, d, train::OptimConfig{"sgd", 0.01, 0.9}, opt,
                           init_params<float>(spec, rng));
  tr.step();  // warm-up, not profiled
  profile::start();
  tr.step();
  tr.step();
  profile::stop();
  omp_set_num_threads(saved);
  const auto spans = profile::collect();
  const profile::Summary s = profile::summarize(spans);
  EXPECT_EQ(s.steps, 2);
  std::set<std::string> fwd, bwd;
  for (const auto& sp : spans) {
    if (sp.phase == Phase::forward) fwd.insert(sp.name);
    if (sp.phase == Phase::backward) bwd.insert(sp.name);
  }
  // lenet5: each conv2d and the first two linear layers fused with their relu (net/network.hpp)
  const std::set<std::string> all{"conv2d+relu", "max_pool2d", "flatten", "linear+relu", "linear",
                                  "cross_entropy"};
  EXPECT_EQ(fwd, all);
  EXPECT_EQ(bwd, all);
  double covered = s.untracked_s + s.shards_wait_s;
  for (const auto& op : s.ops) covered += op.seconds();
  for (const auto& p : s.parts) covered += p.seconds;
  EXPECT_NEAR(covered, s.step_s, 1e-9 * s.step_s + 1e-12);
  // Per step, the smallest untracked share of the two: a thread descheduled between two spans
  // (a loaded machine, ctest -j2) inflates one step's, a missing instrumentation point both.
  double least = 1;
  for (std::int64_t k : {2, 3}) {
    std::vector<Span> of_step;
    for (const auto& sp : spans)
      if (sp.step == k) of_step.push_back(sp);
    const profile::Summary one = profile::summarize(of_step);
    ASSERT_EQ(one.steps, 1);
    least = std::min(least, one.untracked_s / one.step_s);
  }
  EXPECT_LT(least, 0.25);
  // conv2d per step: conv1 forward 2*32*6*28*28*25, conv2 2*32*16*10*10*150; backward: conv1
  // only computes dw (its input is data), conv2 dx and dw.
  const double c1 = 2.0 * 32 * 6 * 28 * 28 * 25, c2 = 2.0 * 32 * 16 * 10 * 10 * 150;
  for (const auto& op : s.ops)
    if (op.name == "conv2d") {
      EXPECT_DOUBLE_EQ(op.forward_flops, 2 * (c1 + c2));
      EXPECT_DOUBLE_EQ(op.backward_flops, 2 * (c1 + 2 * c2));
    }
}
}  // namespace

TEST(Profiler, ATrainingStepCoversEveryOpBothWaysAndAddsUp) {
  two_steps_add_up(1, train::Parallel::kernels, 1);
}

TEST(Profiler, ShardsSideBySideStillAddUpToTheStep) {
  two_steps_add_up(4, train::Parallel::shards, 2);
}

TEST(ChromeTrace, EventsCarryTheFormatsFields) {
  profile::start({true});
  {
    profile::Scope a("step", Phase::step);
    profile::mark("epoch", "1");
    profile::Scope b("conv2d", Phase::forward);
    b.args("x[1,1,3,3] w[1,1,3,3]");
    b.flops(18);
  }
  profile::stop();
  const auto j = nlohmann::json::parse(io::chrome_trace_json(profile::collect(), "test"));
  ASSERT_TRUE(j["traceEvents"].is_array());
  int complete = 0, instant = 0, meta = 0;
  for (const auto& e : j["traceEvents"]) {
    for (const char* k : {"name", "ph", "pid", "tid"}) EXPECT_TRUE(e.contains(k)) << e.dump();
    const std::string ph = e["ph"];
    if (ph == "M") {
      ++meta;
      continue;
    }
    EXPECT_TRUE(e.contains("ts")) << e.dump();
    if (ph == "X") {
      ++complete;
      EXPECT_TRUE(e.contains("dur")) << e.dump();
      if (e["name"] == "conv2d") {
        EXPECT_EQ(e["args"]["geometry"], "x[1,1,3,3] w[1,1,3,3]");
        EXPECT_DOUBLE_EQ(e["args"]["gflop"].get<double>(), 18e-9);
      }
    }
    if (ph == "i") ++instant;
  }
  EXPECT_EQ(complete, 2);
  EXPECT_EQ(instant, 1);
  EXPECT_EQ(meta, 2);  // process and thread names
}
