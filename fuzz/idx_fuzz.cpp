// libFuzzer target: the IDX reader (io/idx.hpp), plain and gzip. The first byte chooses:
// even, parse_idx on the rest (plain, in memory); odd, the rest written to an in-memory file
// (memfd) and read with read_idx, which detects gzip from the content and inflates it.
// Laws: no crash, leak, undefined behaviour or hang; every refusal is a one-line message; an
// accepted array holds exactly prod(dims) items.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tapegrad/errors.hpp"
#include "tapegrad/io/idx.hpp"
#include "tapegrad/memory.hpp"

namespace {

void check(const tapegrad::io::IdxArray& a) {
  std::uint64_t n = 1;
  for (auto d : a.dims) n *= static_cast<std::uint64_t>(d);
  if (n != a.data.size()) std::abort();
}

void check_message(const char* what) {
  for (unsigned char c : tapegrad::one_line(what))
    if (c < 0x20 || c == 0x7f) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tapegrad;
  static const bool limited = [] {
    memory::set_max_memory(std::uint64_t{64} << 20, "64M");  // inflated data stays small
    return true;
  }();
  (void)limited;
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    if (data[0] % 2 == 0) {
      check(io::parse_idx(bytes, "fuzz.idx"));
    } else {
      const int fd = ::memfd_create("idx_fuzz", MFD_CLOEXEC);
      if (fd < 0) std::abort();
      if (::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
        std::abort();
      const std::string path = "/proc/self/fd/" + std::to_string(fd);
      try {
        check(io::read_idx(path));
      } catch (...) {
        ::close(fd);
        throw;
      }
      ::close(fd);
    }
  } catch (const std::exception& e) {
    check_message(e.what());
  }
  return 0;
}
