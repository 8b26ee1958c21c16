// tapegrad check (placeholder registration until the subcommand lands)
#include "common.hpp"

namespace tapegrad::cli {
void register_check(CLI::App&, Action&) {}
}  // namespace tapegrad::cli
