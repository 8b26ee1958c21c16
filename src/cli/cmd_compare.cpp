// tapegrad compare ACTUAL.npy EXPECTED.npy [--rtol R] [--atol A] [--max-ulps U] [--nan-equal]
//                                          [--allow-empty]
// Prints gradcheck::compare()'s report; exit 0 pass, 1 fail, 2 bad input (unreadable file,
// shapes or dtypes that differ). ULPs are counted in ACTUAL's dtype. NaN against NaN and two
// empty arrays fail unless --nan-equal / --allow-empty (the policy: gradcheck/compare.hpp).
#include <iostream>
#include <memory>

#include "common.hpp"
#include "ref_inputs.hpp"
#include "tapegrad/gradcheck/compare.hpp"
#include "tapegrad/io/npy.hpp"
#include "tapegrad/memory.hpp"

namespace tapegrad::cli {

namespace {

struct CompareArgs {
  std::string actual, expected;
  std::string rtol, atol, max_ulps;
  bool nan_equal = false, allow_empty = false;
  std::string dtype16;  // --dtype bfloat16: '<u2' files hold bfloat16 bit patterns
  CLI::Option *rtol_opt = nullptr, *atol_opt = nullptr, *ulps_opt = nullptr;
};

int run_compare(const CompareArgs& a) {
  check_path_arg(a.actual, "ACTUAL");
  check_path_arg(a.expected, "EXPECTED");
  gradcheck::CompareOptions opts;
  const double big = std::numeric_limits<double>::max();
  if (a.rtol_opt->count()) opts.rtol = parse_real(a.rtol, "--rtol", 0, big);
  if (a.atol_opt->count()) opts.atol = parse_real(a.atol, "--atol", 0, big);
  if (a.ulps_opt->count()) opts.max_ulps = parse_uint64(a.max_ulps, "--max-ulps");
  opts.nan_equal = a.nan_equal;
  opts.allow_empty = a.allow_empty;

  // Headers first: a FIFO, a malformed file or a mismatch is found before any data is read,
  // and the memory is estimated from the shapes: each array as read, as a tensor of its dtype,
  // and (float32) widened to double for the comparison.
  check_dtype16_arg("compare", a.dtype16);
  const io::NpyHeader ha = read_arg(
      "ACTUAL", [&] { return as_dtype16(io::read_npy_header(a.actual), a.dtype16, a.actual); });
  const io::NpyHeader he = read_arg("EXPECTED", [&] {
    return as_dtype16(io::read_npy_header(a.expected), a.dtype16, a.expected);
  });
  if (ha.dtype != he.dtype)
    throw BadInput("compare: " + quote(a.actual) + " has dtype " + io::dtype_name(ha.dtype) +
                   ", " + quote(a.expected) + " has " + io::dtype_name(he.dtype) +
                   "; they must match");
  if (ha.shape != he.shape)
    throw BadInput("compare: " + quote(a.actual) + " has shape " + ha.shape.str() +
                   ", expected " + he.shape.str() + " (the shape of " + quote(a.expected) + ")");
  if (ha.dtype == io::NpyDtype::i8)
    throw BadInput("compare: " + quote(a.actual) +
                   " has dtype int64; compare judges float16, bfloat16, float32 and float64");
  memory::Estimate est("compare");
  const auto n = static_cast<std::uint64_t>(ha.shape.numel());
  // as read, as a float/double tensor, widened to double (16-bit: 2 + 4 + 8)
  const std::uint64_t per_element = ha.dtype == io::NpyDtype::f8   ? 8 + 8
                                    : ha.dtype == io::NpyDtype::f4 ? 4 + 4 + 8
                                                                   : 2 + 4 + 8;
  est.add("ACTUAL " + ha.shape.str(), n, per_element, "ACTUAL " + quote(a.actual));
  est.add("EXPECTED " + he.shape.str(), n, per_element, "EXPECTED " + quote(a.expected));
  est.check();

  const io::NpyArray act = read_arg(
      "ACTUAL", [&] { return as_dtype16(io::read_npy(a.actual), a.dtype16, a.actual); });
  const io::NpyArray exp = read_arg(
      "EXPECTED", [&] { return as_dtype16(io::read_npy(a.expected), a.dtype16, a.expected); });
  gradcheck::CompareReport report;
  if (act.dtype == io::NpyDtype::f2 || act.dtype == io::NpyDtype::bf16) {
    // exact as floats; ULPs counted in the 16-bit format
    opts.precision = act.dtype == io::NpyDtype::f2 ? gradcheck::UlpPrecision::float16
                                                   : gradcheck::UlpPrecision::bfloat16;
    report = gradcheck::compare(io::to_tensor<float>(act, a.actual),
                                io::to_tensor<float>(exp, a.expected), opts);
  } else if (act.dtype == io::NpyDtype::f4) {
    report = gradcheck::compare(io::to_tensor<float>(act, a.actual),
                                io::to_tensor<float>(exp, a.expected), opts);
  } else {
    report = gradcheck::compare(io::to_tensor<double>(act, a.actual),
                                io::to_tensor<double>(exp, a.expected), opts);
  }
  std::cout << "actual   " << one_line(a.actual) << "\nexpected " << one_line(a.expected)
            << "\n";
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
  sub->add_flag("--nan-equal", args->nan_equal,
                "NaN against NaN passes (by default it fails: a NaN is no value)");
  sub->add_flag("--allow-empty", args->allow_empty,
                "Two empty arrays pass (by default they fail: nothing was compared)");
  sub->add_option("--dtype", args->dtype16,
                  "bfloat16: read '<u2' files as bfloat16 bit patterns (float16 '<f2' and "
                  "ml_dtypes bfloat16 '<V2' need nothing)");
  sub->footer(
      "Dtypes: float64, float32, float16 ('<f2'), bfloat16 ('<V2' as ml_dtypes saves it, or\n"
      "'<u2' with --dtype bfloat16); ULPs are counted in that dtype.\n"
      "With no tolerance given: rtol = 8u (u = 2^-53 float64, 2^-24 float32, 2^-11 float16,\n"
      "2^-8 bfloat16), atol = 0.\n"
      "Non-finite values: the same infinity on both sides passes; NaN against NaN fails\n"
      "unless --nan-equal; NaN or inf against anything else always fails.\n"
      "Exit status: 0 pass, 1 fail, 2 bad input.");
  sub->callback([&run, args] { run = [args] { return run_compare(*args); }; });
}

}  // namespace tapegrad::cli
