// .npy reading and writing; see include/tapegrad/io/npy.hpp for the format and the errors.
#include "tapegrad/io/npy.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "tapegrad/errors.hpp"
#include "tapegrad/io/atomic_file.hpp"

namespace tapegrad::io {

static_assert(std::endian::native == std::endian::little,
              "tapegrad's .npy reader copies little-endian bytes directly");
static_assert(sizeof(float) == 4 && sizeof(double) == 8);

namespace {

constexpr std::string_view magic = "\x93NUMPY";

std::size_t itemsize(NpyDtype d) { return d == NpyDtype::f4 ? 4 : 8; }

[[noreturn]] void bad(std::string_view name, const std::string& what) {
  throw std::invalid_argument(std::string(name) + ": " + what);
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
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    skip_ws();
    if (s_.substr(i_, 4) == "True") return i_ += 4, true;
    if (s_.substr(i_, 5) == "False") return i_ += 5, false;
    fail("expected True or False");
  }
  index_t integer() {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == '-') fail("negative dimension in shape");
    if (i_ >= s_.size() || s_[i_] < '0' || s_[i_] > '9') fail("expected an integer");
    index_t v = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
      const index_t digit = s_[i_++] - '0';
      if (v > (std::numeric_limits<index_t>::max() - digit) / 10)
        throw std::length_error(std::string(name_) +
                                ": .npy header: a dimension does not fit in 64 bits");
      v = v * 10 + digit;
    }
    if (i_ < s_.size() && (s_[i_] == 'L' || s_[i_] == 'l')) ++i_;  // Python 2 long suffix
    return v;
  }
  // "()", "(3,)", "(2, 3)", "(2, 3,)"
  std::vector<index_t> tuple() {
    expect('(');
    std::vector<index_t> dims;
    if (accept(')')) return dims;
    while (true) {
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
  [[noreturn]] void fail(const std::string& what) const {
    bad(name_, "malformed .npy header (" + what + " at offset " + std::to_string(i_) +
                   "): " + printable(s_));
  }

 private:
  static std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 120)) out += (c >= 32 && c < 127) ? c : '?';
    while (!out.empty() && (out.back() == ' ' || out.back() == '?')) out.pop_back();
    if (s.size() > 120) out += "...";
    return out;
  }

  std::string_view s_;
  std::string_view name_;
  std::size_t i_ = 0;
};

NpyDtype parse_descr(const std::string& d, std::string_view name) {
  auto unsupported = [&](const std::string& why) -> NpyDtype {
    bad(name, "unsupported dtype '" + d + "'" + why +
                  "; expected '<f4' (float32), '<f8' (float64) or '<i8' (int64)");
  };
  if (d.size() != 3) return unsupported("");
  const char order = d[0];
  const std::string kind = d.substr(1);
  if (kind != "f4" && kind != "f8" && kind != "i8") return unsupported("");
  if (order == '>') return unsupported(" (big-endian)");
  // '=' is native order, little-endian here (asserted above); '|' means "not applicable",
  // which NumPy only writes for 1-byte types, so it is not a valid order for these.
  if (order != '<' && order != '=') return unsupported("");
  return kind == "f4" ? NpyDtype::f4 : kind == "f8" ? NpyDtype::f8 : NpyDtype::i8;
}

