// tapegrad bench: times one kernel on one shape and thread count, prints median ms and GFLOP/s.
//   tapegrad bench conv2d --shape N,C,H,W,K,R,S,stride,pad [--dir fwd|bwd_data|bwd_weights]
//                         [--dtype float|double] [--threads T] [--impl fast|ref] [--repeat R]
//                         [--isa best|avx512|avx2|generic]
//                         [--tier auto|pixels|batch|channels] [--json]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"
#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/memory.hpp"

namespace tapegrad::cli {
namespace {

struct BenchOptions {
  std::string op;
  std::string shape;
  std::string dir = "fwd";
  std::string dtype = "float";
  std::string impl = "fast";
  std::string isa = "best";
  std::string tier = "auto";
  std::string threads;  // when given (threads_opt); else OpenMP's default
  CLI::Option* threads_opt = nullptr;
  std::string repeat = "5";
  bool json = false;
};

// "N,C,H,W,K,R,S,stride,pad" -> geometry (validated by make_conv2d_geom).
Conv2dGeom parse_conv2d_shape(const std::string& text) {
  const std::vector<std::int64_t> v =
      parse_int_list(text, "--shape", 9, "N,C,H,W,K,R,S,stride,pad", 0, max_size_arg);
  static const char* names[] = {"N", "C", "H", "W", "K", "R", "S", "stride"};
  for (int i = 0; i < 8; ++i)
    if (v[static_cast<std::size_t>(i)] < 1)
      throw BadInput("bench: --shape: " + std::string(names[i]) + " must be at least 1, got " +
                     quote(text, 200));
  Conv2dParams prm;
  prm.stride = {v[7], v[7]};
  prm.pad = {v[8], v[8]};
  const Shape bs{v[4]};
  try {
    return make_conv2d_geom(Shape{v[0], v[1], v[2], v[3]}, Shape{v[4], v[1], v[5], v[6]}, &bs,
                            prm, "bench conv2d");
  } catch (const std::length_error& e) {
    throw std::length_error("bench conv2d: --shape " + quote(text, 200) +
                            ": the sizes overflow (" + e.what() + ")");
  }
}

// The tensors time_conv2d allocates, and the fast kernels' workspaces (their own account of
// the scratch a call holds, fast::conv2d_workspace_bytes).
void check_memory(const Conv2dGeom& g, const BenchOptions& o, int threads) {
  const std::uint64_t t = o.dtype == "float" ? 4 : 8;
  const std::string cause = "--shape " + quote(o.shape, 200);
  memory::Estimate est("bench conv2d");
  auto n = [](const Shape& s) { return static_cast<std::uint64_t>(s.numel()); };
  est.add("x " + g.x_shape().str(), n(g.x_shape()), t, cause);
  est.add("w and b", memory::add_sat(n(g.w_shape()), n(g.b_shape())), t, cause);
  est.add("dy " + g.y_shape().str(), n(g.y_shape()), t, cause);
  const Shape out = o.dir == "fwd" ? g.y_shape() : o.dir == "bwd_data" ? g.x_shape() : g.w_shape();
  // fast: the *_into kernels reuse the output; ref: a new output is built while the previous
  // run's is still held.
  est.add("the output " + out.str(), n(out), o.impl == "fast" ? t : 2 * t, cause);
  if (o.impl == "fast") {
    const fast::Conv2dDirection dir = o.dir == "fwd"        ? fast::Conv2dDirection::forward
                                      : o.dir == "bwd_data" ? fast::Conv2dDirection::backward_data
                                                            : fast::Conv2dDirection::backward_weights;
    const std::uint64_t bytes = o.dtype == "float"
                                    ? fast::conv2d_workspace_bytes<float>(g, dir, threads)
                                    : fast::conv2d_workspace_bytes<double>(g, dir, threads);
    est.add("the fast kernel's workspaces", bytes, 1, cause);
  }
  est.check();
}

template <class T>
Tensor<T> random_tensor(const Shape& s, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Tensor<T> t(s);
  for (auto& x : t) x = static_cast<T>(u(rng));
  return t;
}

// Process CPU time in ms (all threads): on a shared machine cpu/threads shows what the
// kernel costs when it is not descheduled.
double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return 1e3 * double(ts.tv_sec) + 1e-6 * double(ts.tv_nsec);
}

struct Times {
  std::vector<double> wall_ms, cpu_ms;
};

// Runs the chosen direction `repeat` times after one warm-up.
template <class T>
Times time_conv2d(const Conv2dGeom& g, const BenchOptions& o, int repeat) {
  std::mt19937 rng(1);
  const auto x = random_tensor<T>(g.x_shape(), rng);
  const auto w = random_tensor<T>(g.w_shape(), rng);
  const auto b = random_tensor<T>(g.b_shape(), rng);
  const auto dy = random_tensor<T>(g.y_shape(), rng);
  const bool fast = o.impl == "fast";
  Tensor<T> out;
  auto run_once = [&] {
    // fast: the *_into variants, reusing the output buffer as a training loop would
    if (o.dir == "fwd") {
      if (fast) fast::conv2d_forward_into(g, x, w, &b, out);
      else out = ref::conv2d_forward<T>(g, x, w, &b);
    } else if (o.dir == "bwd_data") {
      if (fast) fast::conv2d_backward_data_into(g, dy, w, out);
      else out = ref::conv2d_backward_data<T>(g, dy, w);
    } else {
      if (fast) fast::conv2d_backward_weights_into(g, x, dy, out);
      else out = ref::conv2d_backward_weights<T>(g, x, dy);
    }
  };
  run_once();
  Times times;
  for (int i = 0; i < repeat; ++i) {
    const double c0 = cpu_ms();
    const auto t0 = std::chrono::steady_clock::now();
    run_once();
    const auto t1 = std::chrono::steady_clock::now();
    times.cpu_ms.push_back(cpu_ms() - c0);
    times.wall_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return times;
}

int run_bench(const BenchOptions& o) {
  if (o.op != "conv2d")
    throw BadInput("bench: unknown op " + quote(o.op) + ", expected conv2d");
  const auto repeat = static_cast<int>(parse_int(o.repeat, "--repeat", 1, 1000000));
  const int requested =
      !o.threads_opt->count() ? 0 : static_cast<int>(parse_int(o.threads, "--threads", 1, 4096));
  const Conv2dGeom g = parse_conv2d_shape(o.shape);
  fast::set_isa(o.isa);
  fast::set_conv2d_tier(o.tier);
  if (requested > 0) omp_set_num_threads(requested);
  const int threads = omp_get_max_threads();
  check_memory(g, o, threads);
  const auto dir = o.dir == "fwd"        ? fast::Conv2dDirection::forward
                   : o.dir == "bwd_data" ? fast::Conv2dDirection::backward_data
                                         : fast::Conv2dDirection::backward_weights;
  const std::string path = o.impl != "fast"      ? "reference"
                           : o.dtype == "float" ? fast::conv2d_plan<float>(g, dir)
                                                : fast::conv2d_plan<double>(g, dir);
  Times t = o.dtype == "float" ? time_conv2d<float>(g, o, repeat)
                               : time_conv2d<double>(g, o, repeat);
  auto median_of = [](std::vector<double>& v) {
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size();
    return m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
  };
  std::vector<double>& ms = t.wall_ms;
  const double median = median_of(ms);
  const double median_cpu = median_of(t.cpu_ms);
  const double gflops = g.flops() / (median * 1e-3) / 1e9;
  // Rate per thread-second of CPU: equals gflops / threads on an idle machine.
  const double gflops_per_cpu = g.flops() / (median_cpu * 1e-3) / 1e9;
  if (o.json) {
    nlohmann::json j{{"op", o.op},           {"dir", o.dir},
                     {"dtype", o.dtype},     {"impl", o.impl},
                     {"isa", fast::isa()},   {"threads", threads},
                     {"path", path},
                     {"geometry", g.str()},  {"descriptor", g.descriptor()},
                     {"flops", g.flops()},   {"repeat", repeat},
                     {"median_ms", median},  {"min_ms", ms.front()},
                     {"gflops", gflops},     {"median_cpu_ms", median_cpu},
                     {"gflops_per_cpu_second", gflops_per_cpu}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "conv2d " << o.dir << " " << o.dtype << " " << o.impl
              << (o.impl == "fast" ? std::string(" (") + fast::isa() + ", " + path + ")"
                                   : std::string())
              << " threads=" << threads << "  " << g.str() << "\n"
              << std::fixed << std::setprecision(3) << "median " << median << " ms, min "
              << ms.front() << " ms over " << repeat << " runs, " << std::setprecision(1)
              << gflops << " GFLOP/s (CPU time " << std::setprecision(3) << median_cpu
              << " ms: " << std::setprecision(1) << gflops_per_cpu
              << " GFLOP per CPU-second)\n";
  }
  return exit_ok;
}

}  // namespace

void register_bench(CLI::App& app, Action& run) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "Time one kernel on one shape: median ms and GFLOP/s");
  cmd->add_option("op", o->op, "Kernel to time (conv2d)")->required();
  cmd->add_option("--shape", o->shape, "N,C,H,W,K,R,S,stride,pad")->required();
  cmd->add_option("--dir", o->dir, "Direction")
      ->check(CLI::IsMember({"fwd", "bwd_data", "bwd_weights"}));
  cmd->add_option("--dtype", o->dtype, "Scalar type")->check(CLI::IsMember({"float", "double"}));
  o->threads_opt = cmd->add_option("--threads", o->threads, "OpenMP threads, 1 to 4096 (default: OpenMP's)");
  cmd->add_option("--impl", o->impl, "Implementation")->check(CLI::IsMember({"fast", "ref"}));
  cmd->add_option("--repeat", o->repeat, "Timed runs (the median is reported)");
  cmd->add_option("--isa", o->isa, "Instruction set of the fast kernels")
      ->check(CLI::IsMember({"best", "avx512", "avx2", "generic"}));
  cmd->add_option("--tier", o->tier, "Layout of the lowered convolution (auto: the shape's choice)")
      ->check(CLI::IsMember({"auto", "pixels", "batch", "channels"}));
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([&run, o] { run = [o] { return run_bench(*o); }; });
}

}  // namespace tapegrad::cli
