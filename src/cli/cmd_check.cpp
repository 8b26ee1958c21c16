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
//
// Before anything is allocated: a spec file must be a regular file of at most 1 MiB, and the
// memory the check takes (dominated by the 50-digit scalar tape: one record per scalar
// operation of the forward pass) is estimated from the spec's shapes and --batch and refused
// up front when it is over the limit (memory.hpp).
#include <iostream>
#include <string>

#include "common.hpp"
#include "tapegrad/gradcheck/fourway.hpp"
#include "tapegrad/io/input_file.hpp"
#include "tapegrad/memory.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/var/var.hpp"

namespace tapegrad::cli {

namespace {

struct CheckArgs {
  std::string model;
  std::string batch = "2";
  std::string seed = "1";
  std::string dtype = "double";
  std::string fd_max = "64";
};

// A spec file is a few lines; anything larger is not one (and would be slow to parse).
constexpr std::uint64_t max_spec_bytes = std::uint64_t{1} << 20;

// The memory of four_way_check at batch n, from the shapes (fourway.hpp runs the ways one
// after another; the largest is the scalar tape on Var<f50>):
//   per layer   batch * out elements * (records per element * bytes per f50 record
//                                       + a Var<f50> and 8 f50 copies of the activation:
//                                         forward passes in T, f50, |.| and finite differences)
//               records per element: 2 * fan-in + 4 (a multiply and an add per term, bias and
//               activation); fan-in: the layer table's terms() (C/groups*R*S for conv, in for
//               linear, the window for pools, 1 otherwise)
//   per param   elements * (a Var<f50> + 12 f50 copies: values, gradients of the 4 ways,
//               G_abs, finite differences) + the T copies of ways 1-3
// tests/cli_bad_input_test.py checks that it bounds the peak memory measured.
void check_memory(const NetSpec& spec, index_t n, const CheckArgs& a, std::size_t t_bytes) {
  const std::uint64_t f50_b = sizeof(f50), var_b = sizeof(Var<f50>);
  const std::uint64_t rec_b = VarTape<f50>::bytes_per_node();
  const std::uint64_t batch = static_cast<std::uint64_t>(n);
  memory::Estimate est("check");
  // Each scalar tape holds at least one block of 2^16 records, however small the network.
  est.add("the scalar tapes' first blocks", std::uint64_t{1} << 16,
          rec_b + VarTape<double>::bytes_per_node(), "");
  const std::string model = "--model " + quote(a.model);
  const std::string batch_cause = "--batch " + quote(a.batch);
  est.add("the input " + spec.input_shape(n).str(), batch * spec.input_shape(1).numel(),
          var_b + 8 * f50_b, model + " (its input line) and " + batch_cause);
  for (const LayerSpec& l : spec.layers) {
    const auto out = static_cast<std::uint64_t>(l.out_shape.numel());
    const auto fan = static_cast<std::uint64_t>(
        visit_layer_kind(l.kind, [&](auto kind) { return decltype(kind)::terms(l); }));
    const std::uint64_t per_element =
        memory::add_sat(memory::mul_sat(memory::add_sat(memory::mul_sat(2, fan), 4), rec_b),
                        var_b + 8 * f50_b);
    const std::string cause = model + " line " + std::to_string(l.line) + " (" +
                              std::string(layer_kind_name(l.kind)) + ") and " + batch_cause;
    est.add("layer " + l.name + " on the 50-digit scalar tape, batch " + std::to_string(n),
            memory::mul_sat(batch, out), per_element, cause);
  }
  for (const ParamSpec& p : spec.params) {
    const LayerSpec& l = spec.layers[static_cast<std::size_t>(p.layer)];
    est.add("parameter " + p.name + " " + p.shape.str(), static_cast<std::uint64_t>(p.shape.numel()),
            var_b + 12 * f50_b + 6 * t_bytes,
            model + " line " + std::to_string(l.line) + " (" + std::string(layer_kind_name(l.kind)) + ")");
  }
  est.check();
}

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
  cmd->add_option("--seed", args->seed, "seed of the random problem, 0 to 2^64-1 (default 1)");
  cmd->add_option("--dtype", args->dtype, "precision of ways 1-3: float or double")
      ->check(CLI::IsMember({"float", "double"}));
  cmd->add_option("--fd-max", args->fd_max,
                  "finite differences: at most this many elements per tensor (default 64)");
  cmd->callback([args, &run] {
    run = [args]() -> int {
      const index_t batch = parse_int(args->batch, "--batch", 1, max_size_arg);
      const std::uint64_t seed = parse_uint64(args->seed, "--seed");
      const index_t fd_max = parse_int(args->fd_max, "--fd-max", 1, max_size_arg);
      check_path_arg(args->model, "--model");
      if (!preset_spec_text(args->model)) {
        // Refuse a FIFO, a directory or a device before the spec reader blocks on it.
        const io::InputFile f =
            read_arg("--model", [&] { return io::InputFile::open(args->model); });
        if (f.size() > max_spec_bytes)
          throw BadInput("--model " + f.name() + ": is " + std::to_string(f.size()) +
                         " bytes; a network spec is at most " + std::to_string(max_spec_bytes) +
                         " bytes");
      }
      const NetSpec spec = load_spec(args->model);
      check_memory(spec, batch, *args, args->dtype == "float" ? sizeof(float) : sizeof(double));
      gradcheck::FourWayOptions opt;
      opt.batch = batch;
      opt.seed = seed;
      opt.fd_max_per_tensor = fd_max;
      const gradcheck::FourWayReport rep =
          args->dtype == "float" ? gradcheck::four_way_check<float>(spec, opt)
                                 : gradcheck::four_way_check<double>(spec, opt);
      rep.print(std::cout);
      return rep.passed() ? exit_ok : exit_check_failed;
    };
  });
}

}  // namespace tapegrad::cli
