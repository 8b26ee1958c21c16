// tapegrad check --model SPEC_FILE|seed|lenet5 [--batch N] [--seed S] [--dtype float|double]
//
// The four-way gradient check of a network (gradcheck/fourway.hpp): op tape, scalar tape,
// hand-written backprop and 50-digit finite differences against the Var<f50> reference, as a
// table. Exit 0 iff every entry is within its derived tolerance, 1 otherwise, 2 for bad input
// (a bad spec is one line naming the spec line). The tolerance is per element,
// gamma_T(K) * G_abs[i] with G_abs the sum of |terms| behind the element (cancellation-aware:
// a gradient that cancels to ~0, e.g. a conv bias, is judged at its terms' size, not its own);
// the table shows S = max |g| and S_abs = max G_abs per tensor and, per way, the fraction of
// the tolerance used.
#include <iostream>
#include <string>

#include "common.hpp"
#include "tapegrad/gradcheck/fourway.hpp"
#include "tapegrad/net/spec.hpp"

namespace tapegrad::cli {

namespace {
struct CheckArgs {
  std::string model;
  std::int64_t batch = 2;
  std::uint64_t seed = 1;
  std::string dtype = "double";
  std::int64_t fd_max = 64;
};
}  // namespace

void register_check(CLI::App& app, Action& run) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* cmd = app.add_subcommand(
      "check", "Four-way gradient check of a network spec (op tape, scalar tape, "
               "hand-written backprop, 50-digit finite differences)");
  cmd->add_option("--model", args->model,
                  "network: a spec file, or a preset (seed, lenet5)")
      ->required();
  cmd->add_option("--batch", args->batch, "batch size (default 2)");
  cmd->add_option("--seed", args->seed, "seed of the random problem (default 1)");
  cmd->add_option("--dtype", args->dtype, "precision of ways 1-3: float or double")
      ->check(CLI::IsMember({"float", "double"}));
  cmd->add_option("--fd-max", args->fd_max,
                  "finite differences: at most this many elements per tensor (default 64)");
  cmd->callback([args, &run] {
    run = [args]() -> int {
      if (args->batch <= 0)
        throw BadInput("--batch must be positive, got " + std::to_string(args->batch));
      if (args->fd_max <= 0)
        throw BadInput("--fd-max must be positive, got " + std::to_string(args->fd_max));
      const NetSpec spec = load_spec(args->model);
      gradcheck::FourWayOptions opt;
      opt.batch = args->batch;
      opt.seed = args->seed;
      opt.fd_max_per_tensor = args->fd_max;
      const gradcheck::FourWayReport rep =
          args->dtype == "float" ? gradcheck::four_way_check<float>(spec, opt)
                                 : gradcheck::four_way_check<double>(spec, opt);
      rep.print(std::cout);
      return rep.passed() ? exit_ok : exit_check_failed;
    };
  });
}

}  // namespace tapegrad::cli