template <class V>
V copy_elements(std::string_view bytes, std::size_t count) {
  V v(count);
  if (count) std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
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
  check_arg(static_cast<index_t>(data.size()) == shape.numel(), "write_npy", "shape ", shape.str(),
            " needs ", shape.numel(), " elements, got ", data.size());
  check_arg(version == 1 || version == 2, "write_npy", "format version must be 1 or 2, got ",
            version);
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

const char* dtype_name(NpyDtype d) {
  switch (d) {
    case NpyDtype::f4:
      return "float32";
    case NpyDtype::f8:
      return "float64";
    case NpyDtype::i8:
      return "int64";
  }
  return "?";
}

const char* dtype_descr(NpyDtype d) {
  switch (d) {
    case NpyDtype::f4:
      return "<f4";
    case NpyDtype::f8:
      return "<f8";
    case NpyDtype::i8:
      return "<i8";
  }
  return "?";
}

NpyArray parse_npy(std::string_view bytes, std::string_view name) {
  if (bytes.size() < 10 || bytes.substr(0, 6) != magic)
    bad(name, "not a .npy file (missing the \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  const int minor = static_cast<unsigned char>(bytes[7]);
  if ((major != 1 && major != 2) || minor != 0)
    bad(name, ".npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                  " is not supported (expected 1.0 or 2.0)");
  const std::size_t prefix = major == 1 ? 10 : 12;
  if (bytes.size() < prefix) bad(name, "truncated .npy preamble");
  auto byte = [&](std::size_t i) {
    return static_cast<std::size_t>(static_cast<unsigned char>(bytes[i]));
  };
  std::size_t header_len = byte(8) | (byte(9) << 8);
  if (major == 2) header_len |= (byte(10) << 16) | (byte(11) << 24);
  if (header_len > bytes.size() - prefix)
    bad(name, ".npy header length " + std::to_string(header_len) +
                  " runs past the end of the file (" + std::to_string(bytes.size()) + " bytes)");
  const std::string_view header = bytes.substr(prefix, header_len);
  if (header.empty() || header.back() != '\n')
    bad(name, "malformed .npy header (it must end with a newline)");

  HeaderParser p(header, name);
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
      p.fail("unexpected key '" + key + "'");
    }
    if (!p.accept(',')) {
      p.expect('}');
      break;
    }
  }
  if (!p.at_end()) p.fail("text after the closing '}'");
  if (!have_descr || !have_order || !have_shape)
    p.fail(std::string("missing key '") +
           (!have_descr   ? "descr"
            : !have_order ? "fortran_order"
                          : "shape") +
           "'");
  if (fortran) bad(name, "Fortran-order arrays are not supported (write with C order)");

  NpyArray a;
  a.version = major;
  a.dtype = parse_descr(descr, name);
  // The element count in checked arithmetic, before anything is allocated.
  try {
    a.shape = Shape(dims);
  } catch (const std::length_error& e) {
    throw std::length_error(std::string(name) + ": .npy " + e.what());
  }
  const index_t nbytes =
      checked_mul(a.shape.numel(), static_cast<index_t>(itemsize(a.dtype)), ".npy data size");
  const std::size_t data_start = prefix + header_len;
  const std::size_t avail = bytes.size() - data_start;
  const auto need = static_cast<std::size_t>(nbytes);
  std::string shape_txt = "shape " + a.shape.str() + " " + dtype_name(a.dtype);
  if (avail < need)
    bad(name, "truncated .npy data: " + shape_txt + " needs " + std::to_string(need) +
                  " bytes, the file holds " + std::to_string(avail));
  if (avail > need)
    bad(name,
        ".npy file has " + std::to_string(avail - need) + " bytes after the data of " + shape_txt);
  const std::string_view payload = bytes.substr(data_start, need);
  const auto count = static_cast<std::size_t>(a.shape.numel());
  switch (a.dtype) {
    case NpyDtype::f4:
      a.data = copy_elements<std::vector<float>>(payload, count);
      break;
    case NpyDtype::f8:
      a.data = copy_elements<std::vector<double>>(payload, count);
      break;
    case NpyDtype::i8:
      a.data = copy_elements<std::vector<std::int64_t>>(payload, count);
      break;
  }
  return a;
}

NpyArray read_npy(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw std::invalid_argument(name + ": is a directory, expected a .npy file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(name + ": cannot open file");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error(name + ": read error");
  return parse_npy(bytes, name);
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

template <class T>
Tensor<T> to_tensor(const NpyArray& a, std::string_view name) {
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(a.shape.numel()));
  if (a.dtype == NpyDtype::f4) {
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
        throw std::domain_error(std::string(name) + ": element " +
                                multi_index_str(a.shape, static_cast<index_t>(i)) + " is " +
                                (std::isnan(x) ? "nan"
                                 : x > 0       ? "inf"
                                               : "-inf"));
    }
  };
  if (a.dtype == NpyDtype::f4) scan(a.f32());
  if (a.dtype == NpyDtype::f8) scan(a.f64());
}

}  // namespace tapegrad::io
