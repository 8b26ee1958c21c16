// InputFile: a path is checked to be a regular file before anything could block on it, reads
// are exact, and every error is one line naming the file.
#include "tapegrad/io/input_file.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace tapegrad::io {
namespace {

namespace fs = std::filesystem;

class InputFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tapegrad_input_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
    return dir_ / name;
  }
  fs::path dir_;
};

template <class E>
void expect_error(const fs::path& p, const std::string& fragment) {
  try {
    (void)InputFile::open(p);
    ADD_FAILURE() << "opened " << p;
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

TEST_F(InputFiles, RegularFileOpensWithItsSizeAndReadsExactly) {
  const InputFile f = InputFile::open(write("a.bin", "hello world"));
  EXPECT_EQ(f.size(), 11u);
  EXPECT_EQ(f.read(6, 5), "world");
  EXPECT_EQ(f.read(11, 0), "");
  try {
    (void)f.read(6, 6);  // one byte past the end
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("read 5 of 6 bytes"), std::string::npos) << e.what();
  }
}

TEST_F(InputFiles, SymlinkToARegularFileIsFollowed) {
  const fs::path target = write("t.bin", "abc");
  fs::create_symlink(target, dir_ / "link");
  EXPECT_EQ(InputFile::open(dir_ / "link").read(0, 3), "abc");
}

TEST_F(InputFiles, EverythingButARegularFileIsRefusedSayingWhatItIs) {
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);  // no writer: a read would block
  expect_error<std::invalid_argument>(dir_ / "fifo", "is a FIFO (named pipe), expected a regular file");
  expect_error<std::invalid_argument>(dir_, "is a directory");
  expect_error<std::invalid_argument>("/dev/zero", "'/dev/zero': is a character device");
  // A symlink to a FIFO is judged by what it points to.
  fs::create_symlink(dir_ / "fifo", dir_ / "to_fifo");
  expect_error<std::invalid_argument>(dir_ / "to_fifo", "FIFO");
  const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sp = (dir_ / "sock").string();
  if (sp.size() < sizeof(addr.sun_path)) {
    sp.copy(addr.sun_path, sp.size());
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    expect_error<std::invalid_argument>(dir_ / "sock", "is a socket");
  }
  ::close(s);
}

TEST_F(InputFiles, EmptyAndMissingPathsAreClear) {
  expect_error<std::invalid_argument>("", "empty path");
  expect_error<std::runtime_error>(dir_ / "missing.npy", "missing.npy': cannot open: No such file");
  expect_error<std::runtime_error>(dir_ / "a\nb", "a\\nb': cannot open");
}

TEST_F(InputFiles, UnreadableFileNamesTheSystemsReason) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  const fs::path p = write("secret", "x");
  fs::permissions(p, fs::perms::none);
  expect_error<std::runtime_error>(p, "Permission denied");
}

TEST_F(InputFiles, ReadInputFileRefusesFilesAboveItsBound) {
  const fs::path p = write("spec.txt", std::string(100, 'x'));
  EXPECT_EQ(read_input_file(p, 100).size(), 100u);
  try {
    (void)read_input_file(p, 99);
    ADD_FAILURE();
  } catch (const std::length_error& e) {
    EXPECT_NE(std::string(e.what()).find("is 100 bytes, more than the 99"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(read_input_file("/dev/zero", 1 << 20), std::invalid_argument);
  EXPECT_THROW(check_input_file(dir_), std::invalid_argument);
  EXPECT_NO_THROW(check_input_file(p));
}

}  // namespace
}  // namespace tapegrad::io
