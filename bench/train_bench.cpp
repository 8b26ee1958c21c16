// A real training step (train::Trainer: batch, tape, VJPs, combination, SGD update) of lenet5
// on random data, with the profiler off and on, at 1 and 2 threads, and with the activations
// fused into the conv2d and linear before them (fuse:1, the default of tapegrad train) or not:
//   BM_trainer_step<float>/profile:0/threads:1/N:64/fuse:1/real_time
//   BM_trainer_step<float>/profile:1/threads:1/N:64/fuse:1/real_time
//   BM_trainer_step<float>/profile:0/threads:1/N:64/fuse:0/real_time
// profile:1 does what `tapegrad train --profile` does after its traced steps: every span
// recorded, the log summarized and cleared every 32 steps. Its ratio to profile:0 is the
// profiler's overhead (the bound: 1.02); profile:0 pays one relaxed atomic load per
// span site.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <string>

#include "tapegrad/data/dataset.hpp"
#include "tapegrad/memory.hpp"
#include "tapegrad/net/params.hpp"
#include "tapegrad/tape/profile.hpp"
#include "tapegrad/tape/profile_summary.hpp"
#include "tapegrad/train/trainer.hpp"

namespace tapegrad {
namespace {

template <class T>
void BM_trainer_step(benchmark::State& st) {
  const bool profiled = st.range(0) != 0;
  omp_set_num_threads(static_cast<int>(st.range(1)));
  memory::retain_freed_memory();  // as tapegrad train does
  const index_t batch = st.range(2);
  const NetSpec spec = load_spec("lenet5");
  const data::Dataset d = data::make_random({1, 28, 28}, batch * 16, 10, {}, 3);
  Rng rng(1);
  train::TrainerOptions opt;
  opt.batch = batch;
  opt.fusion = st.range(3) ? Fusion::activations : Fusion::none;
  opt.steps = std::int64_t{1} << 40;
  train::Trainer<T> tr(spec, d, train::OptimConfig{"sgd", 0.01, 0.9}, opt, init_params<T>(spec, rng));
  tr.step();  // warm-up
  profile::Summary sum;
  if (profiled) profile::start();
  std::int64_t n = 0;
  for (auto _ : st) {
    tr.step();
    if (profiled && ++n % 32 == 0) {
      sum.add(profile::summarize(profile::collect()));
      profile::clear();
    }
  }
  profile::stop();
  benchmark::DoNotOptimize(sum.step_s);
  st.counters["images/s"] = benchmark::Counter(static_cast<double>(batch),
                                               benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(std::string(profiled ? "lenet5 step, profiler on" : "lenet5 step, profiler off") +
              (st.range(3) ? "" : ", unfused"));
}

void args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"profile", "threads", "N", "fuse"});
  for (int threads : {1, 2}) {
    for (int p : {0, 1}) b->Args({p, threads, 64, 1});
    b->Args({0, threads, 64, 0});
  }
  b->Args({0, 1, 2, 1});  // the bench_smoke shape
  b->Args({1, 1, 2, 1});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK_TEMPLATE(BM_trainer_step, float)->Apply(args);

}  // namespace
}  // namespace tapegrad

BENCHMARK_MAIN();
