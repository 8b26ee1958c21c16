// tapegrad peak [--threads T] [--json]
//
// The machine's measured fused multiply-add peak (kernels/peak.hpp) for the instruction set the
// fast kernels use, float and double, one core and T cores: what profiles divide by to say
// "% of peak".
#include <omp.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "tapegrad/kernels/peak.hpp"

namespace tapegrad::cli {

namespace {
struct PeakArgs {
  std::string threads, seconds = "0.25";
  bool json = false;
};

int run_peak(const PeakArgs& a) {
  const int threads = a.threads.empty() ? omp_get_max_threads()
                                        : static_cast<int>(parse_int(a.threads, "--threads", 1, 4096));
  const double seconds = parse_real(a.seconds, "--seconds", 0.01, 60);
  const fast::Peak p = fast::measure_peak(threads, seconds);
  if (a.json) {
    std::cout << nlohmann::json{{"isa", p.isa}, {"threads", p.threads},
                                {"float", {{"core_gflops", p.f32_core}, {"all_gflops", p.f32_all}}},
                                {"double", {{"core_gflops", p.f64_core}, {"all_gflops", p.f64_all}}}}
                     .dump(2)
              << "\n";
    return exit_ok;
  }
  std::printf("peak: fused multiply-add throughput with %s vectors (the fast kernels' instruction "
              "set), best of 3 runs of %.2f s\n",
              p.isa, seconds);
  std::printf("%-8s %16s %16s\n", "", "1 core", (std::to_string(p.threads) + " threads").c_str());
  std::printf("%-8s %10.1f GFLOP/s %10.1f GFLOP/s\n", "float", p.f32_core, p.f32_all);
  std::printf("%-8s %10.1f GFLOP/s %10.1f GFLOP/s\n", "double", p.f64_core, p.f64_all);
  return exit_ok;
}
}  // namespace

void register_peak(CLI::App& app, Action& run) {
  auto a = std::make_shared<PeakArgs>();
  CLI::App* cmd = app.add_subcommand("peak", "Measure the machine's FMA peak (float, double; one core and all)");
  cmd->add_option("--threads", a->threads, "threads for the all-cores figure (default: all)");
  cmd->add_option("--seconds", a->seconds, "seconds per measurement (default 0.25)");
  cmd->add_flag("--json", a->json, "print JSON");
  cmd->callback([a, &run] { run = [a] { return run_peak(*a); }; });
}

}  // namespace tapegrad::cli
