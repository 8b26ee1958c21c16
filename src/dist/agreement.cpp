// The start-up agreement; see include/tapegrad/dist/agreement.hpp.
#include "tapegrad/dist/agreement.hpp"

#include <zlib.h>

#include <climits>
#include <cstdio>
#include <stdexcept>

#include "tapegrad/errors.hpp"

namespace tapegrad::dist {

namespace {

// What one rank brings, as bytes: 'E' and the error, or 'F' and the fields, each string as
// its decimal length, ':' and its bytes (exact for any bytes, NUL included).
void put(std::string& out, const std::string& s) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}

struct Brought {
  bool failed = false;
  std::string error;
  std::vector<Field> fields;
};

// Parses put()'s strings; `ok` turns false on malformed bytes (another tapegrad's encoding).
std::string take(const std::string& in, std::size_t& at, bool& ok) {
  const std::size_t colon = in.find(':', at);
  if (colon == std::string::npos || colon == at || colon - at > 18) return ok = false, std::string();
  std::size_t n = 0;
  for (std::size_t i = at; i < colon; ++i) {
    if (in[i] < '0' || in[i] > '9') return ok = false, std::string();
    n = n * 10 + static_cast<std::size_t>(in[i] - '0');
  }
  if (n > in.size() - colon - 1) return ok = false, std::string();
  at = colon + 1 + n;
  return in.substr(colon + 1, n);
}

Brought parse(const std::string& in) {
  Brought b;
  bool ok = !in.empty();
  std::size_t at = 1;
  if (ok && in[0] == 'E') {
    b.failed = true;
    b.error = take(in, at, ok);
  } else if (ok && in[0] == 'F') {
    while (ok && at < in.size()) {
      Field f;
      f.name = take(in, at, ok);
      f.value = take(in, at, ok);
      f.hint = take(in, at, ok);
      b.fields.push_back(std::move(f));
    }
  } else {
    ok = false;
  }
  if (!ok) b = {true, "unreadable start-up agreement (another tapegrad build?)", {}};
  return b;
}

}  // namespace

std::string agree(const Job& job, const std::vector<Field>& fields, const std::string& error) {
  std::string mine;
  if (!error.empty()) {
    mine = "E";
    put(mine, error);
  } else {
    mine = "F";
    for (const Field& f : fields) put(mine, f.name), put(mine, f.value), put(mine, f.hint);
  }
  const std::vector<std::string> all = job.allgather(mine);
  std::vector<Brought> ranks;
  for (const auto& s : all) ranks.push_back(parse(s));

  // Errors first: one message if every rank failed alike, else the lowest failing rank's.
  int failed = -1;
  bool same = true;
  for (std::size_t r = 0; r < ranks.size(); ++r) {
    if (!ranks[r].failed) {
      same = false;
      continue;
    }
    if (failed < 0) failed = static_cast<int>(r);
    else if (ranks[r].error != ranks[static_cast<std::size_t>(failed)].error) same = false;
  }
  if (failed >= 0) {
    const std::string& e = ranks[static_cast<std::size_t>(failed)].error;
    if (same) return e;
    std::string m = "rank ";
    m += std::to_string(failed);
    m += ": ";
    m += e;
    return m;
  }
  // Then the fields, in rank 0's order.
  const std::vector<Field>& ref = ranks[0].fields;
  for (std::size_t r = 1; r < ranks.size(); ++r) {
    const std::vector<Field>& f = ranks[r].fields;
    bool layout = f.size() == ref.size();
    for (std::size_t i = 0; layout && i < f.size(); ++i) layout = f[i].name == ref[i].name;
    if (!layout) {
      std::string m = "the ranks disagree on what they compare: rank ";
      m += std::to_string(r);
      m += " runs another tapegrad build than rank 0 (every rank must run the same build)";
      return m;
    }
  }
  for (std::size_t i = 0; i < ref.size(); ++i)
    for (std::size_t r = 1; r < ranks.size(); ++r) {
      const Field& f = ranks[r].fields[i];
      if (f.value == ref[i].value) continue;
      std::string m = "the ranks disagree on ";
      m += ref[i].name;
      m += ": rank 0 has ";
      m += quote(ref[i].value, 200);
      m += ", rank ";
      m += std::to_string(r);
      m += " has ";
      m += quote(f.value, 200);
      if (!ref[i].hint.empty()) {
        m += "; ";
        m += ref[i].hint;
      }
      return m;
    }
  return {};
}

std::uint32_t crc32_of(const void* data, std::size_t n, std::uint32_t crc) {
  uLong c = crc;
  const auto* p = static_cast<const Bytef*>(data);
  while (n > 0) {  // zlib takes uInt lengths
    const uInt chunk = n > (1u << 30) ? (1u << 30) : static_cast<uInt>(n);
    c = crc32(c, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<std::uint32_t>(c);
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(v));
  return buf;
}

}  // namespace tapegrad::dist
