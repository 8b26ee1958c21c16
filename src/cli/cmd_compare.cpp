// tapegrad compare (placeholder registration until the subcommand lands)
#include "common.hpp"

namespace tapegrad::cli {
void register_compare(CLI::App&, Action&) {}
}  // namespace tapegrad::cli
