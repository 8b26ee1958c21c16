// .npy reading and writing; see include/tapegrad/io/npy.hpp for the format and the errors.
#include "tapegrad/io/npy.hpp"

#include "tapegrad/half.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <algorithm>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "tapegrad/errors.hpp"
#include "tapegrad/io/atomic_file.hpp"
#include "tapegrad/io/input_file.hpp"
#include "tapegrad/memory.hpp"

namespace tapegrad::io {

static_assert(std::endian::native == std::endian::little,
              "tapegrad's .npy reader copies little-endian bytes directly");
static_assert(sizeof(float) == 4 && sizeof(double) == 8);

namespace {

constexpr std::string_view magic = "\x93NUMPY";

std::size_t itemsize(NpyDtype d) { return dtype_size(d); }

// `name` is the raw file name; every message shows it quoted.
[[noreturn]] void bad(std::string_view name, const std::string& what) {
  throw std::invalid_argument(quote(name) + ": " + what);
}
[[noreturn]] void too_long(std::string_view name, const std::string& what) {
  throw std::length_error(quote(name) + ": " + what);
}

// ---- a small parser for the header dict, which is a Python literal such as
//   {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::string_view name) : s_(text), name_(name) {}

  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool peek(char c) {
    skip_ws();
    return i_ < s_.size() && s_[i_] == c;
  }
  void expect(char c) {
    if (!peek(c)) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  bool accept(char c) {
    if (!peek(c)) return false;
    ++i_;
    return true;
  }
  std::string string_literal() {
    skip_ws();
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) fail("expected a quoted string");
    const char q = s_[i_++];
    const auto end = s_.find(q, i_);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string out(s_.substr(i_, end - i_));
    if (out.find('\\') != std::string::npos) fail("escape sequences are not supported");
    if (out.find('\n') != std::string::npos) fail("a newline inside a string");
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    skip_ws();
    bool v = false;
    if (s_.substr(i_, 4) == "True") {
      i_ += 4, v = true;
    } else if (s_.substr(i_, 5) == "False") {
      i_ += 5, v = false;
    } else {
      fail("expected True or False");
    }
    if (i_ < s_.size() && identifier_char(s_[i_])) fail("expected True or False");
    return v;
  }
  // A dimension: a Python 3 decimal integer literal, as ast.literal_eval (NumPy's reader)
  // takes it: [1-9](_?[0-9])* or 0(_?0)*, so no leading zeros ("03" is a SyntaxError there);
  // NumPy also drops a Python 2 'L' suffix. Hex, octal, signs, floats and True are refused.
  index_t integer() {
    skip_ws();
    if (i_ < s_.size() && (s_[i_] == '-' || s_[i_] == '+'))
      fail(s_[i_] == '-' ? "negative dimension in shape" : "a sign before a dimension");
    if (i_ >= s_.size() || s_[i_] < '0' || s_[i_] > '9') fail("expected an integer");
    const std::size_t start = i_;
    const bool leading_zero = s_[i_] == '0';
    index_t v = 0;
    bool overflow = false;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '_') {
        if (i_ + 1 >= s_.size() || s_[i_ + 1] < '0' || s_[i_ + 1] > '9')
          fail("'_' must stand between two digits");
        ++i_;
        continue;
      }
      if (c < '0' || c > '9') break;
      const index_t digit = c - '0';
      if (leading_zero && digit != 0)
        fail("leading zeros in the dimension " + quote(s_.substr(start, i_ + 1 - start)) +
             " (NumPy rejects them, as Python 3 does)");
      if (v > (std::numeric_limits<index_t>::max() - digit) / 10) overflow = true;
      if (!overflow) v = v * 10 + digit;
      ++i_;
    }
    if (i_ < s_.size() && s_[i_] == 'L') ++i_;  // Python 2 long suffix, dropped by NumPy
    if (i_ < s_.size() && (identifier_char(s_[i_]) || s_[i_] == '.'))
      fail("a dimension must be a decimal integer");
    if (overflow)
      too_long(name_, ".npy header: the dimension " + quote(s_.substr(start, i_ - start), 40) +
                          " does not fit in 64 bits");
    return v;
  }
  // "()", "(3,)", "(2, 3)", "(2, 3,)"; at most npy_max_dims entries.
  std::vector<index_t> tuple() {
    expect('(');
    std::vector<index_t> dims;
    if (accept(')')) return dims;
    while (true) {
      if (static_cast<index_t>(dims.size()) == npy_max_dims)
        bad(name_, ".npy shape has more than " + std::to_string(npy_max_dims) +
                       " dimensions, NumPy's limit (NPY_MAXDIMS)");
      dims.push_back(integer());
      const bool comma = accept(',');
      if (accept(')')) {
        if (dims.size() == 1 && !comma) fail("a 1-tuple needs a trailing comma: (n,)");
        return dims;
      }
      if (!comma) fail("expected ',' or ')' in shape");
    }
  }
  bool at_end() {
    skip_ws();
    return i_ == s_.size();
  }
  std::size_t offset() const { return i_; }
  [[noreturn]] void fail(const std::string& what) const {
    // The header's start (where the dict is), escaped; its padding is not worth showing.
    std::string_view shown = s_.substr(0, 120);
    while (!shown.empty() && (shown.back() == ' ' || shown.back() == '\n'))
      shown.remove_suffix(1);
    bad(name_, "malformed .npy header (" + what + " at offset " + std::to_string(i_) +
                   "): " + quote(shown) + (s_.size() > 120 ? "..." : ""));
  }

 private:
  static bool identifier_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
  }

  std::string_view s_;
  std::string_view name_;
  std::size_t i_ = 0;
};

