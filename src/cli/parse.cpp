// Strict option values; see parse.hpp.
#include "parse.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "tapegrad/errors.hpp"

namespace tapegrad::cli {

namespace {

std::string range_text(std::int64_t lo, std::int64_t hi) {
  return "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

// [-]digits: the sign and the magnitude; `overflow` when it does not fit in 64 bits.
bool parse_digits(std::string_view s, bool& negative, std::uint64_t& magnitude, bool& overflow) {
  negative = !s.empty() && s[0] == '-';
  const std::string_view d = negative ? s.substr(1) : s;
  if (d.empty()) return false;
  std::uint64_t v = 0;
  overflow = false;
  for (char c : d) {
    if (c < '0' || c > '9') return false;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) overflow = true;
    if (!overflow) v = v * 10 + digit;
  }
  magnitude = v;
  return true;
}

// Whether [-]digits with this sign and magnitude lies in [lo, hi]; sets `out` when it does.
bool in_range(bool negative, std::uint64_t mag, bool overflow, std::int64_t lo, std::int64_t hi,
              std::int64_t& out) {
  if (overflow) return false;
  if (negative) {
    if (mag == 0) {
      out = 0;
    } else if (mag - 1 <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      out = -static_cast<std::int64_t>(mag - 1) - 1;
    } else {
      return false;
    }
  } else {
    if (mag > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
    out = static_cast<std::int64_t>(mag);
  }
  return out >= lo && out <= hi;
}

}  // namespace

std::int64_t parse_int(std::string_view text, std::string_view option, std::int64_t lo,
                       std::int64_t hi) {
  bool neg = false, overflow = false;
  std::uint64_t mag = 0;
  std::int64_t v = 0;
  if (!parse_digits(text, neg, mag, overflow) || !in_range(neg, mag, overflow, lo, hi, v))
    throw BadInput(std::string(option) + ": expected an integer in " + range_text(lo, hi) +
                   ", got " + quote(text, 64));
  return v;
}

std::uint64_t parse_uint64(std::string_view text, std::string_view option) {
  bool neg = false, overflow = false;
  std::uint64_t mag = 0;
  if (!parse_digits(text, neg, mag, overflow) || neg || overflow)
    throw BadInput(std::string(option) + ": expected an integer in [0, 18446744073709551615], got " +
                   quote(text, 64));
  return mag;
}

double parse_real(std::string_view text, std::string_view option, double lo, double hi) {
  auto bad = [&]() -> double {
    char range[96];
    std::snprintf(range, sizeof range, "[%g, %g]", lo, hi);
    throw BadInput(std::string(option) + ": expected a finite number in " + range + ", got " +
                   quote(text, 64));
  };
  // strtod also takes leading spaces, hex floats, "inf" and "nan": allow only plain decimals.
  if (text.empty() || text.size() > 64) return bad();
  for (char c : text)
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+'))
      return bad();
  if (text[0] == '+' || text[0] == 'e' || text[0] == 'E') return bad();
  const std::string s(text);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  // ERANGE on underflow still gives the correctly rounded tiny value; only overflow is refused.
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return bad();
  if (!(v >= lo && v <= hi)) return bad();
  return v;
}

std::array<std::int64_t, 2> parse_pair(std::string_view text, std::string_view option,
                                       std::int64_t lo, std::int64_t hi) {
  auto one = [&](std::string_view s) {
    bool neg = false, overflow = false;
    std::uint64_t mag = 0;
    std::int64_t v = 0;
    if (!parse_digits(s, neg, mag, overflow) || !in_range(neg, mag, overflow, lo, hi, v))
      throw BadInput(std::string(option) + ": expected N or H,W with integers in " +
                     range_text(lo, hi) + ", got " + quote(text, 64));
    return v;
  };
  const auto comma = text.find(',');
  if (comma == std::string_view::npos) {
    const auto v = one(text);
    return {v, v};
  }
  return {one(text.substr(0, comma)), one(text.substr(comma + 1))};
}

std::vector<std::int64_t> parse_int_list(std::string_view text, std::string_view option,
                                         std::size_t count, std::string_view names,
                                         std::int64_t lo, std::int64_t hi) {
  auto bad = [&](const std::string& why) {
    throw BadInput(std::string(option) + ": expected " + std::to_string(count) +
                   " integers " + std::string(names) + ", " + why + ", got " + quote(text, 200));
  };
  std::vector<std::int64_t> v;
  std::size_t start = 0;
  while (true) {
    const auto comma = text.find(',', start);
    const std::string_view item =
        text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    bool neg = false, overflow = false;
    std::uint64_t mag = 0;
    std::int64_t x = 0;
    if (!parse_digits(item, neg, mag, overflow))
      bad("item " + std::to_string(v.size() + 1) + (item.empty() ? " is empty" : " is not an integer"));
    if (v.size() == count) bad("more than " + std::to_string(count) + " given");
    if (!in_range(neg, mag, overflow, lo, hi, x))
      bad("item " + std::to_string(v.size() + 1) + " is outside " + range_text(lo, hi));
    v.push_back(x);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (v.size() != count) bad("only " + std::to_string(v.size()) + " given");
  return v;
}

void check_path_arg(std::string_view text, std::string_view option) {
  if (text.empty()) throw BadInput(std::string(option) + ": the path is empty");
}

}  // namespace tapegrad::cli
