// tapegrad: one program, subcommands (ref, compare, check, bench, ...).
// Every failure is one line on stderr, "tapegrad: error: ...", and a non-zero exit:
// 2 for bad input, 1 for a failed check.
//
// Global options (before or after the subcommand):
//   --max-memory SIZE   the memory limit every command's estimate is checked against
//                       (memory.hpp; default: the memory available now)
//   --version           version, compiler, the fast kernels' instruction set, library versions
#include <omp.h>
#include <zlib.h>

#include <boost/version.hpp>
#include <cstdio>
#include <iostream>
#include <new>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common.hpp"
#include "tapegrad/errors.hpp"
#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/memory.hpp"

#ifndef TAPEGRAD_VERSION
#define TAPEGRAD_VERSION "unknown"
#endif
#ifndef TAPEGRAD_BUILD_TYPE
#define TAPEGRAD_BUILD_TYPE "unknown"
#endif

namespace tapegrad::cli {
namespace {

std::string version_text() {
  std::ostringstream os;
  os << "tapegrad " << TAPEGRAD_VERSION << "\n";
#if defined(__clang__)
  os << "compiler      clang " << __clang_major__ << "." << __clang_minor__ << "."
     << __clang_patchlevel__;
#elif defined(__GNUC__)
  os << "compiler      GCC " << __GNUC__ << "." << __GNUC_MINOR__ << "." << __GNUC_PATCHLEVEL__;
#else
  os << "compiler      unknown";
#endif
  os << ", C++ " << __cplusplus << ", build type " << TAPEGRAD_BUILD_TYPE;
#if defined(__SANITIZE_ADDRESS__)
  os << ", AddressSanitizer";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  os << ", AddressSanitizer";
#endif
#if __has_feature(thread_sanitizer)
  os << ", ThreadSanitizer";
#endif
#endif
  os << "\n";
  os << "fast kernels  " << fast::isa() << " (the best instruction set this CPU offers, chosen "
     << "at run time)\n";
  os << "OpenMP        " << _OPENMP << ", " << omp_get_max_threads() << " threads by default\n";
  os << "libraries     Boost " << BOOST_VERSION / 100000 << "." << BOOST_VERSION / 100 % 1000 << "."
     << BOOST_VERSION % 100 << ", CLI11 " << CLI11_VERSION << ", nlohmann/json "
     << NLOHMANN_JSON_VERSION_MAJOR << "." << NLOHMANN_JSON_VERSION_MINOR << "."
     << NLOHMANN_JSON_VERSION_PATCH << ", zlib " << zlibVersion();
  return os.str();
}

// The first argument that is not an option (or an option's value): the subcommand, if any.
// Unknown subcommands get a message of their own instead of CLI11's "A subcommand is
// required" or "arguments were not expected".
std::optional<std::string> unknown_subcommand(int argc, char** argv, const CLI::App& app) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--max-memory") {
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-') continue;
    for (const CLI::App* sub : app.get_subcommands({}))
      if (sub->get_name() == a) return std::nullopt;
    return std::string(a);
  }
  return std::nullopt;
}

std::string subcommand_names(const CLI::App& app) {
  std::string s;
  for (const CLI::App* sub : app.get_subcommands({})) s += (s.empty() ? "" : ", ") + sub->get_name();
  return s;
}

int error(const std::string& what) {
  std::cerr << "tapegrad: error: " << one_line(what) << "\n";
  return exit_bad_input;
}

}  // namespace
}  // namespace tapegrad::cli

int main(int argc, char** argv) {
  using namespace tapegrad;
  using namespace tapegrad::cli;
  CLI::App app{"tapegrad: a convolutional-network engine with gradients you can trust"};
  app.require_subcommand(1);
  app.fallthrough();  // --max-memory after the subcommand too
  app.set_version_flag("--version", [] { return version_text(); }, "Print version, compiler, "
                       "the fast kernels' instruction set and the libraries' versions");
  std::string max_memory;
  CLI::Option* max_memory_opt = app.add_option(
      "--max-memory", max_memory,
      "Refuse commands estimated to need more memory than SIZE (4G, 512M, ...; default: the "
      "memory available now, MemAvailable)");
  Action run;
  register_ref(app, run);
  register_compare(app, run);
  register_verify(app, run);
  register_check(app, run);
  register_bench(app, run);
  register_train(app, run);
  register_peak(app, run);
  register_scale(app, run);
  try {
    if (const auto sub = unknown_subcommand(argc, argv, app))
      return error("unknown command " + quote(*sub) + "; expected one of " +
                   subcommand_names(app) + " (tapegrad --help lists them)");
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::RequiredError& e) {
    if (app.get_subcommands().empty())
      return error("no command given; expected one of " + subcommand_names(app) +
                   " (tapegrad --help lists them)");
    return error(e.what());
  } catch (const CLI::ParseError& e) {
    return error(e.what());
  }
  try {
    if (max_memory_opt->count()) {
      try {
        memory::set_max_memory(memory::parse_size(max_memory), max_memory);
      } catch (const std::invalid_argument& e) {
        throw BadInput(std::string("--max-memory: ") + e.what());
      }
    }
    return run ? run() : exit_bad_input;
  } catch (const std::bad_alloc&) {
    const auto lim = memory::limit();
    return error("out of memory: an allocation failed although the command's estimate was "
                 "within the limit" +
                 (lim ? " (" + memory::format_size(lim->bytes) + ", " + lim->source + ")"
                      : std::string()) +
                 "; --max-memory SIZE lowers the limit so such commands are refused up front");
  } catch (const std::exception& e) {
    // Bad input of every kind (BadInput, invalid_argument, out_of_range, domain_error,
    // length_error, memory::Refused, I/O failures) ends here as one line.
    return error(e.what());
  }
}
