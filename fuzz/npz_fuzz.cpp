// libFuzzer target: the .npz reader (io/npz.hpp: libzip, then every member's .npy parser),
// the archive layer of checkpoints and weight files. The input is written to an in-memory file
// (memfd) and read with read_npz. Laws: no crash, leak, undefined behaviour or hang; every
// refusal is a one-line message; an accepted archive's arrays re-encode to bytes that parse to
// the same shapes.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "tapegrad/errors.hpp"
#include "tapegrad/io/npz.hpp"
#include "tapegrad/memory.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tapegrad;
  static const bool limited = [] {
    memory::set_max_memory(std::uint64_t{64} << 20, "64M");  // members claim their sizes
    return true;
  }();
  (void)limited;
  const int fd = ::memfd_create("npz_fuzz", MFD_CLOEXEC);
  if (fd < 0) std::abort();
  if (::write(fd, data, size) != static_cast<ssize_t>(size)) std::abort();
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    const io::Npz z = io::read_npz(path);
    for (const auto& [name, a] : z.arrays)
      if (io::parse_npy(io::encode_npy(a, a.version), name).shape != a.shape) std::abort();
  } catch (const std::exception& e) {
    for (unsigned char c : one_line(e.what()))
      if (c < 0x20 || c == 0x7f) std::abort();
  }
  ::close(fd);
  return 0;
}
