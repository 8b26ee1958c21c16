// .npy reading/writing: round trips in every dtype and both format versions, and one hand-built
// byte string per malformed case (each must be a one-line error naming the file).
#include "tapegrad/io/npy.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "tapegrad/io/atomic_file.hpp"
#include "tapegrad/memory.hpp"

namespace tapegrad::io {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class NpyFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tapegrad_npy_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// Builds a .npy byte string by hand: magic, version, little-endian header length, the header
// text padded to end in '\n', then the raw payload.
std::string npy_bytes(const std::string& dict, const std::string& payload, int major = 1,
                      bool pad = true) {
  std::string header = dict;
  const std::size_t prefix = major == 1 ? 10 : 12;
  if (pad) {
    while ((prefix + header.size() + 1) % 64) header += ' ';
    header += '\n';
  }
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  const auto n = static_cast<std::uint32_t>(header.size());
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  if (major == 2) {
    out += static_cast<char>((n >> 16) & 0xff);
    out += static_cast<char>((n >> 24) & 0xff);
  }
  return out + header + payload;
}

template <class V>
std::string raw(const V& v) {
  std::string s(v.size() * sizeof(v[0]), '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

const std::string f8_2x3 = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";

TEST(NpyParse, HandBuiltFloat64FileReadsBack) {
  const std::vector<double> v{1, -2.5, 3, 0.1, 1e300, -0.0};
  const NpyArray a = parse_npy(npy_bytes(f8_2x3, raw(v)), "x.npy");
  EXPECT_EQ(a.dtype, NpyDtype::f8);
  EXPECT_EQ(a.shape, (Shape{2, 3}));
  EXPECT_EQ(a.f64(), v);
  EXPECT_TRUE(std::signbit(a.f64()[5]));
}

TEST(NpyParse, AcceptsDoubleQuotesKeyOrderAndNativeByteOrder) {
  const std::vector<float> v{1.5f, 2.5f};
  const NpyArray a = parse_npy(
      npy_bytes("{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"=f4\"}", raw(v)), "x");
  EXPECT_EQ(a.dtype, NpyDtype::f4);
  EXPECT_EQ(a.f32(), v);
}

TEST(NpyParse, ZeroDimensionalArrayHasOneElement) {
  const std::vector<double> v{42.0};
  const NpyArray a =
      parse_npy(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", raw(v)), "s");
  EXPECT_EQ(a.shape.rank(), 0);
  EXPECT_EQ(a.f64(), v);
}

TEST(NpyParse, EmptyArrayWithZeroDimensionIsValid) {
  const NpyArray a =
      parse_npy(npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (0, 5), }", ""), "e");
  EXPECT_EQ(a.shape.numel(), 0);
  EXPECT_TRUE(a.i64().empty());
}

TEST(NpyParse, Version2HeaderIsRead) {
  const std::vector<std::int64_t> v{7, -8, 9};
  const NpyArray a = parse_npy(
      npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", raw(v), 2), "v2");
  EXPECT_EQ(a.version, 2);
  EXPECT_EQ(a.i64(), v);
}

// Each malformed input: the exception type, and a message naming the file and the problem.
template <class E>
void expect_error(const std::string& bytes, const std::string& fragment) {
  try {
    parse_npy(bytes, "bad.npy");
    ADD_FAILURE() << "no error; expected one containing '" << fragment << "'";
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("'bad.npy': ", 0), 0u) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

const std::string six_doubles = raw(std::vector<double>(6, 1.0));

TEST(NpyParse, RejectsMissingMagic) {
  expect_error<std::invalid_argument>("NUMPY not really", "magic");
  expect_error<std::invalid_argument>("", "magic");
}

TEST(NpyParse, RejectsUnknownVersion) {
  std::string b = npy_bytes(f8_2x3, six_doubles);
  b[6] = 3;
  expect_error<std::invalid_argument>(b, "version 3.0");
}

TEST(NpyParse, RejectsFortranOrder) {
  expect_error<std::invalid_argument>(
      npy_bytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", six_doubles),
      "Fortran");
}

TEST(NpyParse, RejectsBigEndian) {
  expect_error<std::invalid_argument>(
      npy_bytes("{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }", six_doubles),
      "big-endian");
}

TEST(NpyParse, RejectsOtherDtypes) {
  for (const char* d : {"<i4", ">f2", "|f2", "|u2", "<V4", "|u1", "|f8", "<c16", "O"}) {
    expect_error<std::invalid_argument>(
        npy_bytes(std::string("{'descr': '") + d + "', 'fortran_order': False, 'shape': (1,), }",
                  std::string(8, '\0')),
        "unsupported dtype");
  }
}

// The 16-bit dtypes: float16 '<f2', ml_dtypes' bfloat16 ('<V2' and '|V2' as np.save writes
// it, or the name), raw '<u2'; kept as bit patterns, widened exactly by to_tensor.
TEST(NpyParse, SixteenBitDtypesAreReadAsBitPatterns) {
  // 0x3c00 = float16 1.0; 0x3f80 = bfloat16 1.0; 0xc000 = -2 in both
  const std::string data("\x00\x3c\x00\xc0", 4), bdata("\x80\x3f\x00\xc0", 4);
  const auto hdr = [](const char* d) {
    return std::string("{'descr': '") + d + "', 'fortran_order': False, 'shape': (2,), }";
  };
  const NpyArray h = parse_npy(npy_bytes(hdr("<f2"), data), "h");
  EXPECT_EQ(h.dtype, NpyDtype::f2);
  EXPECT_EQ(h.u16(), (std::vector<std::uint16_t>{0x3c00, 0xc000}));
  EXPECT_EQ(to_tensor<double>(h, "h").vec(), (std::vector<double>{1.0, -2.0}));
  for (const char* d : {"<V2", "|V2", "bfloat16"}) {
    const NpyArray b = parse_npy(npy_bytes(hdr(d), bdata), "b");
    EXPECT_EQ(b.dtype, NpyDtype::bf16) << d;
    EXPECT_EQ(to_tensor<float>(b, "b").vec(), (std::vector<float>{1.0f, -2.0f})) << d;
  }
  const NpyArray u = parse_npy(npy_bytes(hdr("<u2"), data), "u");
  EXPECT_EQ(u.dtype, NpyDtype::u2);
  EXPECT_THROW(to_tensor<double>(u, "u"), std::invalid_argument);  // bits of what?
  // written back with the descr NumPy reads: '<f2', '<V2'
  EXPECT_NE(encode_npy(Shape{2}, h.u16(), NpyDtype::f2).find("'descr': '<f2'"), std::string::npos);
  EXPECT_NE(encode_npy(Shape{2}, h.u16(), NpyDtype::bf16).find("'descr': '<V2'"),
            std::string::npos);
  EXPECT_EQ(encode_npy(Shape{2}, h.u16(), NpyDtype::f2), npy_bytes(hdr("<f2"), data));
}

TEST(NpyParse, RejectsTruncatedData) {
  expect_error<std::invalid_argument>(npy_bytes(f8_2x3, six_doubles.substr(0, 47)), "truncated");
}

TEST(NpyParse, RejectsTrailingGarbage) {
  expect_error<std::invalid_argument>(npy_bytes(f8_2x3, six_doubles + "x"), "1 bytes after");
}

TEST(NpyParse, RejectsShapeClaimingMoreThanTheFileHolds) {
  // (1000, 1000) float64 needs 8e6 bytes; the file has 48.
  expect_error<std::invalid_argument>(
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1000, 1000), }", six_doubles),
      "needs 8000000 bytes");
}

TEST(NpyParse, RejectsHeaderLengthPastEndOfFile) {
  std::string b = npy_bytes(f8_2x3, "");
  b[8] = static_cast<char>(0xff);
  b[9] = static_cast<char>(0x7f);  // 32767 bytes of header in a 64-byte file
  expect_error<std::invalid_argument>(b, "past the end");
  expect_error<std::invalid_argument>(std::string("\x93NUMPY\x02\x00\x01\x00", 10), "truncated");
}

TEST(NpyParse, RejectsMalformedDicts) {
  const std::vector<std::string> dicts{
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), ",             // no closing brace
      "{'descr': '<f8', 'fortran_order': False}",                               // missing shape
      "{'descr': '<f8', 'fortran_order': Maybe, 'shape': (2, 3), }",            // bad bool
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2, x), }",            // bad int
      "{'descr': '<f8', 'fortran_order': False, 'shape': (6), }",               // not a tuple
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}",  // unknown key
      "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}",  // duplicate
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), } junk",  // after the dict
      "{'descr: '<f8', 'fortran_order': False, 'shape': (2, 3), }",        // bad quoting
  };
  for (const auto& d : dicts)
    expect_error<std::invalid_argument>(npy_bytes(d, six_doubles), "malformed");
  // A header that does not end in '\n'.
  expect_error<std::invalid_argument>(npy_bytes(f8_2x3, six_doubles, 1, false), "newline");
}

