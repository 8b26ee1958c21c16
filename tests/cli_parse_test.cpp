// The CLI's strict option values (src/cli/parse.hpp): nothing wraps, clamps or keeps trailing
// text, and every refusal names the option and quotes the text.
#include "../src/cli/parse.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace tapegrad::cli {
namespace {

template <class F>
void expect_bad(F f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "accepted; expected an error containing " << fragment;
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(ParseInt, DecimalDigitsWithinTheRange) {
  EXPECT_EQ(parse_int("42", "--batch", 1, 100), 42);
  EXPECT_EQ(parse_int("-3", "--x", -5, 5), -3);
  EXPECT_EQ(parse_int("007", "--x", 0, 10), 7);
  EXPECT_EQ(parse_int("-9223372036854775808", "--x", std::numeric_limits<std::int64_t>::min(), 0),
            std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(parse_int("9223372036854775807", "--x", 0, std::numeric_limits<std::int64_t>::max()),
            std::numeric_limits<std::int64_t>::max());
}

TEST(ParseInt, RefusesEverythingElseNamingTheOption) {
  for (const char* s : {"", "-", "+1", " 1", "1 ", "1,", "0x10", "1e3", "1.0", "١", "12a",
                        "9223372036854775808", "99999999999999999999999999"})
    expect_bad([&] { parse_int(s, "--batch", 0, std::numeric_limits<std::int64_t>::max()); },
               "--batch: expected an integer in [0, 9223372036854775807], got '");
  expect_bad([] { parse_int("0", "--batch", 1, 10); }, "got '0'");
  expect_bad([] { parse_int("11", "--batch", 1, 10); }, "[1, 10]");
  expect_bad([] { parse_int("-1", "--batch", 1, 10); }, "got '-1'");
}

TEST(ParseUint64, TheWholeRangeAndNoWrap) {
  EXPECT_EQ(parse_uint64("0", "--seed"), 0u);
  EXPECT_EQ(parse_uint64("18446744073709551615", "--seed"),
            std::numeric_limits<std::uint64_t>::max());
  for (const char* s : {"-1", "18446744073709551616", "99999999999999999999", "", "1 "})
    expect_bad([&] { parse_uint64(s, "--seed"); }, "--seed: expected an integer in [0, 18446744073709551615]");
}

TEST(ParseReal, FiniteDecimalsOnly) {
  EXPECT_EQ(parse_real("1e-5", "--rtol", 0, 1e300), 1e-5);
  EXPECT_EQ(parse_real("0.5", "--rtol", 0, 1), 0.5);
  EXPECT_EQ(parse_real("-0", "--rtol", 0, 1), 0.0);
  EXPECT_GT(parse_real("1e-320", "--atol", 0, 1), 0.0);  // subnormal, correctly rounded
  for (const char* s : {"nan", "inf", "-inf", "1e400", "0x1p3", " 1", "1,5", "", ".", "e5",
                        "+1", "1e", "-1"})
    expect_bad([&] { parse_real(s, "--atol", 0, 1e300); }, "--atol: expected a finite number");
}

TEST(ParsePair, OneOrTwoIntegersAndNoTrailingComma) {
  EXPECT_EQ(parse_pair("3", "--pad", 0, 10), (std::array<std::int64_t, 2>{3, 3}));
  EXPECT_EQ(parse_pair("2,3", "--pad", 0, 10), (std::array<std::int64_t, 2>{2, 3}));
  for (const char* s : {"1,", ",1", "1,2,3", "1,,2", "", "1;2", "-1", "11", "1, 2"})
    expect_bad([&] { parse_pair(s, "--pad", 0, 10); }, "--pad: expected N or H,W");
}

TEST(ParseIntList, ExactlyTheCountAsked) {
  EXPECT_EQ(parse_int_list("1,2,3", "--shape", 3, "A,B,C", 0, 9),
            (std::vector<std::int64_t>{1, 2, 3}));
  expect_bad([] { parse_int_list("1,2,3,", "--shape", 3, "A,B,C", 0, 9); }, "item 4 is empty");
  expect_bad([] { parse_int_list("1,2,3,4", "--shape", 3, "A,B,C", 0, 9); }, "more than 3");
  expect_bad([] { parse_int_list("1,2,3,", "--shape", 4, "A,B,C,D", 0, 9); }, "item 4 is empty");
  expect_bad([] { parse_int_list("1,2", "--shape", 3, "A,B,C", 0, 9); }, "only 2 given");
  expect_bad([] { parse_int_list("1,x,3", "--shape", 3, "A,B,C", 0, 9); }, "item 2 is not an integer");
  expect_bad([] { parse_int_list("1,20,3", "--shape", 3, "A,B,C", 0, 9); }, "item 2 is outside [0, 9]");
}

TEST(CheckPathArg, EmptyPathNamesTheOption) {
  expect_bad([] { check_path_arg("", "--x"); }, "--x: the path is empty");
  EXPECT_NO_THROW(check_path_arg("x.npy", "--x"));
}

}  // namespace
}  // namespace tapegrad::cli
