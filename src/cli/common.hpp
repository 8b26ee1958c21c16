// Shared pieces of the tapegrad command line: exit codes, the one-line error, atomic output.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>

namespace tapegrad::cli {

// Exit codes: 0 success, 1 a check failed (compare, check), 2 bad input.
inline constexpr int exit_ok = 0;
inline constexpr int exit_check_failed = 1;
inline constexpr int exit_bad_input = 2;

// Thrown by a subcommand for bad input found after parsing; printed as
// "tapegrad: error: <what>" with exit code 2.
struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Each subcommand registers itself on the app and sets `run` to its action; the action
// returns the exit code. Exceptions are turned into the one-line error by main().
using Action = std::function<int()>;

void register_ref(CLI::App& app, Action& run);
void register_compare(CLI::App& app, Action& run);
void register_check(CLI::App& app, Action& run);
void register_bench(CLI::App& app, Action& run);

// Parses "3" or "2,3" into a (height, width) pair; a single number means both axes.
std::array<std::int64_t, 2> parse_pair(const std::string& text, const std::string& option);

}  // namespace tapegrad::cli
