// UTF-8 for the tokenizer: validation, decoding, and the replacement of ill-formed input.
//
// Ill-formed sequences are replaced the way the Unicode standard recommends ("substitution of
// maximal subparts", chapter 3.9), which is also what Rust's String::from_utf8_lossy and
// Python's bytes.decode(errors="replace") do: each maximal prefix of a would-be sequence that
// cannot be completed becomes one U+FFFD, and scanning resumes at the first byte that broke it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace canopy::utf8 {

inline constexpr char32_t kReplacement = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

// What starts at some position of a byte string.
struct Scan {
  enum Kind : uint8_t {
    Valid,       // a well-formed sequence of `length` bytes
    Invalid,     // an ill-formed maximal subpart of `length` bytes (one U+FFFD)
    Incomplete,  // a well-formed prefix of `length` bytes that the string ends inside
  } kind;
  uint8_t length;
};

// Classifies the bytes at s[i] (i < s.size()).
Scan scan(std::string_view s, size_t i);

bool is_valid(std::string_view s);

// s with each ill-formed maximal subpart (including a truncated sequence at the end) replaced by
// U+FFFD; returns s unchanged when it is valid.
std::string sanitize(std::string_view s);

// Appends the UTF-8 encoding of cp (a Unicode scalar value) to out.
void append(std::string& out, char32_t cp);

// Decodes the code point at s[i] of valid UTF-8 and moves i past it.
inline char32_t next(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  auto cont = [&](size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k]) & 0x3F); };
  char32_t cp;
  if (b0 < 0xE0) {
    cp = (static_cast<char32_t>(b0 & 0x1F) << 6) | cont(1);
    i += 2;
  } else if (b0 < 0xF0) {
    cp = (static_cast<char32_t>(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2);
    i += 3;
  } else {
    cp = (static_cast<char32_t>(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
    i += 4;
  }
  return cp;
}

// The byte length of the sequence that starts with lead byte b of valid UTF-8.
inline size_t sequence_length(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

}  // namespace canopy::utf8
