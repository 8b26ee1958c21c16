// Strict parsing of option values: every number of every subcommand goes through here, so none
// wraps (--seed -1), is clamped (an over-long --batch) or keeps trailing text (--shape 1,2,).
//   integer  [-]digits, nothing else (no '+', no spaces, no hex, no exponent), within [lo, hi]
//   real     a finite decimal or exponent form strtod reads completely, within [lo, hi]
//   pair     "N" (both axes) or "H,W": two integers, no empty part, no trailing comma
//   list     exactly `count` integers separated by single commas
// Every failure is BadInput (exit 2) naming the option and quoting the text:
//   --seed: expected an integer in [0, 18446744073709551615], got '-1'
//   --pad: expected N or H,W with integers in [0, 281474976710656], got '1,'
// No dependency on CLI11, so the fuzz target links it alone.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tapegrad::cli {

// Bad input found by the CLI after option parsing: "tapegrad: error: <what>", exit code 2.
struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Sizes and counts taken from the command line are at most this (Shape::max_numel, 2^48), so
// that size arithmetic on them stays far from overflow.
inline constexpr std::int64_t max_size_arg = std::int64_t{1} << 48;

std::int64_t parse_int(std::string_view text, std::string_view option, std::int64_t lo,
                       std::int64_t hi);
std::uint64_t parse_uint64(std::string_view text, std::string_view option);
double parse_real(std::string_view text, std::string_view option, double lo, double hi);
std::array<std::int64_t, 2> parse_pair(std::string_view text, std::string_view option,
                                       std::int64_t lo, std::int64_t hi);
std::vector<std::int64_t> parse_int_list(std::string_view text, std::string_view option,
                                         std::size_t count, std::string_view names,
                                         std::int64_t lo, std::int64_t hi);
// A file or directory argument: refused when empty.
void check_path_arg(std::string_view text, std::string_view option);

}  // namespace tapegrad::cli
