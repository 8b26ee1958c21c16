// Memory estimates and the limit they are checked against; see include/tapegrad/memory.hpp.
#include "tapegrad/memory.hpp"

#include <malloc.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <mutex>
#include <sstream>

#include "tapegrad/errors.hpp"

namespace tapegrad::memory {

namespace {

constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();

struct MaxMemory {
  std::mutex mu;
  std::optional<Limit> value;
};
MaxMemory& max_memory() {
  static MaxMemory m;
  return m;
}

// The first whitespace-separated number of a one-line file ("max" and anything else: nullopt).
std::optional<std::uint64_t> read_number(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word.empty() || word.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  try {
    return std::stoull(word);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// "key value" lines (memory.stat); 0 when absent.
std::uint64_t stat_value(const std::string& path, std::string_view key) {
  std::ifstream in(path);
  std::string k;
  std::uint64_t v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

std::optional<std::uint64_t> meminfo_available() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  std::uint64_t kib = 0;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return mul_sat(kib, 1024);
  }
  return std::nullopt;
}

// Room left under this process's cgroup memory limit, if it has one.
std::optional<std::uint64_t> cgroup_room() {
  // Limits above 2^60 mean "none" (v1 reports 2^63 - 4096 for an unlimited group).
  auto room = [](std::optional<std::uint64_t> lim, std::optional<std::uint64_t> used,
                 std::uint64_t reclaimable) -> std::optional<std::uint64_t> {
    if (!lim || !used || *lim >= (std::uint64_t{1} << 60)) return std::nullopt;
    const std::uint64_t in_use = *used > reclaimable ? *used - reclaimable : 0;
    return *lim > in_use ? *lim - in_use : 0;
  };
  // cgroup v2: the "0::/path" line of /proc/self/cgroup.
  std::ifstream cg("/proc/self/cgroup");
  std::string line;
  while (std::getline(cg, line)) {
    if (line.rfind("0::", 0) != 0) continue;
    const std::string dir = "/sys/fs/cgroup" + line.substr(3);
    if (auto r = room(read_number(dir + "/memory.max"), read_number(dir + "/memory.current"),
                      stat_value(dir + "/memory.stat", "inactive_file")))
      return r;
  }
  // cgroup v1, as mounted in a container (the group's own directory at the mount point).
  const std::string v1 = "/sys/fs/cgroup/memory/";
  return room(read_number(v1 + "memory.limit_in_bytes"), read_number(v1 + "memory.usage_in_bytes"),
              stat_value(v1 + "memory.stat", "total_inactive_file"));
}

}  // namespace

std::uint64_t mul_sat(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? max_u64 : r;
}
std::uint64_t add_sat(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r = 0;
  return __builtin_add_overflow(a, b, &r) ? max_u64 : r;
}

std::uint64_t parse_size(std::string_view text) {
  auto bad = [&](const char* why) -> std::uint64_t {
    throw std::invalid_argument("size " + quote(text) + ": " + why +
                                "; expected a number of bytes with an optional K, M, G or T "
                                "suffix (1K = 1024), e.g. 4G or 512M");
  };
  std::size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  std::size_t int_end = i, frac_end = i;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    frac_end = i;
    if (frac_end == int_end + 1) return bad("a digit must follow the decimal point");
  }
  if (int_end == 0) return bad("it must start with a digit");
  std::string suffix(text.substr(frac_end));
  for (char& c : suffix) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  int shift = 0;
  if (suffix.empty() || suffix == "B") {
    shift = 0;
  } else {
    const std::string_view units = "KMGT";
    const auto u = units.find(suffix[0]);
    const std::string rest = suffix.substr(1);
    if (u == std::string_view::npos || !(rest.empty() || rest == "B" || rest == "IB"))
      return bad("unknown unit");
    shift = 10 * (static_cast<int>(u) + 1);
  }
  // Integer part exactly, in 128 bits; a fraction only with a unit, rounded down to a byte.
  unsigned __int128 v = 0;
  for (std::size_t k = 0; k < int_end; ++k) {
    v = v * 10 + static_cast<unsigned>(text[k] - '0');
    if (v > max_u64) return bad("more than 2^64 - 1 bytes");
  }
  v <<= shift;
  if (v > max_u64) return bad("more than 2^64 - 1 bytes");
  if (frac_end > int_end) {
    if (shift == 0) return bad("a fraction of a byte");
    // fraction digits f (at most 18 used) -> floor(f * 2^shift / 10^digits)
    unsigned __int128 num = 0, den = 1;
    for (std::size_t k = int_end + 1; k < frac_end && k < int_end + 19; ++k) {
      num = num * 10 + static_cast<unsigned>(text[k] - '0');
      den *= 10;
    }
    v += (num << shift) / den;
    if (v > max_u64) return bad("more than 2^64 - 1 bytes");
  }
  if (v == 0) return bad("it must be at least 1 byte");
  return static_cast<std::uint64_t>(v);
}

std::string format_size(std::uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024 && u < 5) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v,
                units[u]);
  return buf;
}

