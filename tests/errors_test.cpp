// quote() / escape_text(): user text in a message stays one printable line, whatever its bytes.
#include "tapegrad/errors.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tapegrad {
namespace {

using namespace std::string_literals;

TEST(Quote, PrintableAsciiAndValidUtf8PassThrough) {
  EXPECT_EQ(quote("conv3d"), "'conv3d'");
  EXPECT_EQ(quote(""), "''");
  EXPECT_EQ(quote("données/日本.npy"), "'données/日本.npy'");  // 2- and 3-byte sequences
  EXPECT_EQ(quote("\xf0\x9f\x98\x80"), "'\xf0\x9f\x98\x80'");  // U+1F600, 4 bytes
}

TEST(Quote, ControlsBackslashAndQuoteAreEscaped) {
  EXPECT_EQ(quote("a\nb\rc\td"), "'a\\nb\\rc\\td'");
  EXPECT_EQ(quote("it's \\"), "'it\\'s \\\\'");
  EXPECT_EQ(escape_text("it's"), "it's");  // only quote() escapes the quote
  EXPECT_EQ(quote("\x1b[2J\x7f\x0b\x0c\x1c"), "'\\x1b[2J\\x7f\\x0b\\x0c\\x1c'");
}

TEST(Quote, NulDoesNotCutTheText) {
  const std::string s = "x\0y"s;
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(quote(s), "'x\\x00y'");
}

TEST(Quote, BytesThatAreNotUtf8AreEscapedOneByOne) {
  EXPECT_EQ(quote("\xff"), "'\\xff'");
  EXPECT_EQ(quote("\x80"), "'\\x80'");                      // a lone continuation byte
  EXPECT_EQ(quote("\xc3"), "'\\xc3'");                      // a sequence cut short
  EXPECT_EQ(quote("\xc0\xaf"), "'\\xc0\\xaf'");             // overlong '/'
  EXPECT_EQ(quote("\xe0\x80\xaf"), "'\\xe0\\x80\\xaf'");    // overlong, 3 bytes
  EXPECT_EQ(quote("\xed\xa0\x80"), "'\\xed\\xa0\\x80'");    // a UTF-16 surrogate, U+D800
  EXPECT_EQ(quote("\xf4\x90\x80\x80"), "'\\xf4\\x90\\x80\\x80'");  // U+110000, past the end
  EXPECT_EQ(quote("a\xc3(b"), "'a\\xc3(b'");
}

TEST(Quote, LineBreakingAndReorderingCodePointsAreEscaped) {
  // What Python's str.splitlines() and terminals treat as line breaks, and the bidi controls.
  EXPECT_EQ(quote("a\xc2\x85z"), "'a\\u{0085}z'");          // NEL, a C1 control
  EXPECT_EQ(quote("a\xe2\x80\xa8z"), "'a\\u{2028}z'");      // LINE SEPARATOR
  EXPECT_EQ(quote("a\xe2\x80\xa9z"), "'a\\u{2029}z'");      // PARAGRAPH SEPARATOR
  EXPECT_EQ(quote("a\xe2\x80\xaez"), "'a\\u{202e}z'");      // RIGHT-TO-LEFT OVERRIDE
  EXPECT_EQ(quote("a\xe2\x81\xa6z"), "'a\\u{2066}z'");      // LEFT-TO-RIGHT ISOLATE
  EXPECT_EQ(quote("\xc2\xa0"), "'\xc2\xa0'");               // NBSP is harmless
}

TEST(Quote, LongTextIsCutAndSaysHowLongItWas) {
  const std::string s(10000, 'a');
  EXPECT_EQ(quote(s, 4), "'aaaa'...(10000 bytes)");
  EXPECT_EQ(quote(s).size(), 4096 + 2 + std::string("...(10000 bytes)").size());
  // A character at the cut is shown whole, never as half a sequence.
  EXPECT_EQ(quote("ab\xc3\xa9", 3), "'ab\xc3\xa9'...(4 bytes)");
}

TEST(OneLine, LeavesQuotedTextAloneAndEscapesWhatBreaksTheLine) {
  // The CLI's last guard: a message that already quoted its user text is unchanged (no second
  // escaping of its backslashes), while raw text from elsewhere cannot break the line.
  const std::string msg = "ref: unknown op " + quote("a\nb");
  EXPECT_EQ(one_line(msg), msg);
  EXPECT_EQ(one_line("CLI11: unexpected a\nb\x1b"), "CLI11: unexpected a\\nb\\x1b");
  EXPECT_EQ(one_line("path C:\\dir"), "path C:\\dir");
}

TEST(Quote, EveryByteValueGivesOneLineOfPrintableAscii) {
  // The law behind the cases above: whatever the input, the output has no byte below 0x20, no
  // DEL, and no invalid UTF-8 (every non-ASCII byte comes from a valid sequence).
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string q = quote(all + all);
  for (unsigned char c : q) {
    EXPECT_GE(c, 0x20);
    EXPECT_NE(c, 0x7f);
    EXPECT_LT(c, 0x80) << "every lone high byte must be escaped";
  }
}

}  // namespace
}  // namespace tapegrad