TEST(NpyParse, RejectsNegativeDimension) {
  expect_error<std::invalid_argument>(
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (-1, 6), }", six_doubles),
      "negative");
}

TEST(NpyParse, AtMost32DimensionsAsNumPy) {
  // NumPy 1.x cannot hold more than 32 dimensions (NPY_MAXDIMS): np.load refuses such a file,
  // so tapegrad must too (and must never write one). The parser stops at the 33rd, so a
  // 10000-dimension header costs nothing.
  auto dict = [](int rank) {
    std::string t = "(";
    for (int i = 0; i < rank; ++i) t += "1, ";
    return "{'descr': '<f8', 'fortran_order': False, 'shape': " + t + "), }";
  };
  const std::string one = raw(std::vector<double>{3.0});
  EXPECT_EQ(parse_npy(npy_bytes(dict(32), one), "x").shape.rank(), 32);
  expect_error<std::invalid_argument>(npy_bytes(dict(33), one), "more than 32 dimensions");
  expect_error<std::invalid_argument>(npy_bytes(dict(65), one), "NPY_MAXDIMS");
  expect_error<std::invalid_argument>(npy_bytes(dict(10000), one, 2), "NPY_MAXDIMS");
}

TEST(NpyParse, DimensionsAreDecimalIntegersAsPythonReadsThem) {
  // NumPy reads the header with ast.literal_eval: Python 3 forbids leading zeros ("03"), allows
  // "00" (zero) and '_' between digits, and NumPy drops a Python 2 'L' suffix.
  auto with_shape = [](const std::string& shape) {
    return "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
  };
  expect_error<std::invalid_argument>(npy_bytes(with_shape("(2,03, 4)"), ""), "leading zeros");
  expect_error<std::invalid_argument>(npy_bytes(with_shape("(2, 00_3)"), ""), "leading zeros");
  for (const char* s : {"(0x10,)", "(+2,)", "(2.0,)", "(True,)", "(2e1,)", "(1__0,)", "(10_,)",
                        "(3l,)", "(3j,)"})
    expect_error<std::invalid_argument>(npy_bytes(with_shape(s), ""), "malformed");
  const std::string twenty = raw(std::vector<double>(20, 1.0));
  EXPECT_EQ(parse_npy(npy_bytes(with_shape("(2_0,)"), twenty), "x").shape, (Shape{20}));
  EXPECT_EQ(parse_npy(npy_bytes(with_shape("(20L,)"), twenty), "x").shape, (Shape{20}));
  EXPECT_EQ(parse_npy(npy_bytes(with_shape("(00, 5)"), ""), "x").shape, (Shape{0, 5}));
}