// Every dtype this reader and writer know, once: its descr kind (after the byte-order
// character), its NumPy / ml_dtypes name, the name the errors show, and its element size.
struct DtypeFacts {
  NpyDtype dtype;
  const char* descr;  // as written: '<' + kind
  const char* name;
  const char* shown;
  std::size_t size;
};
constexpr DtypeFacts dtype_table[] = {
    {NpyDtype::f4, "<f4", "float32", "float32", 4},
    {NpyDtype::f8, "<f8", "float64", "float64", 8},
    {NpyDtype::i8, "<i8", "int64", "int64", 8},
    {NpyDtype::f2, "<f2", "float16", "float16", 2},
    {NpyDtype::bf16, "<V2", "bfloat16", "ml_dtypes bfloat16", 2},
    {NpyDtype::u2, "<u2", "uint16", "uint16", 2},
};
const DtypeFacts& facts(NpyDtype d) {
  for (const DtypeFacts& f : dtype_table)
    if (f.dtype == d) return f;
  return dtype_table[1];  // unreachable: every enumerator has a row
}

NpyDtype parse_descr(const std::string& d, std::string_view name) {
  auto unsupported = [&](const std::string& why) -> NpyDtype {
    std::string expected;
    for (const DtypeFacts& f : dtype_table) {
      if (!expected.empty()) expected += &f == std::end(dtype_table) - 1 ? " or " : ", ";
      expected += std::string("'") + f.descr + "' (" + f.shown + ")";
    }
    bad(name, "unsupported dtype " + quote(d) + why + "; expected " + expected);
  };
  if (d == "bfloat16") return NpyDtype::bf16;  // a header written with str(dtype)
  if (d.size() != 3) return unsupported("");
  const char order = d[0];
  const std::string kind = d.substr(1);
  const DtypeFacts* f = nullptr;
  for (const DtypeFacts& row : dtype_table)
    if (kind == row.descr + 1) f = &row;
  if (!f) return unsupported("");
  if (order == '>') return unsupported(" (big-endian)");
  // '=' is native order, little-endian here (asserted above); '|' means "not applicable",
  // which NumPy only writes for 1-byte types and void ones, so it is valid for V2 alone.
  if (order != '<' && order != '=' && !(order == '|' && f->dtype == NpyDtype::bf16))
    return unsupported("");
  return f->dtype;
}