std::optional<Limit> available() {
  const auto mem = meminfo_available();
  const auto cg = cgroup_room();
  if (cg && (!mem || *cg < *mem)) return Limit{*cg, "room under the cgroup memory limit"};
  if (mem) return Limit{*mem, "MemAvailable in /proc/meminfo"};
  return std::nullopt;
}

std::optional<Limit> limit() {
  {
    auto& m = max_memory();
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.value) return m.value;
  }
  return available();
}

void set_max_memory(std::uint64_t bytes, std::string as_given) {
  auto& m = max_memory();
  std::lock_guard<std::mutex> lock(m.mu);
  m.value = Limit{bytes, "--max-memory " + quote(as_given)};
}

void clear_max_memory() {
  auto& m = max_memory();
  std::lock_guard<std::mutex> lock(m.mu);
  m.value.reset();
}

Estimate::Estimate(std::string command) : command_(std::move(command)) {
  add("the program itself", 1, program_bytes, "");
}

Estimate& Estimate::add(std::string what, std::uint64_t count, std::uint64_t bytes_each,
                        std::string cause) {
  const std::uint64_t b = mul_sat(count, bytes_each);
  parts_.push_back({std::move(what), std::move(cause), b});
  total_ = add_sat(total_, b);
  return *this;
}

namespace {
std::string size_text(std::uint64_t b) {
  return b == max_u64 ? "more than 16 EiB" : format_size(b);
}
}  // namespace

std::string Estimate::describe() const {
  std::string s = command_ + ": needs an estimated " + size_text(total_);
  // The largest part that comes from an argument (the program's baseline says nothing).
  const Part* big = nullptr;
  for (const Part& p : parts_)
    if (!p.cause.empty() && (!big || p.bytes > big->bytes)) big = &p;
  if (big) {
    s += " (the largest part is " + big->what + ", " + size_text(big->bytes);
    if (!big->cause.empty()) s += ", from " + big->cause;
    s += ")";
  }
  return s;
}

void Estimate::check() const {
  const auto lim = limit();
  if (!lim || total_ <= lim->bytes) return;
  throw Refused(describe() + ", more than the " + format_size(lim->bytes) + " allowed (" +
                lim->source + "); refused before allocating; --max-memory SIZE sets the limit");
}

void check_allocation(std::uint64_t bytes, std::string_view what) {
  const auto lim = limit();
  if (!lim || bytes <= lim->bytes) return;
  throw Refused(std::string(what) + " needs " + size_text(bytes) + ", more than the " +
                format_size(lim->bytes) + " allowed (" + lim->source +
                "); refused before allocating; --max-memory SIZE sets the limit");
}

bool retain_freed_memory() {
  constexpr int mmap_max = 4 * 1024 * 1024 * int(sizeof(long));  // glibc's HEAP_MAX_SIZE / 2
  const bool a = mallopt(M_MMAP_THRESHOLD, mmap_max) == 1;
  const bool b = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
  return a && b;
}

}  // namespace tapegrad::memory