TEST(NpyParse, EmptyShapeWhoseByteSizeOverflowsIsRejectedAsNumPyDoes) {
  // (0, 2^63 - 1) has no element, but NumPy multiplies the nonzero dimensions by the item size
  // and finds 8 * (2^63 - 1) too big; (0, 2^47) float64 is 2^50 bytes there, and accepted.
  expect_error<std::length_error>(
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 9223372036854775807), }",
                ""),
      "too big");
  EXPECT_EQ(parse_npy(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (0, "
                                "140737488355328), }",
                                ""),
                      "x")
                .shape.numel(),
            0);
}

TEST(NpyParse, UserTextInMessagesIsEscapedToOneLine) {
  using namespace std::string_literals;
  // A dtype with a NUL, an escape character and invalid UTF-8: the message stays one line, is
  // not cut at the NUL, and shows the bytes escaped. A newline in a key is malformed (Python
  // strings cannot hold one) and the header shown in the message is escaped too.
  expect_error<std::invalid_argument>(
      npy_bytes("{'descr': '<f8\0\x1b\xff', 'fortran_order': False, 'shape': (1,), }"s,
                std::string(8, '\0')),
      "unsupported dtype '<f8\\x00\\x1b\\xff'");
  expect_error<std::invalid_argument>(
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'sh\x85pe': (1,), }",
                std::string(8, '\0')),
      "unexpected key 'sh\\x85pe'");
  expect_error<std::invalid_argument>(
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'sh\npe': (1,), }",
                std::string(8, '\0')),
      "a newline inside a string");
}

