// The file an input comes from: what every reader of a user's file (.npy, network specs, IDX,
// checkpoints) opens it through, so that no input can hang, read without bound or fail with an
// unclear message.
//
//   InputFile f = InputFile::open("x.npy");  // refused before any read that could block:
//                                             //   an empty path, a missing or unreadable file,
//                                             //   a directory, a FIFO, a device, a socket
//   f.size();                                 // bytes, from fstat of the open file
//   std::string head = f.read(0, 12);         // exactly these bytes, or an error naming the file
//   f.read_into(offset, buffer, n);           // a body straight into its final buffer
//   std::string text = read_input_file("net.txt", 1 << 20);   // the whole file, at most 1 MiB
//
// The type check happens twice: stat() of the path before opening (opening a FIFO for reading
// blocks until a writer appears, and opening a device can have side effects), and fstat() of
// what was opened (O_NONBLOCK, so a path swapped for a FIFO in between cannot block either).
// Symbolic links to regular files are followed.
//
// Errors, one line each, the path quoted (quote()):
//   std::invalid_argument  empty path; not a regular file (saying what it is)
//   std::runtime_error     missing or unreadable (the system's reason); a read that fails or
//                          comes back short (the file changed while it was read)
//   std::length_error      read_input_file() of a file larger than its bound
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace tapegrad::io {

class InputFile {
 public:
  // Opens `path` for reading after checking that it is a regular file (see above).
  static InputFile open(const std::filesystem::path& path);

  InputFile(InputFile&& o) noexcept;
  InputFile& operator=(InputFile&& o) noexcept;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();

  const std::filesystem::path& path() const { return path_; }
  // The path as messages show it: quoted and escaped.
  const std::string& name() const { return name_; }
  std::uint64_t size() const { return size_; }

  // Exactly `n` bytes starting at `offset`; std::runtime_error when the file holds fewer.
  std::string read(std::uint64_t offset, std::size_t n) const;
  void read_into(std::uint64_t offset, void* dst, std::size_t n) const;

 private:
  InputFile(std::filesystem::path path, int fd, std::uint64_t size);
  std::filesystem::path path_;
  std::string name_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// The whole content of a regular file of at most `max_bytes` bytes; larger files are refused
// (std::length_error naming the file, its size and the bound) before anything is read.
std::string read_input_file(const std::filesystem::path& path, std::uint64_t max_bytes);

// Throws InputFile::open's errors for `path` without keeping it open: for callers whose reader
// opens the file itself, to refuse a FIFO or a directory before that reader blocks on it.
void check_input_file(const std::filesystem::path& path);

}  // namespace tapegrad::io
