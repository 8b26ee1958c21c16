// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed (detected from the
// content, not the name), read with zlib.
//
// Layout (big-endian): two zero bytes, a type byte, the number of dimensions d, then d
// uint32 sizes, then prod(sizes) items, row-major, and nothing after them. tapegrad reads
// the type Fashion-MNIST uses, 0x08 (unsigned byte):
//   train-images-idx3-ubyte   00 00 08 03  60000 28 28   then 47,040,000 pixels
//   train-labels-idx1-ubyte   00 00 08 01  60000         then 60,000 labels
//
// Every malformed file is rejected with one line naming the file (quoted):
//   std::invalid_argument  not IDX (bad magic), an unsupported type, zero dimensions,
//                          truncated data, trailing bytes, a corrupt gzip stream
//   std::length_error      a declared size too large for memory (checked before allocating)
//   std::runtime_error     the file cannot be opened (and, from io::InputFile, a path that is
//                          not a regular file is refused before any read can block)
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "tapegrad/shape.hpp"

namespace tapegrad::io {

struct IdxArray {
  std::vector<index_t> dims;
  std::vector<std::uint8_t> data;  // prod(dims) items, row-major
};

// Reads a file (gzip or plain).
IdxArray read_idx(const std::filesystem::path& path);
// Parses the bytes of an uncompressed IDX file; `name` prefixes every error.
IdxArray parse_idx(std::string_view bytes, std::string_view name);

}  // namespace tapegrad::io
