// tapegrad scale --model lenet5 [--threads 1,2,4,...] [--batch B] [--steps N] [--reps R]
//                [--dtype T] [--shards S] [--parallel auto|kernels|shards] [--out DIR]
// tapegrad scale --ranks 1,2,4 [--threads 1,2] [--reps R] [--mpiexec M] ...: the ranks x
//                threads sweep of data-parallel training (scale_ranks.hpp)
//
// The same training steps (same initial weights, same random data of the model's shape) at
// each thread count, the counts taking turns R times N steps: time per step, speedup and
// parallel efficiency (medians over the reps of each rep's ratio), and every op's own
// speedup from the profiler, so the op that scales worst is named. Because the kernels give the
// same bits for any thread count, the final weights must be identical at every count; the
// command checks it. Writes DIR/scale.csv and DIR/scale.{svg,png} (speedup against threads).
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "common.hpp"
#include "plot.hpp"
#include "scale_ranks.hpp"
#include "tapegrad/data/dataset.hpp"
#include "tapegrad/io/atomic_file.hpp"
#include "tapegrad/io/input_file.hpp"
#include "tapegrad/net/params.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/tape/profile.hpp"
#include "tapegrad/tape/profile_summary.hpp"
#include "tapegrad/train/trainer.hpp"

namespace tapegrad::cli {

namespace {

namespace fs = std::filesystem;

struct ScaleArgs {
  std::string model = "lenet5", threads, batch = "64", steps = "20", dtype = "float", out;
  std::string warmup = "2", shards = "4", parallel = "auto";
  std::string ranks, reps = "3", mpiexec = "mpirun", data = "fashion-mnist";
};

std::vector<int> int_list(const std::string& text, const char* option) {
  std::vector<int> v;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');)
    v.push_back(static_cast<int>(parse_int(item, option, 1, 4096)));
  if (!text.empty() && text.back() == ',') throw BadInput(std::string(option) + ": trailing comma in " + quote(text));
  if (v.empty()) throw BadInput(std::string(option) + ": expected a list like 1,2,4");
  return v;
}

struct Point {
  int threads = 1;
  profile::Summary summary;          // every rep's steps
  std::vector<double> rep_ms;        // ms per step in each rep
  double ms_per_step() const { return summary.steps ? summary.step_s * 1e3 / double(summary.steps) : 0; }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// One trainer per thread count, all from the same weights on the same data; the counts take
// turns, `reps` times `steps` steps each, so that a slow spell of a shared machine falls on all
// of them alike instead of on whichever count ran then (each rep's speedup compares steps
// timed seconds apart, not minutes).
template <class T>
std::vector<Point> sweep(const NetSpec& spec, const std::vector<int>& counts, index_t batch,
                         index_t steps, index_t reps, index_t warmup, index_t shards,
                         train::Parallel parallel, bool& identical) {
  const Shape out = spec.output_shape(1);
  const bool classes = spec.loss_name() == "cross_entropy";
  const std::vector<index_t> targets(out.dims().begin() + 1, out.dims().end());
  const index_t total = steps * reps + warmup;
  const data::Dataset d = data::make_random(spec.input, batch * total, classes ? out[1] : 0,
                                            classes ? std::vector<index_t>{} : targets, 7);
  Rng rng(1);
  const ParamSet<T> init = init_params<T>(spec, rng);
  train::TrainerOptions opt;
  opt.batch = batch;
  opt.steps = total;
  opt.shards = shards;
  opt.parallel = parallel;
  train::OptimConfig optim{"sgd", 0.01, 0.9};
  std::vector<Point> points;
  std::vector<std::unique_ptr<train::Trainer<T>>> trainers;
  for (int t : counts) {
    omp_set_num_threads(t);
    trainers.push_back(std::make_unique<train::Trainer<T>>(spec, d, optim, opt, init));
    for (index_t s = 0; s < warmup; ++s) trainers.back()->step();  // first-touch, thread start-up
    points.push_back({t, {}, {}});
  }
  for (index_t r = 0; r < reps; ++r)
    for (std::size_t i = 0; i < counts.size(); ++i) {
      omp_set_num_threads(counts[i]);
      profile::start();
      for (index_t s = 0; s < steps; ++s) trainers[i]->step();
      profile::stop();
      const profile::Summary sum = profile::summarize(profile::collect());
      points[i].summary.add(sum);
      points[i].rep_ms.push_back(sum.steps ? sum.step_s * 1e3 / double(sum.steps) : 0);
    }
  identical = true;
  std::vector<std::vector<T>> first;
  for (const auto& tr : trainers) {
    std::vector<std::vector<T>> w;
    for (const auto& p : tr->params()) w.push_back(p.value.vec());
    if (first.empty())
      first = w;
    else if (w != first)
      identical = false;
  }
  return points;
}

int run_scale(const ScaleArgs& a) {
  if (!a.ranks.empty()) {  // the ranks x threads sweep, over child processes (scale_ranks.hpp)
    RankSweep s;
    s.ranks = int_list(a.ranks, "--ranks");
    s.threads = a.threads.empty() ? std::vector<int>{1} : int_list(a.threads, "--threads");
    s.model = a.model;
    s.data = a.data;
    s.batch = parse_int(a.batch, "--batch", 1, 1 << 20);
    s.steps = parse_int(a.steps, "--steps", 1, 1000000);
    s.shards = parse_int(a.shards, "--shards", 1, 1 << 20);
    s.reps = parse_int(a.reps, "--reps", 1, 1000);
    s.mpiexec = a.mpiexec;
    s.out = a.out;
    return run_rank_sweep(s);
  }
  std::vector<int> counts;
  if (a.threads.empty()) {
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int t = 1; t < hw; t *= 2) counts.push_back(t);
    counts.push_back(hw);
  } else {
    counts = int_list(a.threads, "--threads");
  }
  const index_t batch = parse_int(a.batch, "--batch", 1, 1 << 20);
  const index_t steps = parse_int(a.steps, "--steps", 1, 1000000);
  const index_t reps = parse_int(a.reps, "--reps", 1, 1000);
  const index_t warmup = parse_int(a.warmup, "--warmup", 0, 1000000);
  const index_t shards = parse_int(a.shards, "--shards", 1, 1 << 20);
  const train::Parallel parallel = a.parallel == "kernels"  ? train::Parallel::kernels
                                   : a.parallel == "shards" ? train::Parallel::shards
                                                            : train::Parallel::automatic;
  if (a.dtype != "float" && a.dtype != "double") throw BadInput("--dtype: expected float or double");
  std::string text;
  if (auto preset = preset_spec_text(a.model)) {
    text = *preset;
  } else {
    check_path_arg(a.model, "--model");
    text = read_arg("--model", [&] { return io::read_input_file(a.model, 1 << 20); });
  }
  const NetSpec spec = parse_spec(text, a.model);
  memory::Estimate est("scale");
  est.add("the random data set", static_cast<std::uint64_t>(batch * (steps * reps + warmup)),
          static_cast<std::uint64_t>(spec.input_shape(1).numel()) * 8, "--batch and --steps");
  est.check();
  const fs::path out = a.out.empty() ? fs::path("out") / ("scale-" + fs::path(a.model).stem().string()) : fs::path(a.out);
  bool identical = true;
  const std::vector<Point> pts = a.dtype == "float"
                                     ? sweep<float>(spec, counts, batch, steps, reps, warmup, shards, parallel, identical)
                                     : sweep<double>(spec, counts, batch, steps, reps, warmup, shards, parallel, identical);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw BadInput("--out " + quote(out.string()) + ": cannot create (" + ec.message() + ")");