std::string shape_tuple(const Shape& s) {
  std::string t = "(";
  for (index_t i = 0; i < s.rank(); ++i) {
    if (i) t += ", ";
    t += std::to_string(s[i]);
  }
  if (s.rank() == 1) t += ",";
  return t + ")";
}

template <class V>
std::string encode(NpyDtype dtype, const Shape& shape, const V& data, int version) {
  check_arg(static_cast<index_t>(data.size()) == shape.numel(), "write_npy", "shape ", shape,
            " needs ", shape.numel(), " elements, got ", data.size());
  check_arg(version == 1 || version == 2, "write_npy", "format version must be 1 or 2, got ",
            version);
  check_arg(shape.rank() <= npy_max_dims, "write_npy", "shape ", shape, " has ",
            shape.rank(), " dimensions, more than NumPy's limit of ", npy_max_dims);
  std::string dict = std::string("{'descr': '") + dtype_descr(dtype) +
                     "', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  // Pad with spaces so that the data starts at a multiple of 64 bytes (as NumPy does), the
  // header ending in '\n'.
  auto build = [&](int v) {
    const std::size_t prefix = v == 1 ? 10 : 12;
    const std::size_t unpadded = prefix + dict.size() + 1;
    const std::size_t total = (unpadded + 63) / 64 * 64;
    std::string header = dict + std::string(total - unpadded, ' ') + "\n";
    return header;
  };
  std::string header = build(version);
  if (version == 1 && header.size() > 65535) {
    version = 2;
    header = build(2);
  }
  std::string out(magic);
  out += static_cast<char>(version);
  out += '\0';
  const auto len = static_cast<std::uint32_t>(header.size());
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  if (version == 2) {
    out += static_cast<char>((len >> 16) & 0xff);
    out += static_cast<char>((len >> 24) & 0xff);
  }
  out += header;
  const std::size_t nbytes = data.size() * sizeof(typename V::value_type);
  const std::size_t start = out.size();
  out.resize(start + nbytes);
  if (nbytes) std::memcpy(out.data() + start, data.data(), nbytes);
  return out;
}

// Correct rounding of an f50 to a binary format F: start from the conversion the library gives
// (at most an ulp off, whatever its rounding), then pick, among it and its two neighbours, the one
// nearest to x in f50 arithmetic (exact: the differences are tiny next to 168 bits), ties to the
// even significand.
template <class F>
F round_once(const f50& x) {
  if (boost::multiprecision::isnan(x)) return std::numeric_limits<F>::quiet_NaN();
  const F c = static_cast<F>(x);
  if (std::isinf(c)) {
    // Overflow threshold: values at or beyond max + ulp(max)/2 round to infinity.
    const F mx = std::numeric_limits<F>::max();
    const f50 half_ulp = (f50(mx) - f50(std::nextafter(mx, F(0)))) / 2;
    const f50 ax = abs(x);
    if (ax >= f50(mx) + half_ulp) return c;
    return x < 0 ? -mx : mx;
  }
  F best = c;
  f50 best_err = abs(x - f50(c));
  for (F cand : {std::nextafter(c, -std::numeric_limits<F>::infinity()),
                 std::nextafter(c, std::numeric_limits<F>::infinity())}) {
    if (std::isinf(cand)) continue;
    const f50 err = abs(x - f50(cand));
    if (err < best_err) {
      best = cand, best_err = err;
    } else if (err == best_err) {
      // tie: the even significand (its last bit is 0)
      using U = std::conditional_t<sizeof(F) == 4, std::uint32_t, std::uint64_t>;
      if ((std::bit_cast<U>(cand) & 1u) == 0) best = cand;
    }
  }
  if (best == 0 && x < 0) return -F(0);
  return best;
}

}  // namespace

