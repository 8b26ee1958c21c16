// libFuzzer target: the CLI's option values (src/cli/parse.hpp) and --max-memory sizes.
// The first byte picks the parser, the rest is the text. Laws checked on every input:
//   - accepted values lie in the range asked for;
//   - an accepted integer prints back to a text that parses to the same value;
//   - every refusal is a BadInput (invalid_argument for sizes) whose message is one printable
//     line naming the option.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../src/cli/parse.hpp"
#include "tapegrad/memory.hpp"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

void check_message(const std::string& what, std::string_view option) {
  for (unsigned char c : what) require(c >= 0x20 && c != 0x7f);
  require(what.rfind(std::string(option), 0) == 0 || option.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tapegrad::cli;
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const int which = data[0] % 6;
  try {
    switch (which) {
      case 0: {
        const std::int64_t v = parse_int(text, "--batch", -1000, max_size_arg);
        require(v >= -1000 && v <= max_size_arg);
        require(parse_int(std::to_string(v), "--batch", -1000, max_size_arg) == v);
        break;
      }
      case 1: {
        const std::uint64_t v = parse_uint64(text, "--seed");
        require(parse_uint64(std::to_string(v), "--seed") == v);
        break;
      }
      case 2: {
        const double v = parse_real(text, "--rtol", 0, 1e300);
        require(std::isfinite(v) && v >= 0 && v <= 1e300);
        break;
      }
      case 3: {
        const auto p = parse_pair(text, "--pad", 0, max_size_arg);
        require(p[0] >= 0 && p[1] >= 0 && p[0] <= max_size_arg && p[1] <= max_size_arg);
        require(parse_pair(std::to_string(p[0]) + "," + std::to_string(p[1]), "--pad", 0,
                           max_size_arg) == p);
        break;
      }
      case 4: {
        const auto v = parse_int_list(text, "--shape", 9, "N,C,H,W,K,R,S,stride,pad", 0,
                                      max_size_arg);
        require(v.size() == 9);
        for (auto x : v) require(x >= 0 && x <= max_size_arg);
        break;
      }
      case 5: {
        const std::uint64_t v = tapegrad::memory::parse_size(text);
        require(v >= 1);
        require(tapegrad::memory::parse_size(std::to_string(v)) == v);
        break;
      }
    }
  } catch (const BadInput& e) {
    static const char* options[] = {"--batch", "--seed", "--rtol", "--pad", "--shape", ""};
    check_message(e.what(), options[which]);
  } catch (const std::invalid_argument& e) {
    require(which == 5);  // parse_size's own refusal
    check_message(e.what(), "size '");
  }
  return 0;
}
