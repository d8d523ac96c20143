// UTF-8 validation and repair: the Unicode "maximal subpart" rule (same as Python's
// bytes.decode("utf-8", "replace") and Rust's from_utf8_lossy).
#include <gtest/gtest.h>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace canopy {
namespace {

const std::string R = "\xEF\xBF\xBD";

TEST(Utf8, ValidTextIsUnchanged) {
  for (const std::string s : {"", "abc", "é", "你好", "🦙", "a\0b", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_TRUE(utf8::is_valid(s));
    EXPECT_EQ(utf8::sanitize(s), s);
  }
}

TEST(Utf8, MaximalSubpartsBecomeOneReplacementEach) {
  // Cases as Python's bytes.decode("utf-8", "replace") handles them.
  EXPECT_EQ(utf8::sanitize("\x80"), R);
  EXPECT_EQ(utf8::sanitize("a\xC3"), "a" + R);                       // truncated at the end
  EXPECT_EQ(utf8::sanitize("\xE2\x82"), R);                          // one subpart
  EXPECT_EQ(utf8::sanitize("\xE2\x82x"), R + "x");
  EXPECT_EQ(utf8::sanitize("\xF0\x80\x80"), R + R + R);              // F0 80 is never valid
  EXPECT_EQ(utf8::sanitize("\xED\xA0\x80"), R + R + R);              // a surrogate
  EXPECT_EQ(utf8::sanitize("\xC0\xAF"), R + R);                      // overlong
  EXPECT_EQ(utf8::sanitize("\xF4\x90\x80\x80"), R + R + R + R);      // above U+10FFFF
  EXPECT_EQ(utf8::sanitize("\xF0\x9F\xA6"), R);                      // 3 of 4 bytes
  EXPECT_EQ(utf8::sanitize("\xF0\x9F\xA6\xF0\x9F\xA6\x99"), R + "🦙");
  EXPECT_EQ(utf8::sanitize("\xFF\xFE"), R + R);
  EXPECT_FALSE(utf8::is_valid("\xC3"));
  EXPECT_FALSE(utf8::is_valid("abcdefgh\xC3 ijklmnop"));
}

TEST(Utf8, ScanReportsIncompleteSequences) {
  EXPECT_EQ(utf8::scan("\xF0\x9F\xA6", 0).kind, utf8::Scan::Incomplete);
  EXPECT_EQ(utf8::scan("\xF0\x9F\xA6", 0).length, 3);
  EXPECT_EQ(utf8::scan("\xF0\x9F\xA6x", 0).kind, utf8::Scan::Invalid);
  EXPECT_EQ(utf8::scan("\xF0\x9F\xA6\x99", 0).kind, utf8::Scan::Valid);
}

TEST(Utf8, AppendAndNextRoundTrip) {
  for (char32_t cp : {0x0u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xFFFDu, 0x10000u, 0x10FFFFu}) {
    std::string s;
    utf8::append(s, cp);
    EXPECT_TRUE(utf8::is_valid(s));
    size_t i = 0;
    EXPECT_EQ(utf8::next(s, i), cp);
    EXPECT_EQ(i, s.size());
  }
}

TEST(ByteLevel, AlphabetIsABijectionOnBytes) {
  EXPECT_EQ(byte_level::byte_to_char(' '), U'Ġ');
  EXPECT_EQ(byte_level::byte_to_char('\n'), U'Ċ');
  EXPECT_EQ(byte_level::byte_to_char('A'), U'A');
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string encoded = byte_level::encode(all);
  EXPECT_TRUE(utf8::is_valid(encoded));
  EXPECT_EQ(byte_level::decode(encoded), all);
  EXPECT_FALSE(byte_level::decode("▁").has_value());
  EXPECT_FALSE(byte_level::decode("\xC3").has_value());
}

}  // namespace
}  // namespace canopy