float round_to_float(const f50& x) { return round_once<float>(x); }
double round_to_double(const f50& x) { return round_once<double>(x); }

namespace {
// x rounded to a float with round-to-odd: x when it is a float, else of the two floats around
// x the one with an odd significand (beyond the largest finite: the largest finite, odd).
float round_to_odd_float(const f50& x) {
  const float c = round_once<float>(x);
  if (std::isnan(c)) return c;
  if (std::isinf(c)) return std::copysign(std::numeric_limits<float>::max(), c);
  if (f50(c) == x) return c;
  if (std::bit_cast<std::uint32_t>(c) & 1u) return c;
  return std::nextafter(c, f50(c) < x ? std::numeric_limits<float>::infinity()
                                      : -std::numeric_limits<float>::infinity());
}
}  // namespace

float round_to_half(const f50& x) { return tapegrad::round_to_half(round_to_odd_float(x)); }
float round_to_bfloat16(const f50& x) {
  return tapegrad::round_to_bfloat16(round_to_odd_float(x));
}

const char* dtype_name(NpyDtype d) { return facts(d).name; }
const char* dtype_descr(NpyDtype d) { return facts(d).descr; }
std::size_t dtype_size(NpyDtype d) { return facts(d).size; }

namespace {

// The preamble: magic, version, header length (the header must fit in the file).
struct Preamble {
  int major = 1;
  std::uint64_t prefix = 10, header_len = 0;
};

Preamble parse_preamble(std::string_view first, std::uint64_t file_size, std::string_view name) {
  if (first.size() < 10 || first.substr(0, 6) != magic)
    bad(name, "not a .npy file (missing the \\x93NUMPY magic)");
  Preamble p;
  p.major = static_cast<unsigned char>(first[6]);
  const int minor = static_cast<unsigned char>(first[7]);
  if ((p.major != 1 && p.major != 2) || minor != 0)
    bad(name, ".npy format version " + std::to_string(p.major) + "." + std::to_string(minor) +
                  " is not supported (expected 1.0 or 2.0)");
  p.prefix = p.major == 1 ? 10 : 12;
  if (first.size() < p.prefix) bad(name, "truncated .npy preamble");
  auto byte = [&](std::size_t i) {
    return static_cast<std::uint64_t>(static_cast<unsigned char>(first[i]));
  };
  p.header_len = byte(8) | (byte(9) << 8);
  if (p.major == 2) p.header_len |= (byte(10) << 16) | (byte(11) << 24);
  if (p.header_len > file_size - p.prefix)
    bad(name, ".npy header length " + std::to_string(p.header_len) +
                  " runs past the end of the file (" + std::to_string(file_size) + " bytes)");
  return p;
}

bool header_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The header dict, from `text`: the whole header when `complete`, else its first bytes (the
// caller checks that the rest is padding). Then NumPy's size limits and the data's extent.
NpyHeader parse_header(std::string_view text, bool complete, const Preamble& pre,
                       std::uint64_t file_size, std::string_view name) {
  if (complete && (text.empty() || text.back() != '\n'))
    bad(name, "malformed .npy header (it must end with a newline)");
  HeaderParser p(text, name);
  std::string descr;
  bool fortran = false;
  std::vector<index_t> dims;
  bool have_descr = false, have_order = false, have_shape = false;
  p.expect('{');
  while (!p.accept('}')) {
    const std::string key = p.string_literal();
    p.expect(':');
    if (key == "descr") {
      if (have_descr) p.fail("duplicate key 'descr'");
      descr = p.string_literal(), have_descr = true;
    } else if (key == "fortran_order") {
      if (have_order) p.fail("duplicate key 'fortran_order'");
      fortran = p.boolean(), have_order = true;
    } else if (key == "shape") {
      if (have_shape) p.fail("duplicate key 'shape'");
      dims = p.tuple(), have_shape = true;
    } else {
      p.fail("unexpected key " + quote(key, 64));
    }
    if (!p.accept(',')) {
      p.expect('}');
      break;
    }
  }
  if (!p.at_end()) {
    p.fail(complete ? "text after the closing '}'"
                    : "text after the closing '}' (only padding may follow the dict)");
  }
  if (!have_descr || !have_order || !have_shape)
    p.fail(std::string("missing key '") +
           (!have_descr   ? "descr"
            : !have_order ? "fortran_order"
                          : "shape") +
           "'");
  if (fortran) bad(name, "Fortran-order arrays are not supported (write with C order)");

  NpyHeader h;
  h.version = pre.major;
  h.dtype = parse_descr(descr, name);
  // NumPy's own limit first ("array is too big"): the nonzero dimensions times the item size
  // must fit in a signed 64-bit size, even when a zero dimension leaves no element at all.
  std::uint64_t bytes_nonzero = itemsize(h.dtype);
  for (index_t d : dims) {
    if (d == 0) continue;
    if (__builtin_mul_overflow(bytes_nonzero, static_cast<std::uint64_t>(d), &bytes_nonzero) ||
        bytes_nonzero > static_cast<std::uint64_t>(std::numeric_limits<index_t>::max())) {
      std::string t = "(";
      for (std::size_t i = 0; i < dims.size(); ++i) t += (i ? ", " : "") + std::to_string(dims[i]);
      too_long(name, ".npy shape " + t + (dims.size() == 1 ? ",)" : ")") + " of " +
                         dtype_name(h.dtype) +
                         ": its byte size overflows 64 bits (NumPy: array is too big)");
    }
  }
  try {
    h.shape = Shape(dims);
  } catch (const std::length_error& e) {
    too_long(name, std::string(".npy ") + e.what());
  }
  h.data_offset = pre.prefix + pre.header_len;
  h.data_bytes = static_cast<std::uint64_t>(h.shape.numel()) * itemsize(h.dtype);
  const std::uint64_t avail = file_size - h.data_offset;
  const std::string shape_txt = "shape " + h.shape.str() + " " + dtype_name(h.dtype);
  if (avail < h.data_bytes)
    bad(name, "truncated .npy data: " + shape_txt + " needs " + std::to_string(h.data_bytes) +
                  " bytes, the file holds " + std::to_string(avail));
  if (avail > h.data_bytes)
    bad(name, ".npy file has " + std::to_string(avail - h.data_bytes) +
                  " bytes after the data of " + shape_txt);
  return h;
}

// The bytes of a header past its parsed window: padding only (whitespace), then the final
// newline. `read(offset, n)` returns n bytes of the file.
template <class Read>
void check_padding(const Read& read, std::uint64_t from, std::uint64_t to,
                   std::string_view name) {
  constexpr std::uint64_t chunk = std::uint64_t{1} << 20;
  for (std::uint64_t at = from; at < to; at += chunk) {
    const std::size_t n = static_cast<std::size_t>(std::min(chunk, to - at));
    const std::string bytes = read(at, n);
    for (std::size_t i = 0; i < n; ++i) {
      if (!header_space(bytes[i]))
        bad(name, "malformed .npy header (byte " + std::to_string(at + i) +
                      " is not padding: only spaces may follow the dict after the first " +
                      std::to_string(from) + " bytes)");
    }
    if (at + n == to && bytes[n - 1] != '\n')
      bad(name, "malformed .npy header (it must end with a newline)");
  }
}

// Preamble, header (windowed), padding, data extent: everything but the data itself.
template <class Read>
NpyHeader read_header(const Read& read, std::uint64_t file_size, std::string_view name,
                      std::size_t window) {
  const std::string first = read(0, static_cast<std::size_t>(std::min<std::uint64_t>(12, file_size)));
  const Preamble pre = parse_preamble(first, file_size, name);
  const auto head_len = static_cast<std::size_t>(std::min<std::uint64_t>(pre.header_len, window));
  const bool complete = head_len == pre.header_len;
  const std::string head = read(pre.prefix, head_len);
  // The dict must end inside the window: everything after it there is padding too.
  const NpyHeader h = parse_header(head, complete, pre, file_size, name);
  if (!complete) check_padding(read, pre.prefix + head_len, pre.prefix + pre.header_len, name);
  return h;
}

// The data of a checked header, read straight into the array's vector.
template <class ReadInto>
NpyArray read_data(const NpyHeader& h, const ReadInto& read_into, std::string_view name) {
  memory::check_allocation(h.data_bytes, quote(name) + ": the data of shape " + h.shape.str() +
                                             " " + dtype_name(h.dtype));
  NpyArray a;
  a.version = h.version;
  a.dtype = h.dtype;
  a.shape = h.shape;
  const auto count = static_cast<std::size_t>(h.shape.numel());
  auto fill = [&](auto& v) {
    v.resize(count);
    if (count) read_into(h.data_offset, v.data(), static_cast<std::size_t>(h.data_bytes));
  };
  switch (h.dtype) {
    case NpyDtype::f4:
      fill(a.data.emplace<std::vector<float>>());
      break;
    case NpyDtype::f8:
      fill(a.data.emplace<std::vector<double>>());
      break;
    case NpyDtype::i8:
      fill(a.data.emplace<std::vector<std::int64_t>>());
      break;
    case NpyDtype::f2:
    case NpyDtype::bf16:
    case NpyDtype::u2:
      fill(a.data.emplace<std::vector<std::uint16_t>>());
      break;
  }
  return a;
}

}  // namespace

NpyArray parse_npy(std::string_view bytes, std::string_view name, std::size_t header_window) {
  auto read = [&](std::uint64_t off, std::size_t n) {
    return std::string(bytes.substr(static_cast<std::size_t>(off), n));
  };
  auto read_into = [&](std::uint64_t off, void* dst, std::size_t n) {
    std::memcpy(dst, bytes.data() + off, n);
  };
  const NpyHeader h = read_header(read, bytes.size(), name, std::max<std::size_t>(header_window, 1));
  return read_data(h, read_into, name);
}

NpyHeader read_npy_header(const std::filesystem::path& path) {
  const InputFile f = InputFile::open(path);
  auto read = [&](std::uint64_t off, std::size_t n) { return f.read(off, n); };
  return read_header(read, f.size(), path.native(), npy_header_window);
}

NpyArray read_npy(const std::filesystem::path& path) {
  const InputFile f = InputFile::open(path);
  auto read = [&](std::uint64_t off, std::size_t n) { return f.read(off, n); };
  auto read_into = [&](std::uint64_t off, void* dst, std::size_t n) { f.read_into(off, dst, n); };
  const NpyHeader h = read_header(read, f.size(), path.native(), npy_header_window);
  return read_data(h, read_into, path.native());
}

std::string encode_npy(const Shape& shape, const std::vector<float>& data) {
  return encode(NpyDtype::f4, shape, data, 1);
}
std::string encode_npy(const Shape& shape, const std::vector<double>& data) {
  return encode(NpyDtype::f8, shape, data, 1);
}
std::string encode_npy(const Shape& shape, const std::vector<std::int64_t>& data) {
  return encode(NpyDtype::i8, shape, data, 1);
}
std::string encode_npy(const Shape& shape, const std::vector<std::uint16_t>& bits,
                       NpyDtype dtype) {
  check_arg(dtype_size(dtype) == 2, "write_npy", "dtype ", dtype_name(dtype),
            " is not a 16-bit one");
  return encode(dtype, shape, bits, 1);
}
std::string encode_npy(const NpyArray& a, int version) {
  return std::visit([&](const auto& v) { return encode(a.dtype, a.shape, v, version); }, a.data);
}

void write_npy(const std::filesystem::path& path, const Tensor<float>& t) {
  write_file_atomic(path, encode_npy(t.shape(), t.vec()));
}
void write_npy(const std::filesystem::path& path, const Tensor<double>& t) {
  write_file_atomic(path, encode_npy(t.shape(), t.vec()));
}
void write_npy(const std::filesystem::path& path, const Tensor<std::int64_t>& t) {
  write_file_atomic(path, encode_npy(t.shape(), t.vec()));
}

void write_npy_16(const std::filesystem::path& path, const Tensor<float>& t, NpyDtype dtype) {
  check_arg(dtype == NpyDtype::f2 || dtype == NpyDtype::bf16, "write_npy_16", "dtype ",
            dtype_name(dtype), " is not float16 or bfloat16");
  std::vector<std::uint16_t> bits(static_cast<std::size_t>(t.numel()));
  for (std::size_t i = 0; i < bits.size(); ++i)
    bits[i] = dtype == NpyDtype::f2 ? float_to_half_bits(t[static_cast<index_t>(i)])
                                    : float_to_bfloat16_bits(t[static_cast<index_t>(i)]);
  write_file_atomic(path, encode_npy(t.shape(), bits, dtype));
}

template <class T>
Tensor<T> to_tensor(const NpyArray& a, std::string_view name) {
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(a.shape.numel()));
  if (a.dtype == NpyDtype::f2) {
    for (std::uint16_t v : a.u16()) out.push_back(T(half_bits_to_float(v)));
  } else if (a.dtype == NpyDtype::bf16) {
    for (std::uint16_t v : a.u16()) out.push_back(T(bfloat16_bits_to_float(v)));
  } else if (a.dtype == NpyDtype::f4) {
    for (float v : a.f32()) out.push_back(T(v));
  } else if (a.dtype == NpyDtype::f8 && !std::is_same_v<T, float>) {
    for (double v : a.f64()) out.push_back(T(v));
  } else {
    bad(name, std::string("dtype is ") + dtype_name(a.dtype) + ", expected " +
                  (std::is_same_v<T, float> ? "float32" : "float32 or float64"));
  }
  return Tensor<T>(a.shape, std::move(out));
}
template Tensor<float> to_tensor<float>(const NpyArray&, std::string_view);
template Tensor<double> to_tensor<double>(const NpyArray&, std::string_view);
template Tensor<f50> to_tensor<f50>(const NpyArray&, std::string_view);

