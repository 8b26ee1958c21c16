// IDX reading; see include/tapegrad/io/idx.hpp.
#include "tapegrad/io/idx.hpp"

#include <zlib.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "tapegrad/errors.hpp"
#include "tapegrad/io/input_file.hpp"
#include "tapegrad/memory.hpp"

namespace tapegrad::io {

namespace {

[[noreturn]] void bad(std::string_view name, const std::string& what) {
  throw std::invalid_argument(std::string(name) + ": " + what);
}

std::string hex_byte(unsigned v) {
  const char* digits = "0123456789abcdef";
  std::string s = "0x";
  s += digits[(v >> 4) & 15];
  s += digits[v & 15];
  return s;
}

// A source of bytes: either a buffer or a gzip/plain file through zlib.
class Reader {
 public:
  virtual ~Reader() = default;
  // Up to n bytes into dst; returns how many were read (fewer only at the end).
  virtual std::size_t read(void* dst, std::size_t n) = 0;
};

class BufferReader : public Reader {
 public:
  explicit BufferReader(std::string_view b) : b_(b) {}
  std::size_t read(void* dst, std::size_t n) override {
    const std::size_t k = std::min(n, b_.size() - pos_);
    if (k) std::memcpy(dst, b_.data() + pos_, k);  // dst may be null when n is 0
    pos_ += k;
    return k;
  }

 private:
  std::string_view b_;
  std::size_t pos_ = 0;
};

class GzReader : public Reader {
 public:
  GzReader(const std::filesystem::path& path, std::string name) : name_(std::move(name)) {
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) throw std::runtime_error(name_ + ": cannot open");
    gzbuffer(f_, 1 << 17);
  }
  ~GzReader() override {
    if (f_) gzclose(f_);
  }
  std::size_t read(void* dst, std::size_t n) override {
    std::size_t done = 0;
    auto* out = static_cast<unsigned char*>(dst);
    while (done < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - done, 1u << 30));
      const int got = gzread(f_, out + done, chunk);
      if (got < 0) {
        int err = 0;
        const char* msg = gzerror(f_, &err);
        bad(name_, std::string("corrupt gzip data (") + (msg ? msg : "zlib error") + ")");
      }
      if (got == 0) {
        int err = 0;
        const char* msg = gzerror(f_, &err);
        if (err != Z_OK && err != Z_BUF_ERROR)
          bad(name_, std::string("corrupt gzip data (") + (msg ? msg : "zlib error") + ")");
        // Z_BUF_ERROR at the end: the gzip stream itself is cut short.
        if (err == Z_BUF_ERROR) bad(name_, "truncated gzip stream");
        break;
      }
      done += static_cast<std::size_t>(got);
    }
    return done;
  }

 private:
  gzFile f_ = nullptr;
  std::string name_;
};

IdxArray parse(Reader& in, const std::string& name) {
  unsigned char head[4];
  if (in.read(head, 4) != 4) bad(name, "truncated: shorter than the 4-byte IDX magic");
  if (head[0] != 0 || head[1] != 0)
    bad(name, "not an IDX file (the first two bytes are " + hex_byte(head[0]) + " " +
                  hex_byte(head[1]) + ", expected 0x00 0x00)");
  if (head[2] != 0x08)
    bad(name, "IDX type " + hex_byte(head[2]) +
                  " is not supported (tapegrad reads unsigned bytes, type 0x08)");
  const unsigned nd = head[3];
  if (nd == 0) bad(name, "IDX header declares 0 dimensions");
  IdxArray a;
  std::uint64_t count = 1;
  std::string shape;
  for (unsigned d = 0; d < nd; ++d) {
    unsigned char b[4];
    if (in.read(b, 4) != 4)
      bad(name, "truncated header: " + std::to_string(nd) + " dimensions declared, " +
                    std::to_string(d) + " present");
    const std::uint64_t size = (std::uint64_t{b[0]} << 24) | (std::uint64_t{b[1]} << 16) |
                               (std::uint64_t{b[2]} << 8) | std::uint64_t{b[3]};
    a.dims.push_back(static_cast<index_t>(size));
    count = memory::mul_sat(count, size);
    shape += (d ? "x" : "") + std::to_string(size);
  }
  if (count > static_cast<std::uint64_t>(Shape::max_numel))
    throw std::length_error(name + ": IDX shape " + shape + " is too large");
  memory::check_allocation(count, name + ": the IDX data of shape " + shape);
  a.data.resize(static_cast<std::size_t>(count));
  const std::size_t got = in.read(a.data.data(), a.data.size());
  if (got != a.data.size())
    bad(name, "truncated: the header declares " + shape + " = " + std::to_string(count) +
                  " bytes of data, the file holds " + std::to_string(got));
  unsigned char extra;
  if (in.read(&extra, 1) != 0)
    bad(name, "trailing bytes after the " + std::to_string(count) + " bytes the header declares (" +
                  shape + ")");
  return a;
}

}  // namespace

IdxArray parse_idx(std::string_view bytes, std::string_view name) {
  BufferReader r(bytes);
  return parse(r, std::string(name));
}

IdxArray read_idx(const std::filesystem::path& path) {
  check_input_file(path);  // a FIFO or directory is refused before zlib could block on it
  const std::string name = quote(path.string());
  GzReader r(path, name);
  return parse(r, name);
}

}  // namespace tapegrad::io
