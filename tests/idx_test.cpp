// IDX files (io/idx.hpp) and the Fashion-MNIST loader's checks (data/fashion_mnist.hpp).
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tapegrad/data/fashion_mnist.hpp"
#include "tapegrad/io/idx.hpp"

using namespace tapegrad;
namespace fs = std::filesystem;

namespace {

// An IDX file of unsigned bytes: 00 00 08 nd, big-endian sizes, then the items.
std::string idx_bytes(const std::vector<std::uint32_t>& dims, const std::vector<std::uint8_t>& items) {
  std::string s{'\0', '\0', '\x08', static_cast<char>(dims.size())};
  for (std::uint32_t d : dims)
    for (int sh = 24; sh >= 0; sh -= 8) s += static_cast<char>((d >> sh) & 0xff);
  s.append(items.begin(), items.end());
  return s;
}

std::string error_of(const std::string& bytes) {
  try {
    io::parse_idx(bytes, "t.idx");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("tapegrad-idx-" + std::to_string(::getpid()) + "-" +
                                                 std::to_string(counter_++))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

void write_gz(const fs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

}  // namespace

TEST(Idx, ParsesDimensionsAndItemsInOrder) {
  // 2 x 3 items 0..5, row-major.
  const io::IdxArray a = io::parse_idx(idx_bytes({2, 3}, {0, 1, 2, 3, 4, 5}), "t.idx");
  EXPECT_EQ(a.dims, (std::vector<index_t>{2, 3}));
  EXPECT_EQ(a.data, (std::vector<std::uint8_t>{0, 1, 2, 3, 4, 5}));
  // Sizes are big-endian: 0x00000102 = 258 items.
  const io::IdxArray b = io::parse_idx(idx_bytes({258}, std::vector<std::uint8_t>(258, 7)), "t.idx");
  EXPECT_EQ(b.dims, (std::vector<index_t>{258}));
}

TEST(Idx, MalformedFilesAreOneLineErrorsNamingTheProblem) {
  EXPECT_EQ(error_of(std::string("\x00\x00", 2)), "t.idx: truncated: shorter than the 4-byte IDX magic");
  EXPECT_EQ(error_of(std::string("\x1f\x8b\x08\x01", 4)),
            "t.idx: not an IDX file (the first two bytes are 0x1f 0x8b, expected 0x00 0x00)");
  EXPECT_EQ(error_of(std::string("\x00\x00\x0d\x01\x00\x00\x00\x01", 8) + "abcd"),
            "t.idx: IDX type 0x0d is not supported (tapegrad reads unsigned bytes, type 0x08)");
  EXPECT_EQ(error_of(std::string("\x00\x00\x08\x00", 4)), "t.idx: IDX header declares 0 dimensions");
  EXPECT_EQ(error_of(idx_bytes({2, 3}, {1, 2, 3, 4, 5})),
            "t.idx: truncated: the header declares 2x3 = 6 bytes of data, the file holds 5");
  EXPECT_EQ(error_of(idx_bytes({2}, {1, 2, 3})),
            "t.idx: trailing bytes after the 2 bytes the header declares (2)");
  EXPECT_EQ(error_of(idx_bytes({2, 3}, {}).substr(0, 6)),
            "t.idx: truncated header: 2 dimensions declared, 0 present");
}

TEST(Idx, GzipAndPlainFilesReadAlikeAndDamageIsReported) {
  TempDir dir;
  const std::string bytes = idx_bytes({2, 2}, {9, 8, 7, 6});
  write_gz(dir.path() / "a.gz", bytes);
  std::ofstream(dir.path() / "a.idx", std::ios::binary) << bytes;
  EXPECT_EQ(io::read_idx(dir.path() / "a.gz").data, (std::vector<std::uint8_t>{9, 8, 7, 6}));
  EXPECT_EQ(io::read_idx(dir.path() / "a.idx").data, (std::vector<std::uint8_t>{9, 8, 7, 6}));
  // A gzip file cut in the middle of its stream.
  std::string gz;
  {
    std::ifstream f(dir.path() / "a.gz", std::ios::binary);
    gz.assign(std::istreambuf_iterator<char>(f), {});
  }
  std::ofstream(dir.path() / "cut.gz", std::ios::binary) << gz.substr(0, gz.size() - 10);
  try {
    io::read_idx(dir.path() / "cut.gz");
    FAIL() << "a truncated gzip file was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cut.gz"), std::string::npos) << e.what();
  }
  EXPECT_THROW(io::read_idx(dir.path() / "missing.gz"), std::runtime_error);
  EXPECT_THROW(io::read_idx(dir.path()), std::invalid_argument);  // a directory
}

TEST(FashionMnist, CountMismatchAndWrongImageSizeAreRefused) {
  TempDir dir;
  const std::vector<std::uint8_t> img(3 * 28 * 28, 128);
  write_gz(dir.path() / "train-images-idx3-ubyte.gz", idx_bytes({3, 28, 28}, img));
  write_gz(dir.path() / "train-labels-idx1-ubyte.gz", idx_bytes({2}, {1, 2}));
  try {
    data::load_fashion_mnist(dir.path(), "train");
    FAIL() << "3 images with 2 labels were accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("holds 2 labels but"), std::string::npos) << e.what();
  }
  write_gz(dir.path() / "train-labels-idx1-ubyte.gz", idx_bytes({3}, {1, 2, 10}));
  EXPECT_THROW(data::load_fashion_mnist(dir.path(), "train"), std::out_of_range);  // label 10
  write_gz(dir.path() / "train-labels-idx1-ubyte.gz", idx_bytes({3}, {1, 2, 9}));
  const data::Dataset d = data::load_fashion_mnist(dir.path(), "train");
  EXPECT_EQ(d.size, 3);
  EXPECT_EQ(d.labels[2], 9);
  // Pixel 128: (128/255 - 0.2860) / 0.3530, computed in float as fill_batch does.
  Tensor<float> x;
  layers::Targets<float> t;
  const std::vector<index_t> idx{2, 0};
  data::fill_batch(d, idx, x, t);
  EXPECT_EQ(x.shape(), (Shape{2, 1, 28, 28}));
  EXPECT_EQ(x[0], (128.0f * static_cast<float>(1.0 / 255.0) - 0.2860f) / 0.3530f);
  EXPECT_EQ(t.labels, (std::vector<index_t>{9, 1}));
  write_gz(dir.path() / "train-images-idx3-ubyte.gz", idx_bytes({1, 27, 28}, std::vector<std::uint8_t>(27 * 28)));
  EXPECT_THROW(data::load_fashion_mnist(dir.path(), "train"), std::invalid_argument);
}

TEST(FashionMnist, DebiansFilesLoadWhenInstalled) {
  const fs::path dir = data::fashion_mnist_default_dir;
  if (!fs::exists(dir / "t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const data::Dataset test = data::load_fashion_mnist(dir, "test");
  EXPECT_EQ(test.size, 10000);
  // The published test set is balanced: 1000 images per class.
  std::vector<int> per(10, 0);
  for (index_t l : test.labels) ++per[static_cast<std::size_t>(l)];
  for (int c : per) EXPECT_EQ(c, 1000);
}
