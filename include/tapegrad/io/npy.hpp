// NumPy .npy files: read and write, format versions 1.0 and 2.0, C order, little-endian
// float32 ('<f4'), float64 ('<f8'), int64 ('<i8'), and the 16-bit formats: float16 ('<f2'),
// bfloat16 as ml_dtypes stores it (np.save of an ml_dtypes.bfloat16 array writes the descr
// '<V2': NumPy type codes are not extensible, jax-ml/ml_dtypes issue 41; '|V2' and the name
// 'bfloat16' are read alike, and written as '<V2'), and uint16 ('<u2': raw 16-bit patterns,
// which the CLI reads as bfloat16 under --dtype bfloat16); 0-d arrays (shape ()) included.
// 16-bit data is kept as its bit patterns (half.hpp converts).
//
// File layout (numpy/lib/format.py):
//   "\x93NUMPY" major minor  header_len (uint16 LE in 1.0, uint32 LE in 2.0)
//   header: a Python dict literal {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }
//           padded with spaces and ended by '\n'
//   data:   numel * itemsize bytes, row-major, nothing after it.
//
// Reading checks, in this order, before the data is read or allocated:
//   the path      a regular file (io/input_file.hpp: a FIFO, a device or a directory is refused
//                 before any read that could block)
//   the preamble  magic, version 1.0 or 2.0, a header length that fits in the file
//   the header    a Python dict literal with exactly the keys 'descr', 'fortran_order' and
//                 'shape', as NumPy's reader (ast.literal_eval) accepts it: decimal integers
//                 (no leading zeros such as 03, as in Python 3; '_' between digits and a Python 2
//                 'L' suffix allowed), at most 32 dimensions (NumPy's NPY_MAXDIMS), and the
//                 byte size of the nonzero dimensions times the item size within 2^63 - 1 (what
//                 NumPy calls "array is too big"). Only the first 1 MiB of a header is parsed
//                 as text; past it (a version 2.0 header can be up to 4 GiB) only the padding
//                 NumPy writes is allowed, checked as it is read.
//   the data      exactly numel * itemsize bytes, to the end of the file (compared with the
//                 file's size, so a sparse 100 GB file is judged without reading it)
//   the memory    the data's size against memory::limit() (memory.hpp)
// Every failure is one line naming the file (quoted, as quote() writes it):
//   std::invalid_argument  bad magic/version, malformed header, unsupported dtype or order,
//                          more than 32 dimensions, truncated data, trailing bytes, not a file
//   std::length_error      a shape whose element or byte count overflows
//   memory::Refused        (a std::length_error) data larger than the memory limit
//   std::runtime_error     the file cannot be opened or read
// Writing goes through io::write_file_atomic: version 1.0 unless the header needs 2.0.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "tapegrad/shape.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::io {

enum class NpyDtype { f4, f8, i8, f2, bf16, u2 };

// "float32" / "float64" / "int64" / "float16" / "bfloat16" / "uint16" (the NumPy / ml_dtypes
// name) and "<f4" / "<f8" / "<i8" / "<f2" / "<V2" / "<u2" (the descr written).
const char* dtype_name(NpyDtype d);
const char* dtype_descr(NpyDtype d);
// Bytes per element: 2, 4 or 8.
std::size_t dtype_size(NpyDtype d);

struct NpyArray {
  NpyDtype dtype = NpyDtype::f8;
  Shape shape;
  std::variant<std::vector<float>, std::vector<double>, std::vector<std::int64_t>,
               std::vector<std::uint16_t>>
      data;  // f2, bf16 and u2: the 16-bit patterns
  int version = 1;  // format major version read (1 or 2)

  const std::vector<float>& f32() const { return std::get<std::vector<float>>(data); }
  const std::vector<double>& f64() const { return std::get<std::vector<double>>(data); }
  const std::vector<std::int64_t>& i64() const { return std::get<std::vector<std::int64_t>>(data); }
  const std::vector<std::uint16_t>& u16() const {
    return std::get<std::vector<std::uint16_t>>(data);
  }
};

// What a .npy file holds, from its preamble and header alone.
struct NpyHeader {
  NpyDtype dtype = NpyDtype::f8;
  Shape shape;
  int version = 1;
  std::uint64_t data_offset = 0;  // where the data starts
  std::uint64_t data_bytes = 0;   // numel * itemsize, checked to end exactly at the file's end
};

