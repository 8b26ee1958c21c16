// escape_text() / quote(): user text made safe for a one-line message; see errors.hpp.
#include "tapegrad/errors.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace tapegrad {

namespace {

// The length of the valid UTF-8 sequence starting at s[i] and its code point, or 0 when the
// byte there does not start one (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF).
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  std::size_t len = 0;
  std::uint32_t min = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2, cp = c & 0x1fu, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, cp = c & 0x0fu, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, cp = c & 0x07u, min = 0x10000;
  } else {
    return 0;  // ASCII is handled by the caller; 0x80-0xc1 and 0xf5-0xff never start one
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3fu);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

// Code points that are valid but would break a line or reorder what the terminal shows.
bool unsafe_code_point(std::uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0x200e ||
         cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

void append_hex_byte(std::string& out, unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02x", c);
  out += buf;
}

std::string escape(std::string_view text, std::size_t max_bytes, bool quote,
                   bool backslash = true) {
  const std::string_view shown = text.substr(0, std::min(text.size(), max_bytes));
  std::string out;
  out.reserve(shown.size() + 2);
  if (quote) out += '\'';
  for (std::size_t i = 0; i < shown.size();) {
    const auto c = static_cast<unsigned char>(shown[i]);
    if (c < 0x80) {
      switch (c) {
        case '\\': out += backslash ? "\\\\" : "\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\'':
          out += quote ? "\\'" : "'";
          break;
        default:
          if (c < 0x20 || c == 0x7f)
            append_hex_byte(out, c);
          else
            out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    std::uint32_t cp = 0;
    // A sequence cut by the max_bytes limit is judged on the whole text, so a valid character
    // at the cut is not shown as garbage bytes.
    const std::size_t len = utf8_sequence(text, i, cp);
    if (len == 0) {
      append_hex_byte(out, c);
      ++i;
    } else if (unsafe_code_point(cp)) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "\\u{%04x}", static_cast<unsigned>(cp));
      out += buf;
      i += len;
    } else {
      out.append(text.substr(i, len));
      i += len;
    }
  }
  if (quote) out += '\'';
  if (text.size() > shown.size()) {
    out += "...(";
    out += std::to_string(text.size());
    out += " bytes)";
  }
  return out;
}

}  // namespace

std::string escape_text(std::string_view text, std::size_t max_bytes) {
  return escape(text, max_bytes, false);
}

std::string one_line(std::string_view message, std::size_t max_bytes) {
  return escape(message, max_bytes, false, false);
}

std::string quote(std::string_view text, std::size_t max_bytes) {
  return escape(text, max_bytes, true);
}

}  // namespace tapegrad
