// tapegrad ref (placeholder registration until the subcommand lands)
#include "common.hpp"

namespace tapegrad::cli {
void register_ref(CLI::App&, Action&) {}
}  // namespace tapegrad::cli