TEST(NpyParse, AbsurdShapeIsLengthErrorBeforeAllocating) {
  // 2^32 * 2^32 = 2^64 elements overflows; 2^40 * 2^10 = 2^50 exceeds Shape::max_numel (2^48);
  // a 20-digit dimension does not fit in int64. None may allocate (this test would die).
  expect_error<std::length_error>(
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
                ""),
      "overflow");
  expect_error<std::length_error>(
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 1024), }", ""),
      "exceeds");
  expect_error<std::length_error>(
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }", ""),
      "64 bits");
}

// ---- round trips through files, every dtype, both versions

TEST_F(NpyFiles, RoundTripEveryDtypeAndVersion) {
  const Shape s{2, 1, 3};
  const std::vector<float> f{1.f,
                             -0.f,
                             3.25f,
                             std::numeric_limits<float>::denorm_min(),
                             std::numeric_limits<float>::max(),
                             1e-30f};
  const std::vector<double> d{1.0,
                              -0.0,
                              0.1,
                              std::numeric_limits<double>::denorm_min(),
                              std::numeric_limits<double>::max(),
                              -1e-300};
  const std::vector<std::int64_t> i{
      0,  -1, std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max(),
      42, 7};
  for (int version : {1, 2}) {
    NpyArray fa{NpyDtype::f4, s, f}, da{NpyDtype::f8, s, d}, ia{NpyDtype::i8, s, i};
    for (const NpyArray* a : {&fa, &da, &ia}) {
      // Appended piece by piece: `"a" + std::to_string(...)` trips GCC 12's false -Wrestrict
      // at -O3 (GCC bug 105651).
      std::string file = "a";
      file += std::to_string(version);
      file += dtype_name(a->dtype);
      file += ".npy";
      const fs::path p = dir_ / file;
      write_file_atomic(p, encode_npy(*a, version));
      const NpyArray b = read_npy(p);
      EXPECT_EQ(b.version, version);
      EXPECT_EQ(b.dtype, a->dtype);
      EXPECT_EQ(b.shape, s);
      // Bitwise equality (covers -0 and the sign of zero, which == would not).
      EXPECT_EQ(encode_npy(b, version), encode_npy(*a, version));
      EXPECT_EQ(fs::file_size(p) % 64, (s.numel() * 8 / (a->dtype == NpyDtype::f4 ? 2 : 1)) % 64)
          << "header must pad the data start to a multiple of 64";
    }
  }
}

TEST_F(NpyFiles, TensorWritersAndReadersRoundTrip) {
  const Tensor<double> t(Shape{3, 2}, std::vector<double>{1, 2, 3, 4, 5, 6.5});
  write_npy(dir_ / "t.npy", t);
  EXPECT_EQ(read_npy_as<double>(dir_ / "t.npy").vec(), t.vec());
  const Tensor<f50> big = read_npy_as<f50>(dir_ / "t.npy");
  EXPECT_EQ(big[5], f50(6.5));
  const Tensor<float> tf = Tensor<float>::scalar(0.1f);
  write_npy(dir_ / "s.npy", tf);
  const Tensor<double> back = read_npy_as<double>(dir_ / "s.npy");
  EXPECT_EQ(back.rank(), 0);
  EXPECT_EQ(back[0], static_cast<double>(0.1f));  // float -> double is exact
  const Tensor<std::int64_t> ti(Shape{2}, std::vector<std::int64_t>{3, -4});
  write_npy(dir_ / "i.npy", ti);
  EXPECT_EQ(read_npy_int64(dir_ / "i.npy").vec(), ti.vec());
}

TEST_F(NpyFiles, LossyOrWrongDtypeConversionsAreRejected) {
  write_npy(dir_ / "d.npy", Tensor<double>(Shape{2}, 0.1));
  write_npy(dir_ / "i.npy", Tensor<std::int64_t>(Shape{2}, 1));
  EXPECT_THROW(read_npy_as<float>(dir_ / "d.npy"), std::invalid_argument);  // would round
  EXPECT_THROW(read_npy_as<double>(dir_ / "i.npy"), std::invalid_argument);
  EXPECT_THROW(read_npy_int64(dir_ / "d.npy"), std::invalid_argument);
}

