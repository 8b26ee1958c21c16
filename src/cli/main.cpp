// tapegrad: one program, subcommands (ref, compare, check, bench, ...).
// Every failure is one line on stderr, "tapegrad: error: ...", and a non-zero exit:
// 2 for bad input, 1 for a failed check.
#include <cstdio>
#include <iostream>

#include "common.hpp"

namespace tapegrad::cli {

std::array<std::int64_t, 2> parse_pair(const std::string& text, const std::string& option) {
  auto parse_one = [&](const std::string& s) -> std::int64_t {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != s.size())
      throw BadInput(option + ": expected N or H,W with integers, got '" + text + "'");
    return v;
  };
  const auto comma = text.find(',');
  if (comma == std::string::npos) {
    const auto v = parse_one(text);
    return {v, v};
  }
  return {parse_one(text.substr(0, comma)), parse_one(text.substr(comma + 1))};
}

}  // namespace tapegrad::cli

int main(int argc, char** argv) {
  using namespace tapegrad::cli;
  CLI::App app{"tapegrad: a convolutional-network engine with gradients you can trust"};
  app.require_subcommand(1);
  Action run;
  register_ref(app, run);
  register_compare(app, run);
  register_check(app, run);
  register_bench(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "tapegrad: error: " << e.what() << "\n";
    return exit_bad_input;
  }
  try {
    return run ? run() : exit_bad_input;
  } catch (const std::exception& e) {
    // Bad input of every kind (BadInput, invalid_argument, out_of_range, domain_error,
    // length_error, I/O failures) ends here as one line.
    std::cerr << "tapegrad: error: " << e.what() << "\n";
    return exit_bad_input;
  }
}
