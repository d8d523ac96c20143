#include "tokenizer/utf8.h"

namespace canopy::utf8 {

Scan scan(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {Scan::Valid, 1};
  // The well-formed byte sequences (Unicode table 3-7): the lead byte fixes the length and the
  // allowed range of the second byte; every later byte is 80..BF.
  size_t length;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {Scan::Invalid, 1};  // a continuation byte, C0, C1 or F5..FF
  }
  for (size_t k = 1; k < length; ++k) {
    if (i + k >= s.size()) return {Scan::Incomplete, static_cast<uint8_t>(k)};
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < lo || b > hi) return {Scan::Invalid, static_cast<uint8_t>(k)};
    lo = 0x80;
    hi = 0xBF;
  }
  return {Scan::Valid, static_cast<uint8_t>(length)};
}

bool is_valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII runs are the common case: skip eight bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t word;
      __builtin_memcpy(&word, s.data() + i, 8);
      if (word & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    const Scan sc = scan(s, i);
    if (sc.kind != Scan::Valid) return false;
    i += sc.length;
  }
  return true;
}

std::string sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    const Scan sc = scan(s, i);
    if (sc.kind == Scan::Valid)
      out.append(s.substr(i, sc.length));
    else
      out.append(kReplacementUtf8);
    i += sc.length;
  }
  return out;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace canopy::utf8