TEST_F(NpyFiles, Version2HeaderLongerThan64KiBReadsBack) {
  // NumPy pads a header with spaces; a version 2.0 header may be far longer than the 65535
  // bytes version 1.0 can count. 70000 bytes of padding: read from memory and from a file, with
  // the whole header parsed as text and with a 64-byte window (the rest checked as padding).
  const std::vector<double> v{1.5, -2.0, 0.25, 8.0, 1e-300, 7.0};
  const std::string dict = f8_2x3 + std::string(70000, ' ');
  const std::string bytes = npy_bytes(dict, raw(v), 2);
  ASSERT_GT(bytes.size(), 65536u + 48u);
  for (std::size_t window : {npy_header_window, std::size_t{64}, std::size_t{1}}) {
    if (window == 1) continue;  // the dict must fit in the window; covered below
    const NpyArray a = parse_npy(bytes, "long.npy", window);
    EXPECT_EQ(a.version, 2);
    EXPECT_EQ(a.shape, (Shape{2, 3}));
    EXPECT_EQ(a.f64(), v);
  }
  write_file_atomic(dir_ / "long.npy", bytes);
  EXPECT_EQ(read_npy(dir_ / "long.npy").f64(), v);
  const NpyHeader h = read_npy_header(dir_ / "long.npy");
  EXPECT_EQ(h.data_offset, bytes.size() - 48);
  EXPECT_EQ(h.data_bytes, 48u);
  // Past the window only padding may follow: a stray byte there is named by its offset.
  std::string stray = bytes;
  stray[12 + 60000] = 'x';
  try {
    parse_npy(stray, "stray.npy", 64);
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("byte 60012 is not padding"), std::string::npos)
        << e.what();
  }
  // ...and a dict that does not close inside the window is malformed, not read on and on.
  EXPECT_THROW(parse_npy(bytes, "w.npy", 16), std::invalid_argument);
}

TEST_F(NpyFiles, WriterRefusesMoreDimensionsThanNumPyLoads) {
  const Shape s33(std::vector<index_t>(33, 1));
  EXPECT_THROW(encode_npy(s33, std::vector<double>{2.0}), std::invalid_argument);
  const Shape s32(std::vector<index_t>(32, 1));
  EXPECT_EQ(parse_npy(encode_npy(s32, std::vector<double>{2.0}), "32").shape, s32);
}

TEST_F(NpyFiles, MissingFileAndDirectoryAreErrorsNamingThePath) {
  try {
    read_npy(dir_ / "nope.npy");
    ADD_FAILURE();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("nope.npy"), std::string::npos);
  }
  EXPECT_THROW(read_npy(dir_), std::invalid_argument);
}

TEST_F(NpyFiles, FifoAndDevicesAreRefusedWithoutBlocking) {
  // Reading a FIFO with no writer blocks forever; /dev/zero never ends. Both must be refused
  // before any read (this test would hang, or run out of memory, otherwise).
  const fs::path fifo = dir_ / "x.npy";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const fs::path& p : {fifo, fs::path("/dev/zero")}) {
    EXPECT_THROW(read_npy(p), std::invalid_argument) << p;
    EXPECT_THROW(read_npy_header(p), std::invalid_argument) << p;
  }
}

TEST_F(NpyFiles, SparseHugeFileIsJudgedFromItsHeaderAndSize) {
  // A header claiming 2^34 float64 (128 GiB) over a sparse file of exactly that size: the
  // header and the file size agree, so only the memory limit can refuse it, and it must do so
  // without reading (or allocating) the data. The limit is set to 1 GiB so that the test does
  // not depend on the machine.
  const std::string head =
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (17179869184,), }", "");
  const fs::path p = dir_ / "huge.npy";
  write_file_atomic(p, head);
  std::error_code ec;
  fs::resize_file(p, head.size() + (std::uint64_t{1} << 37), ec);
  if (ec) GTEST_SKIP() << "this file system cannot hold a sparse 128 GiB file: " << ec.message();
  const NpyHeader h = read_npy_header(p);
  EXPECT_EQ(h.data_bytes, std::uint64_t{1} << 37);
  memory::set_max_memory(std::uint64_t{1} << 30, "1G");
  try {
    read_npy(p);
    ADD_FAILURE() << "a 128 GiB array was read";
  } catch (const memory::Refused& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("huge.npy"), std::string::npos) << msg;
    EXPECT_NE(msg.find("128 GiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--max-memory '1G'"), std::string::npos) << msg;
  }
  memory::clear_max_memory();
  // One byte short of the claim: truncated, found from the size alone.
  fs::resize_file(p, head.size() + (std::uint64_t{1} << 37) - 1);
  EXPECT_THROW(read_npy_header(p), std::invalid_argument);
}

