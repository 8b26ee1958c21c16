// Memory estimates: sizes as users write them, saturating sums, and the one-line refusal that
// names the estimate, the limit and the argument behind the largest part.
#include "tapegrad/memory.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace tapegrad::memory {
namespace {

constexpr std::uint64_t K = 1024, max_u64 = std::numeric_limits<std::uint64_t>::max();

TEST(ParseSize, BinarySuffixesInEitherCase) {
  EXPECT_EQ(parse_size("1000000"), 1000000u);
  EXPECT_EQ(parse_size("64k"), 64 * K);
  EXPECT_EQ(parse_size("512M"), 512 * K * K);
  EXPECT_EQ(parse_size("4G"), 4 * K * K * K);
  EXPECT_EQ(parse_size("4GiB"), 4 * K * K * K);
  EXPECT_EQ(parse_size("4gb"), 4 * K * K * K);
  EXPECT_EQ(parse_size("2T"), 2 * K * K * K * K);
  EXPECT_EQ(parse_size("100B"), 100u);
  // 1.5 GiB exactly; 0.1 KiB = 102.4 bytes, rounded down.
  EXPECT_EQ(parse_size("1.5G"), 3 * K * K * K / 2);
  EXPECT_EQ(parse_size("0.1K"), 102u);
  // 2^64 - 1 is the largest; 16E is not a unit we take.
  EXPECT_EQ(parse_size("18446744073709551615"), max_u64);
}

TEST(ParseSize, AnythingElseIsRefusedNamingTheText) {
  for (const char* bad : {"", "G", "-1", "+4G", "0", "0K", "4 G", "4G ", " 4G", "4X", "4GG",
                          "1.", ".5G", "1.5", "18446744073709551616", "16777216T", "0x10",
                          "4e9", "nan", "inf"}) {
    try {
      (void)parse_size(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos)
          << e.what();
    }
  }
}

TEST(FormatSize, ThreeSignificantDigitsInBinaryUnits) {
  EXPECT_EQ(format_size(0), "0 B");
  EXPECT_EQ(format_size(1023), "1023 B");
  EXPECT_EQ(format_size(1536), "1.50 KiB");
  EXPECT_EQ(format_size(100 * K * K), "100 MiB");
  EXPECT_EQ(format_size(std::uint64_t{1} << 37), "128 GiB");
  EXPECT_EQ(format_size(max_u64), "16.0 EiB");
}

TEST(Saturation, SumsAndProductsStopAtTheMaximum) {
  EXPECT_EQ(mul_sat(std::uint64_t{1} << 32, std::uint64_t{1} << 32), max_u64);
  EXPECT_EQ(mul_sat(3, 5), 15u);
  EXPECT_EQ(add_sat(max_u64, 1), max_u64);
  Estimate e("t");
  e.add("a", max_u64, 2, "").add("b", 1, 1, "");
  EXPECT_EQ(e.total(), max_u64);
}

TEST(Estimate, RefusalNamesEstimateLimitAndTheLargestPartsArgument) {
  set_max_memory(1 * K * K, "1M");
  Estimate e("ref conv2d");
  e.add("x [1,1,8,8] as read", 64, 8, "--x 'x.npy'");
  e.add("y [1,4,800,800] in 50 digits", 4 * 800 * 800, 40, "--pad '396'");
  try {
    e.check();
    ADD_FAILURE();
  } catch (const Refused& r) {
    EXPECT_STREQ(r.what(),
                 "ref conv2d: needs an estimated 114 MiB (the largest part is y [1,4,800,800] in "
                 "50 digits, 97.7 MiB, from --pad '396'), more than the 1.00 MiB allowed "
                 "(--max-memory '1M'); refused before allocating; --max-memory SIZE sets the "
                 "limit");
  }
  // 97.7 MiB of parts + the 16 MiB program baseline. Within the limit nothing happens; at the
  // limit exactly, too.
  Estimate small("compare");
  small.add("a", 1, K * K, "ACTUAL 'a.npy'");
  EXPECT_EQ(small.total(), K * K + Estimate::program_bytes);
  set_max_memory(small.total(), "17M");
  EXPECT_NO_THROW(small.check());
  set_max_memory(small.total() - 1, "17M");
  EXPECT_THROW(small.check(), Refused);
  set_max_memory(1 * K * K, "1M");
  EXPECT_THROW(check_allocation(K * K + 1, "'x.npy': the data"), Refused);
  EXPECT_NO_THROW(check_allocation(K * K, "'x.npy': the data"));
  clear_max_memory();
}

TEST(Limit, MeasuredFromTheMachineUnlessGiven) {
  // On Linux /proc/meminfo has MemAvailable; the measured limit is positive and --max-memory
  // replaces it (in both directions).
  const auto measured = available();
  ASSERT_TRUE(measured.has_value());
  EXPECT_GT(measured->bytes, 0u);
  EXPECT_EQ(limit()->bytes, measured->bytes);
  set_max_memory(max_u64, "16E");
  EXPECT_EQ(limit()->bytes, max_u64);
  EXPECT_EQ(limit()->source, "--max-memory '16E'");
  clear_max_memory();
  EXPECT_NE(limit()->source.find("MemAvailable"), std::string::npos);
}

}  // namespace
}  // namespace tapegrad::memory
