// libFuzzer target: the .npy parser (io::parse_npy) on arbitrary bytes.
//
// Besides "no crash, no leak, no undefined behaviour, no hang" (ASan + UBSan + libFuzzer's
// timeout), it checks two laws on every input:
//   - an error is one printable line: no control byte, no invalid UTF-8 (quote() at work);
//   - an accepted file round-trips: encode_npy(parse_npy(b)) parses to the same dtype, shape and
//     bits, so the reader and the writer agree on the format.
// The header window is lowered to 256 bytes so that small inputs reach the path that checks a
// long header's padding as it is read.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "tapegrad/io/npy.hpp"
#include "tapegrad/memory.hpp"

namespace {

void check_message(const char* what) {
  for (const char* p = what; *p; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c < 0x20 || c == 0x7f) std::abort();  // a message that breaks the line
  }
}

bool same_bits(const tapegrad::io::NpyArray& a, const tapegrad::io::NpyArray& b) {
  return a.dtype == b.dtype && a.shape == b.shape &&
         std::visit(
             [&](const auto& va) {
               using V = std::decay_t<decltype(va)>;
               const auto& vb = std::get<V>(b.data);
               return va.size() == vb.size() &&
                      (va.empty() ||
                       std::memcmp(va.data(), vb.data(), va.size() * sizeof(va[0])) == 0);
             },
             a.data);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tapegrad;
  static const bool limited = [] {
    // Shapes up to 2^48 elements are valid, but the fuzzer's inputs are small: anything that
    // claims more data than the input holds is refused before allocating, so 64 MiB is plenty.
    memory::set_max_memory(std::uint64_t{64} << 20, "64M");
    return true;
  }();
  (void)limited;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  io::NpyArray a;
  try {
    a = io::parse_npy(bytes, "fuzz.npy", 256);
  } catch (const std::exception& e) {
    check_message(e.what());
    return 0;
  }
  const io::NpyArray b = io::parse_npy(io::encode_npy(a, a.version), "round trip");
  if (!same_bits(a, b)) std::abort();
  return 0;
}