  // Per rep, each count's speedup over the first count in the same rep; shown: the medians
  // over the reps (and their range), ms per step the median of the reps' own.
  const Point& base = pts.front();
  auto speedups = [&](const Point& p) {
    std::vector<double> v;
    for (std::size_t r = 0; r < p.rep_ms.size(); ++r) v.push_back(base.rep_ms[r] / p.rep_ms[r]);
    return v;
  };
  std::printf("scale: %s, %s, batch %lld in %lld shard%s (threads: %s), %lld reps of %lld steps "
              "per thread count, the counts taking turns (after %lld warm-up), random data\n\n",
              a.model.c_str(), a.dtype.c_str(), static_cast<long long>(batch),
              static_cast<long long>(shards), shards == 1 ? "" : "s",
              train::parallel_name(parallel), static_cast<long long>(reps),
              static_cast<long long>(steps), static_cast<long long>(warmup));
  std::printf("%8s %10s %9s %11s %15s\n", "threads", "ms/step", "speedup", "efficiency",
              "speedup range");
  std::string csv = "threads,ms_per_step,speedup,efficiency,speedup_min,speedup_max";
  for (const auto& op : pts.front().summary.ops) csv += "," + op.name + "_ms";
  csv += "\n";
  Plot plot{"speedup of a " + a.model + " training step", "threads", "speedup over 1 thread", {}, false};
  PlotSeries measured{"measured", {}, {}, false}, ideal{"ideal", {}, {}, false};
  for (const Point& p : pts) {
    const std::vector<double> sps = speedups(p);
    const double sp = median(sps), eff = sp / (p.threads / double(base.threads));
    const double lo = *std::min_element(sps.begin(), sps.end());
    const double hi = *std::max_element(sps.begin(), sps.end());
    const double ms = median(p.rep_ms);
    char range[64];
    std::snprintf(range, sizeof range, "%.2f-%.2f", lo, hi);
    std::printf("%8d %10.3f %9.2f %10.1f%% %15s\n", p.threads, ms, sp, 100 * eff, range);
    char buf[160];
    std::snprintf(buf, sizeof buf, "%d,%.6f,%.4f,%.4f,%.4f,%.4f", p.threads, ms, sp, eff, lo, hi);
    csv += buf;
    for (const auto& op : pts.front().summary.ops) {
      double op_ms = 0;
      for (const auto& o : p.summary.ops)
        if (o.name == op.name) op_ms = o.seconds() * 1e3 / double(p.summary.steps);
      std::snprintf(buf, sizeof buf, ",%.6f", op_ms);
      csv += buf;
    }
    csv += "\n";
    measured.x.push_back(p.threads), measured.y.push_back(sp);
    ideal.x.push_back(p.threads), ideal.y.push_back(p.threads / double(base.threads));
  }
  // Per op: ms per step at the first and the last thread count (all reps), and its speedup.
  const Point& lo = pts.front();
  const Point& hi = pts.back();
  std::printf("\n%-16s %12s %12s %9s %8s\n", "op (fwd+bwd)", (std::to_string(lo.threads) + " thr ms").c_str(),
              (std::to_string(hi.threads) + " thr ms").c_str(), "speedup", "share");
  std::string worst;
  double worst_sp = 1e300;
  for (const auto& op : lo.summary.ops) {
    const double ms_lo = op.seconds() * 1e3 / double(lo.summary.steps);
    double ms_hi = 0;
    for (const auto& o : hi.summary.ops)
      if (o.name == op.name) ms_hi = o.seconds() * 1e3 / double(hi.summary.steps);
    const double sp = ms_hi > 0 ? ms_lo / ms_hi : 0;
    const double share = 100 * op.seconds() / lo.summary.step_s;
    std::printf("%-16s %12.3f %12.3f %9.2f %7.1f%%\n", op.name.c_str(), ms_lo, ms_hi, sp, share);
    if (share >= 1 && sp < worst_sp) worst_sp = sp, worst = op.name;  // ops worth naming
  }
  if (pts.size() > 1 && !worst.empty())
    std::printf("\nscales worst: %s (%.2fx at %d threads; ops under 1%% of the step not counted)\n",
                worst.c_str(), worst_sp, hi.threads);
  std::printf("weights after the same steps identical for every thread count: %s\n",
              identical ? "yes" : "NO");
  io::write_file_atomic(out / "scale.csv", csv);
  plot.series = {measured, ideal};
  write_plot(out / "scale", plot);
  std::printf("outputs: %s/{scale.csv,scale.svg,scale.png}\n", out.string().c_str());
  return identical ? exit_ok : exit_check_failed;
}

}  // namespace

void register_scale(CLI::App& app, Action& run) {
  auto a = std::make_shared<ScaleArgs>();
  CLI::App* cmd = app.add_subcommand("scale", "Thread scaling of a training step: speedup, efficiency, per-op speedup");
  cmd->add_option("--model", a->model, "seed, lenet5 or a spec file (default lenet5)");
  cmd->add_option("--threads", a->threads, "thread counts, e.g. 1,2,4 (default: 1, 2, 4, ... all cores)");
  cmd->add_option("--batch", a->batch, "batch size (default 64)");
  cmd->add_option("--steps", a->steps, "timed steps per thread count and rep (default 20)");
  cmd->add_option("--warmup", a->warmup, "untimed steps first (default 2)");
  cmd->add_option("--dtype", a->dtype, "float | double (default float)");
  cmd->add_option("--shards", a->shards, "shards per batch, as train's --shards (default 4)");
  cmd->add_option("--parallel", a->parallel, "auto | kernels | shards, as train's --parallel (default auto)")
      ->check(CLI::IsMember({"auto", "kernels", "shards"}));
  cmd->add_option("--out", a->out, "output directory (default out/scale-<model>, with --ranks out/scale-ranks-<model>)");
  cmd->add_option("--ranks", a->ranks, "MPI rank counts, e.g. 1,2,4: the ranks x threads sweep, each run "
                  "under mpirun (built with TAPEGRAD_MPI; --threads then per rank, default 1)");
  cmd->add_option("--reps", a->reps, "interleaved repetitions (thread counts, or with --ranks the runs, taking turns); medians shown (default 3)");
  cmd->add_option("--mpiexec", a->mpiexec, "with --ranks: the MPI launcher (default mpirun)");
  cmd->add_option("--data", a->data, "with --ranks: train's --data (default fashion-mnist)");
  cmd->callback([a, &run] { run = [a] { return run_scale(*a); }; });
}

}  // namespace tapegrad::cli
