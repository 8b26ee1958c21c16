// NumPy .npz archives: a zip of .npy members, one per named array, as numpy.savez writes them
// and numpy.load opens them (written and read with libzip). Besides arrays, an archive may hold
// other members (a checkpoint's "meta.json"); numpy.load returns those as bytes.
//
//   NpzWriter w;
//   w.add_array("conv1.w", encode_npy(shape, data));   // member "conv1.w.npy"
//   w.add_file("meta.json", text);                     // member "meta.json"
//   w.write("out/weights.npz");                        // atomically (temporary + rename)
//
//   Npz z = read_npz("out/weights.npz");
//   z.arrays: name -> NpyArray (".npy" stripped, in archive order);  z.files: other members
//
// Reading refuses, with one line naming the file: a path that is not a regular file (before
// opening), a file that is not a zip or fails libzip's consistency check, a member whose
// stored CRC-32 does not match its data (a corrupted file), members larger than memory allows
// (checked from the central directory before reading), duplicate names, and members that
// are not valid .npy files.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tapegrad/io/npy.hpp"

namespace tapegrad::io {

class NpzWriter {
 public:
  // `npy` is a whole .npy file (encode_npy); stored as member name + ".npy".
  void add_array(std::string name, std::string npy);
  void add_file(std::string name, std::string bytes);
  // Writes the archive atomically; members compressed with deflate.
  void write(const std::filesystem::path& path) const;

 private:
  std::vector<std::pair<std::string, std::string>> members_;
};

struct Npz {
  std::vector<std::pair<std::string, NpyArray>> arrays;  // archive order
  std::map<std::string, std::string> files;              // members that are not .npy
  // The raw .npy bytes of every array member (for checksums), by array name.
  std::map<std::string, std::string> raw;

  const NpyArray* find(std::string_view name) const {
    for (const auto& [n, a] : arrays)
      if (n == name) return &a;
    return nullptr;
  }
};

Npz read_npz(const std::filesystem::path& path);

}  // namespace tapegrad::io
