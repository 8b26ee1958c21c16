// The few helpers that build every validation message in one shape:
//   conv2d: w in-channels is 4, expected 3 = x channels / groups (x [2,3,8,8], w [16,4,3,3])
// Entry points (ops, layers, readers, CLI) validate; kernels only assert.
//   std::invalid_argument  shapes and configuration
//   std::out_of_range      indices and labels
//   std::domain_error      NaN / Inf
//   std::length_error      sizes that overflow
// User text (paths, op names, header keys, spec lines) goes into a message only through
// quote(), so that every message stays one printable line.
#pragma once

#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "tapegrad/shape.hpp"

namespace tapegrad {

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
}  // namespace detail

// Escapes text for a one-line message: every byte or character that could end the line, cut
// the message (NUL) or rewrite the terminal comes out as an escape, the rest unchanged.
//   \\ \n \r \t                     backslash and the common controls
//   \xNN                           other C0 controls, DEL, and each byte that is not part of
//                                  valid UTF-8 (overlong forms, surrogates, > U+10FFFF)
//   \u{NNNN}                       C1 controls (U+0080-U+009F), the line and paragraph
//                                  separators U+2028/U+2029 and the bidirectional controls
//                                  (U+200E/F, U+202A-U+202E, U+2066-U+2069)
// Valid UTF-8 otherwise passes through, so non-ASCII file names stay readable. At most
// `max_bytes` bytes of the input are shown; longer text ends in "...(N bytes)".
std::string escape_text(std::string_view text, std::size_t max_bytes = 4096);

// The last guard of a whole message before it is printed: escapes what escape_text() escapes
// except the backslash, so text that already went through quote() comes out unchanged while
// text from elsewhere (a library's message quoting a user's argument raw) cannot break the line.
std::string one_line(std::string_view message, std::size_t max_bytes = 16384);

// escape_text() between single quotes, with ' escaped as \': the form every message uses for
// user text, e.g.  ref: unknown op 'conv3d'   x.npy: unsupported dtype '<f2'.
std::string quote(std::string_view text, std::size_t max_bytes = 4096);

// Throws std::invalid_argument("op: <parts...>") unless cond holds.
template <class... Parts>
void check_arg(bool cond, std::string_view op, const Parts&... parts) {
  if (!cond) throw std::invalid_argument(detail::concat(op, ": ", parts...));
}

template <class... Parts>
[[noreturn]] void fail_arg(std::string_view op, const Parts&... parts) {
  throw std::invalid_argument(detail::concat(op, ": ", parts...));
}

// "op: x must be 4-d (N,C,H,W), got [2,3]"
inline void check_rank(std::string_view op, std::string_view arg, const Shape& s, index_t rank,
                       std::string_view layout) {
  check_arg(s.rank() == rank, op, arg, " must be ", rank, "-d ", layout, ", got ", s);
}

// "op: b has shape [5], expected [4]"
inline void check_shape(std::string_view op, std::string_view arg, const Shape& got,
                        const Shape& expected) {
  check_arg(got == expected, op, arg, " has shape ", got, ", expected ", expected);
}

// "op: stride must be positive, got 0"
inline void check_positive(std::string_view op, std::string_view what, index_t v) {
  check_arg(v > 0, op, what, " must be positive, got ", v);
}

inline void check_non_negative(std::string_view op, std::string_view what, index_t v) {
  check_arg(v >= 0, op, what, " must be non-negative, got ", v);
}

}  // namespace tapegrad
