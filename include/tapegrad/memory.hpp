// Memory refused up front. A command adds up, from the shapes it was given and before it
// allocates anything, the bytes it will need, and refuses with one line when that is more than
// the limit, instead of failing later as a bare std::bad_alloc (or being killed by the kernel):
//
//   memory::Estimate est("ref conv2d");
//   est.add("y " + y.str() + " in 50 digits", y.numel(), sizeof(f50), "--pad '40000'");
//   est.add("x " + x.str() + " as read", x.numel(), 8, "--x 'x.npy'");
//   est.check();   // throws memory::Refused:
//   // ref conv2d: needs an estimated 96.1 GiB, more than the 22.9 GiB available (MemAvailable
//   // in /proc/meminfo); the largest part is y [1,4,80000,80000] in 50 digits (95.4 GiB, from
//   // --pad '40000'); give --max-memory SIZE to set the limit
//
// The limit: the `--max-memory` value when given (set_max_memory; it replaces the measured
// value in both directions, so a user who knows better can raise it), otherwise the memory
// available now: MemAvailable from /proc/meminfo, lowered to the room left under the process's
// cgroup memory limit when there is one (v2: memory.max; v1: memory.limit_in_bytes; the usage
// counted without the reclaimable inactive page cache). No limit can be found (no /proc): no
// refusal.
//
// Estimates are upper-bound-minded (what is live at the peak, plus the copies the command
// makes, plus a 16 MiB baseline for the program itself), not exact;
// tests/cli_bad_input_test.py checks them against the peak memory measured.
// Every count saturates at 2^64 - 1 bytes instead of overflowing.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tapegrad::memory {

// A command refused for memory: the message names the estimate, the limit and the argument
// behind the largest part of the estimate.
struct Refused : std::length_error {
  using std::length_error::length_error;
};

// "4G", "512M", "1.5GiB", "64k", "1000000" (bytes): a decimal number with an optional binary
// suffix K/M/G/T (or KiB/MiB/GiB/TiB, either case; 1K = 1024), at least 1 byte and at most
// 2^64 - 1. Throws std::invalid_argument naming the text otherwise.
std::uint64_t parse_size(std::string_view text);
// "512 B", "1.5 KiB", "22.9 GiB", "16.0 EiB".
std::string format_size(std::uint64_t bytes);

struct Limit {
  std::uint64_t bytes = 0;
  std::string source;  // "--max-memory '4G'", "MemAvailable in /proc/meminfo", ...
};

// The limit in force now (see the header comment); nullopt when none can be determined.
std::optional<Limit> limit();
// The measured part alone: MemAvailable lowered to the cgroup's room.
std::optional<Limit> available();
// --max-memory: `as_given` is the text the user typed, for messages. clear_max_memory() goes
// back to the measured limit. Process-wide; set once by the CLI before a command runs.
void set_max_memory(std::uint64_t bytes, std::string as_given);
void clear_max_memory();

// a * b and a + b on byte counts, saturating at 2^64 - 1.
std::uint64_t mul_sat(std::uint64_t a, std::uint64_t b);
std::uint64_t add_sat(std::uint64_t a, std::uint64_t b);

class Estimate {
 public:
  // Starts with the program's own baseline (code, libraries, stacks: program_bytes).
  explicit Estimate(std::string command);
  static constexpr std::uint64_t program_bytes = std::uint64_t{16} << 20;

  // `count` items of `bytes_each` bytes. `what` names them ("y [2,4,8,8] in 50 digits"),
  // `cause` is the argument they follow from ("--x 'x.npy'", "--batch 1000000000").
  Estimate& add(std::string what, std::uint64_t count, std::uint64_t bytes_each,
                std::string cause);
  std::uint64_t total() const { return total_; }
  // One line: "needs an estimated 1.2 GiB (largest part: ...)" without the verdict.
  std::string describe() const;
  // Throws Refused when total() is above limit().
  void check() const;

 private:
  struct Part {
    std::string what, cause;
    std::uint64_t bytes;
  };
  std::string command_;
  std::vector<Part> parts_;
  std::uint64_t total_ = 0;
};

// One allocation of a library reader checked on its own ("x.npy: the data of shape [...]"),
// for callers that did not estimate the whole command. Throws Refused.
void check_allocation(std::uint64_t bytes, std::string_view what);

// A training loop frees and allocates the same large tensors every step. glibc's malloc maps
// each block over its mmap threshold afresh and unmaps it on free, so every step pays page
// faults on its big activations and gradients (measured: a third of a LeNet-5 step at batch
// 64, and they do not scale with threads). This keeps freed memory in the heap for reuse
// (M_MMAP_THRESHOLD raised to glibc's maximum, 32 MiB on 64-bit, and M_TRIM_THRESHOLD to
// 1 GiB): the resident size stays at the step's high-water mark instead of returning to the
// system between steps. Returns false where glibc refused a setting. Process-wide;
// called by `tapegrad train` and the training bench, not by the library.
bool retain_freed_memory();

}  // namespace tapegrad::memory
