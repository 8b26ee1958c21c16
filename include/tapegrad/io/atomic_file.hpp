// Atomic output files: write to a temporary file in the same directory, then rename over the
// destination. A reader never sees a half-written file, and a failure leaves the destination
// as it was (absent or the old contents).
//
//   write_file_atomic("out/y.npy", bytes);          // one file
//
//   AtomicBatch batch;                               // several files, all or (almost) nothing:
//   batch.stage("out/y.npy", y_bytes);               //   every temporary is written first,
//   batch.stage("out/dx.npy", dx_bytes);             //   then all are renamed in turn
//   batch.commit();
//
// Only a failure between two renames of one batch (e.g. the directory vanishing) can leave part
// of a batch in place; each file is still whole.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tapegrad/errors.hpp"

namespace tapegrad::io {

namespace detail {

// A temporary name next to `dest`: "<dest>.tmp.<pid>.<counter>", unique within this process and
// across processes; same directory, so the rename never crosses file systems.
inline std::filesystem::path temp_path_for(const std::filesystem::path& dest) {
  static std::atomic<unsigned long> counter{0};
  std::filesystem::path tmp = dest;
  tmp += ".tmp." + std::to_string(static_cast<long>(::getpid())) + "." +
         std::to_string(counter.fetch_add(1));
  return tmp;
}

// Writes bytes to `tmp`; throws std::runtime_error naming `dest` on failure (removing `tmp`).
inline void write_temp(const std::filesystem::path& tmp, const std::filesystem::path& dest,
                       std::string_view bytes) {
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw std::runtime_error("cannot write " + quote(dest.native()) + ": cannot create " +
                               quote(tmp.native()));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      out.close();
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw std::runtime_error("cannot write " + quote(dest.native()) + ": write failed");
    }
  }
}

inline void rename_into_place(const std::filesystem::path& tmp, const std::filesystem::path& dest) {
  std::error_code ec;
  std::filesystem::rename(tmp, dest, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw std::runtime_error("cannot write " + quote(dest.native()) + ": " + ec.message());
  }
}

}  // namespace detail

// Writes `bytes` to `dest` atomically (temporary file + rename). Throws std::runtime_error
// naming the file on failure; `dest` is then untouched.
inline void write_file_atomic(const std::filesystem::path& dest, std::string_view bytes) {
  const auto tmp = detail::temp_path_for(dest);
  detail::write_temp(tmp, dest, bytes);
  detail::rename_into_place(tmp, dest);
}

// Several outputs written together: stage() writes each temporary at once (so a full disk shows
// up before anything is renamed); commit() renames them all. Destroying an uncommitted batch
// removes its temporaries.
class AtomicBatch {
 public:
  AtomicBatch() = default;
  AtomicBatch(const AtomicBatch&) = delete;
  AtomicBatch& operator=(const AtomicBatch&) = delete;
  ~AtomicBatch() { discard(); }

  void stage(const std::filesystem::path& dest, std::string_view bytes) {
    auto tmp = detail::temp_path_for(dest);
    detail::write_temp(tmp, dest, bytes);
    staged_.emplace_back(std::move(tmp), dest);
  }

  void commit() {
    for (std::size_t i = 0; i < staged_.size(); ++i) {
      try {
        detail::rename_into_place(staged_[i].first, staged_[i].second);
      } catch (...) {
        staged_.erase(staged_.begin(), staged_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
        throw;  // the destructor removes the temporaries not yet renamed
      }
    }
    staged_.clear();
  }

  void discard() noexcept {
    for (auto& [tmp, dest] : staged_) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
    }
    staged_.clear();
  }

 private:
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> staged_;
};

}  // namespace tapegrad::io
