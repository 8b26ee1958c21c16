// Shared pieces of the tapegrad command line: exit codes, the one-line error, atomic output.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>

#include "parse.hpp"
#include "tapegrad/memory.hpp"

namespace tapegrad::cli {

// Exit codes: 0 success, 1 a check failed (compare, check), 2 bad input.
inline constexpr int exit_ok = 0;
inline constexpr int exit_check_failed = 1;
inline constexpr int exit_bad_input = 2;

// Each subcommand registers itself on the app and sets `run` to its action; the action
// returns the exit code. Exceptions are turned into the one-line error by main().
using Action = std::function<int()>;

// Runs `read`, the reading of the file given as `option`; its errors come back as BadInput
// with the option in front ("--x 'x.npy': truncated .npy data ..."), except a memory refusal,
// whose message already names its cause.
template <class Read>
auto read_arg(std::string_view option, Read&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const memory::Refused&) {
    throw;
  } catch (const std::exception& e) {
    throw BadInput(std::string(option) + " " + e.what());
  }
}

void register_ref(CLI::App& app, Action& run);
void register_compare(CLI::App& app, Action& run);
void register_verify(CLI::App& app, Action& run);
void register_check(CLI::App& app, Action& run);
void register_bench(CLI::App& app, Action& run);
void register_train(CLI::App& app, Action& run);
void register_peak(CLI::App& app, Action& run);
void register_scale(CLI::App& app, Action& run);

}  // namespace tapegrad::cli
