// tapegrad compare ACTUAL.npy EXPECTED.npy [--rtol R] [--atol A] [--max-ulps U]
// Prints gradcheck::compare()'s report; exit 0 pass, 1 fail, 2 bad input (unreadable file,
// shapes or dtypes that differ). ULPs are counted in ACTUAL's dtype.
#include <iostream>
#include <memory>

#include "common.hpp"
#include "tapegrad/gradcheck/compare.hpp"
#include "tapegrad/io/npy.hpp"

namespace tapegrad::cli {

namespace {

struct CompareArgs {
  std::string actual, expected;
  double rtol = 0, atol = 0;
  std::int64_t max_ulps = 0;
  CLI::Option *rtol_opt = nullptr, *atol_opt = nullptr, *ulps_opt = nullptr;
};

int run_compare(const CompareArgs& a) {
  gradcheck::CompareOptions opts;
  if (a.rtol_opt->count()) {
    if (!(a.rtol >= 0)) throw BadInput("compare: --rtol must be non-negative");
    opts.rtol = a.rtol;
  }
  if (a.atol_opt->count()) {
    if (!(a.atol >= 0)) throw BadInput("compare: --atol must be non-negative");
    opts.atol = a.atol;
  }
  if (a.ulps_opt->count()) {
    if (a.max_ulps < 0) throw BadInput("compare: --max-ulps must be non-negative");
    opts.max_ulps = static_cast<std::uint64_t>(a.max_ulps);
  }
  const io::NpyArray act = io::read_npy(a.actual);
  const io::NpyArray exp = io::read_npy(a.expected);
  if (act.dtype != exp.dtype)
    throw BadInput("compare: " + a.actual + " has dtype " + io::dtype_name(act.dtype) + ", " +
                   a.expected + " has " + io::dtype_name(exp.dtype) + "; they must match");
  if (act.shape != exp.shape)
    throw BadInput("compare: " + a.actual + " has shape " + act.shape.str() + ", expected " +
                   exp.shape.str() + " (the shape of " + a.expected + ")");
  gradcheck::CompareReport report;
  switch (act.dtype) {
    case io::NpyDtype::f4:
      report = gradcheck::compare(io::to_tensor<float>(act, a.actual),
                                  io::to_tensor<float>(exp, a.expected), opts);
      break;
    case io::NpyDtype::f8:
      report = gradcheck::compare(io::to_tensor<double>(act, a.actual),
                                  io::to_tensor<double>(exp, a.expected), opts);
      break;
    case io::NpyDtype::i8:
      throw BadInput("compare: " + a.actual + " has dtype int64; compare judges float32/float64");
  }
  std::cout << "actual   " << a.actual << "\nexpected " << a.expected << "\n";
  report.print(std::cout);
  return report.passed() ? exit_ok : exit_check_failed;
}

}  // namespace

void register_compare(CLI::App& app, Action& run) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* sub = app.add_subcommand(
      "compare", "Judge ACTUAL.npy against EXPECTED.npy: errors, ULP histogram, pass/fail");
  sub->add_option("actual", args->actual, "The array under test (.npy)")->required();
  sub->add_option("expected", args->expected, "The reference (.npy), same shape and dtype")
      ->required();
  args->rtol_opt =
      sub->add_option("--rtol", args->rtol, "Relative tolerance: |a-e| <= atol + rtol*|e|");
  args->atol_opt = sub->add_option("--atol", args->atol, "Absolute tolerance");
  args->ulps_opt =
      sub->add_option("--max-ulps", args->max_ulps, "Largest accepted ULP error (ACTUAL's dtype)");
  sub->footer(
      "With no tolerance given: rtol = 8u (u = 2^-24 float32, 2^-53 float64), atol = 0.\n"
      "Exit status: 0 pass, 1 fail, 2 bad input.");
  sub->callback([&run, args] { run = [args] { return run_compare(*args); }; });
}

}  // namespace tapegrad::cli