Tensor<std::int64_t> to_int64_tensor(const NpyArray& a, std::string_view name) {
  if (a.dtype != NpyDtype::i8)
    bad(name, std::string("dtype is ") + dtype_name(a.dtype) + ", expected int64");
  return Tensor<std::int64_t>(a.shape, a.i64());
}
Tensor<std::int64_t> read_npy_int64(const std::filesystem::path& path) {
  return to_int64_tensor(read_npy(path), path.string());
}

std::string multi_index_str(const Shape& shape, index_t flat) {
  return index_str(shape, flat);
}

void check_all_finite(const NpyArray& a, std::string_view name) {
  auto scan = [&](const auto& v) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double x = static_cast<double>(v[i]);
      if (!std::isfinite(x))
        throw std::domain_error(quote(name) + ": element " +
                                multi_index_str(a.shape, static_cast<index_t>(i)) + " is " +
                                (std::isnan(x) ? "nan"
                                 : x > 0       ? "inf"
                                               : "-inf"));
    }
  };
  if (a.dtype == NpyDtype::f4) scan(a.f32());
  if (a.dtype == NpyDtype::f8) scan(a.f64());
  if (a.dtype == NpyDtype::f2 || a.dtype == NpyDtype::bf16) {
    std::vector<float> v;
    v.reserve(a.u16().size());
    for (std::uint16_t b : a.u16())
      v.push_back(a.dtype == NpyDtype::f2 ? half_bits_to_float(b) : bfloat16_bits_to_float(b));
    scan(v);
  }
}

}  // namespace tapegrad::io
