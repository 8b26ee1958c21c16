// Input files checked before they are read; see include/tapegrad/io/input_file.hpp.
#include "tapegrad/io/input_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "tapegrad/errors.hpp"

namespace tapegrad::io {

namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

[[noreturn]] void not_regular(const std::string& name, mode_t mode) {
  throw std::invalid_argument(name + ": is " + std::string(kind_of(mode)) +
                              ", expected a regular file");
}

[[noreturn]] void system_error(const std::string& name, const char* doing, int err) {
  throw std::runtime_error(name + ": " + doing + ": " + std::strerror(err));
}

std::string checked_name(const std::filesystem::path& path) {
  if (path.empty()) throw std::invalid_argument("empty path, expected a file name");
  return quote(path.native());
}

}  // namespace

InputFile::InputFile(std::filesystem::path path, int fd, std::uint64_t size)
    : path_(std::move(path)), name_(quote(path_.native())), fd_(fd), size_(size) {}

InputFile::InputFile(InputFile&& o) noexcept
    : path_(std::move(o.path_)), name_(std::move(o.name_)), fd_(std::exchange(o.fd_, -1)),
      size_(o.size_) {}

InputFile& InputFile::operator=(InputFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    name_ = std::move(o.name_);
    fd_ = std::exchange(o.fd_, -1);
    size_ = o.size_;
  }
  return *this;
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

InputFile InputFile::open(const std::filesystem::path& path) {
  const std::string name = checked_name(path);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) system_error(name, "cannot open", errno);
  if (!S_ISREG(st.st_mode)) not_regular(name, st.st_mode);
  int fd = -1;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) system_error(name, "cannot open", errno);
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    system_error(name, "cannot stat", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    not_regular(name, st.st_mode);
  }
  return InputFile(path, fd, static_cast<std::uint64_t>(st.st_size));
}

void InputFile::read_into(std::uint64_t offset, void* dst, std::size_t n) const {
  auto* out = static_cast<char*>(dst);
  std::size_t done = 0;
  while (done < n) {
    // At most 1 GiB per call (Linux transfers at most 0x7ffff000 bytes in one read anyway).
    const std::size_t chunk = std::min<std::size_t>(n - done, std::size_t{1} << 30);
    const ssize_t got = ::pread(fd_, out + done, chunk, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      system_error(name_, "read error", errno);
    }
    if (got == 0)
      throw std::runtime_error(name_ + ": read " + std::to_string(done) + " of " +
                               std::to_string(n) + " bytes at offset " + std::to_string(offset) +
                               ", then end of file (did the file change while it was read?)");
    done += static_cast<std::size_t>(got);
  }
}

std::string InputFile::read(std::uint64_t offset, std::size_t n) const {
  std::string s(n, '\0');
  read_into(offset, s.data(), n);
  return s;
}

std::string read_input_file(const std::filesystem::path& path, std::uint64_t max_bytes) {
  const InputFile f = InputFile::open(path);
  if (f.size() > max_bytes)
    throw std::length_error(f.name() + ": is " + std::to_string(f.size()) +
                            " bytes, more than the " + std::to_string(max_bytes) +
                            " bytes accepted for this kind of file");
  return f.read(0, static_cast<std::size_t>(f.size()));
}

void check_input_file(const std::filesystem::path& path) { (void)InputFile::open(path); }

}  // namespace tapegrad::io
