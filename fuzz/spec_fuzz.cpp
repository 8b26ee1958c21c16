// libFuzzer target: the network-spec parser (parse_spec, src/net/spec.cpp) on arbitrary text.
// Laws: no crash, leak, undefined behaviour or hang; every refusal is a std::exception whose
// message, as the CLI prints it (one_line), is one printable line; an accepted spec has
// consistent shapes (each layer's input is the previous layer's output).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tapegrad/errors.hpp"
#include "tapegrad/net/spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tapegrad;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const NetSpec spec = parse_spec(text, "fuzz");
    for (std::size_t i = 1; i < spec.layers.size(); ++i)
      if (spec.layers[i].in_shape != spec.layers[i - 1].out_shape) std::abort();
  } catch (const std::exception& e) {
    for (unsigned char c : one_line(e.what()))
      if (c < 0x20 || c == 0x7f) std::abort();
  }
  return 0;
}