TEST_F(NpyFiles, PathsInMessagesAreQuotedAndEscaped) {
  const fs::path p = dir_ / "a\nb\x01.npy";
  write_file_atomic(p, "not numpy");
  try {
    read_npy(p);
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find("a\\nb\\x01.npy': not a .npy file"), std::string::npos) << msg;
  }
}

TEST_F(NpyFiles, FailedAtomicWriteLeavesNothing) {
  // Writing into a directory that does not exist fails without creating anything.
  EXPECT_THROW(write_npy(dir_ / "missing" / "y.npy", Tensor<double>()), std::runtime_error);
  EXPECT_FALSE(fs::exists(dir_ / "missing"));
  // A batch destroyed before commit removes its temporaries and writes nothing.
  {
    AtomicBatch batch;
    batch.stage(dir_ / "a.npy", "x");
  }
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST(NpyFinite, NanIsDomainErrorNamingFileAndIndex) {
  NpyArray a{NpyDtype::f4, Shape{2, 2}, std::vector<float>{1, 2, 3, NAN}};
  try {
    check_all_finite(a, "x.npy");
    ADD_FAILURE();
  } catch (const std::domain_error& e) {
    EXPECT_STREQ(e.what(), "'x.npy': element [1,1] is nan");
  }
  NpyArray b{NpyDtype::f8, Shape{3}, std::vector<double>{1, -INFINITY, 3}};
  EXPECT_THROW(check_all_finite(b, "y.npy"), std::domain_error);
}

// ---- rounding f50 once

TEST(RoundOnce, FloatIsRoundedDirectlyNotThroughDouble) {
  // x = 1 + 2^-24 + 2^-60: just above the midpoint between floats 1 and 1 + 2^-23, so it rounds
  // up to 1 + 2^-23. Through double it would first become 1 + 2^-24 (the 2^-60 is below half a
  // double ulp, 2^-53), an exact tie, which rounds to even: 1. Double rounding gives 1.
  const f50 x = f50(1) + ldexp(f50(1), -24) + ldexp(f50(1), -60);
  EXPECT_EQ(round_to_float(x), 1.0f + std::ldexp(1.0f, -23));
  EXPECT_EQ(static_cast<float>(static_cast<double>(x)), 1.0f);  // the trap being avoided
}

TEST(RoundOnce, DoubleTiesGoToEvenAndAboveTiesGoUp) {
  const f50 one(1);
  // 1 + 2^-53 is a tie between 1 (even) and 1 + 2^-52 (odd): to 1.
  EXPECT_EQ(round_to_double(one + ldexp(one, -53)), 1.0);
  // 1 + 3*2^-53 is a tie between 1 + 2^-52 (odd) and 1 + 2^-51 (even): to 1 + 2^-51.
  EXPECT_EQ(round_to_double(one + 3 * ldexp(one, -53)), 1.0 + std::ldexp(1.0, -51));
  // Slightly above the first tie: up.
  EXPECT_EQ(round_to_double(one + ldexp(one, -53) + ldexp(one, -120)), 1.0 + std::ldexp(1.0, -52));
  // Overflow: far beyond max is inf, just beyond max (below the half-ulp threshold) is max.
  const f50 mx(std::numeric_limits<double>::max());
  EXPECT_EQ(round_to_double(mx * 4), std::numeric_limits<double>::infinity());
  EXPECT_EQ(round_to_double(mx + ldexp(one, 960)), std::numeric_limits<double>::max());
  EXPECT_EQ(round_to_float(-f50(1e39)), -std::numeric_limits<float>::infinity());
}

}  // namespace
}  // namespace tapegrad::io
