// tapegrad bench (placeholder registration until the subcommand lands)
#include "common.hpp"

namespace tapegrad::cli {
void register_bench(CLI::App&, Action&) {}
}  // namespace tapegrad::cli