// The most dimensions NumPy supports (NPY_MAXDIMS in NumPy 1.x).
inline constexpr index_t npy_max_dims = 32;
// How much of a header is parsed as text (the rest may only be padding).
inline constexpr std::size_t npy_header_window = std::size_t{1} << 20;

// Parses the bytes of a .npy file; `name` (usually the path) prefixes every error message.
// Every `name` in this file is the raw text; messages show it quoted.
// `header_window` is for tests: it lowers the 1 MiB of header parsed as text.
NpyArray parse_npy(std::string_view bytes, std::string_view name,
                   std::size_t header_window = npy_header_window);
// Reads the header only, with every check above but the memory one: for estimating a
// command's memory from its inputs' shapes before reading any data.
NpyHeader read_npy_header(const std::filesystem::path& path);
// Reads and parses a file: the header first, then the data straight into the array.
NpyArray read_npy(const std::filesystem::path& path);

// Encodes an array as .npy bytes (version 1.0 unless the header is too long for it).
// `data` must hold shape.numel() elements, and the shape at most 32 dimensions, as NumPy can
// load (std::invalid_argument otherwise).
std::string encode_npy(const Shape& shape, const std::vector<float>& data);
std::string encode_npy(const Shape& shape, const std::vector<double>& data);
std::string encode_npy(const Shape& shape, const std::vector<std::int64_t>& data);
// 16-bit patterns as dtype (f2, bf16 or u2).
std::string encode_npy(const Shape& shape, const std::vector<std::uint16_t>& bits, NpyDtype dtype);
// Same with an explicit format version (1 or 2), for tests and for callers that need 2.0.
std::string encode_npy(const NpyArray& a, int version);

// Writes atomically (temporary file + rename).
void write_npy(const std::filesystem::path& path, const Tensor<float>& t);
void write_npy(const std::filesystem::path& path, const Tensor<double>& t);
void write_npy(const std::filesystem::path& path, const Tensor<std::int64_t>& t);
// A float tensor whose every value is a float16 (bfloat16) value, written as '<f2' ('<V2'):
// each value rounded to the format (half.hpp, to nearest even; exact for values already in it).
void write_npy_16(const std::filesystem::path& path, const Tensor<float>& t, NpyDtype dtype);

// A float32/float64 array as Tensor<T>, T in {float, double, f50}. Every conversion is exact:
// float16, bfloat16 and float32 -> anything, float64 -> double or f50. A float64 file read as
// float, an int64 or uint16 file, or any other dtype is std::invalid_argument naming the file
// and both dtypes.
template <class T>
Tensor<T> to_tensor(const NpyArray& a, std::string_view name);
template <class T>
Tensor<T> read_npy_as(const std::filesystem::path& path) {
  return to_tensor<T>(read_npy(path), path.string());
}

// An int64 array (labels, targets). Any other dtype is std::invalid_argument.
Tensor<std::int64_t> to_int64_tensor(const NpyArray& a, std::string_view name);
Tensor<std::int64_t> read_npy_int64(const std::filesystem::path& path);

// Throws std::domain_error("'<name>': element [i,j,..] is nan") at the first NaN/Inf (row-major).
void check_all_finite(const NpyArray& a, std::string_view name);

// "[1,0,3]": the multi-index of flat element `flat` of `shape` ("[]" for 0-d).
std::string multi_index_str(const Shape& shape, index_t flat);

// f50 -> float / double rounded ONCE to nearest, ties to even (never through another format:
// f50 -> double -> float could round twice). Overflow gives +-inf, as IEEE rounding does.
float round_to_float(const f50& x);
double round_to_double(const f50& x);
// f50 -> float16 / bfloat16 rounded once to nearest even, as a float (every such value is one).
// Through float rounded to ODD (the float nearer x among the two around it whose last bit is 1,
// x itself when exact): with 24 >= 11 + 2 (>= 8 + 2) bits, rounding that to nearest even is
// the correct rounding of x (Boldo and Melquiond, "Emulation of FMA and correctly rounded sums:
// proved algorithms using rounding to odd", IEEE TC 2008), never a double rounding.
float round_to_half(const f50& x);
float round_to_bfloat16(const f50& x);
// The one of the two for T = float or double (for code generic over the output precision).
template <class T>
T round_to(const f50& x) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  if constexpr (std::is_same_v<T, float>) {
    return round_to_float(x);
  } else {
    return round_to_double(x);
  }
}

}  // namespace tapegrad::io
