#include "template/py_text.h"

#include <utf8proc.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace canopy::jinja::py {

namespace {

bool is_cased(char32_t c) {
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

char32_t to_upper(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}

char32_t to_lower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}

char32_t to_title(char32_t c) {
  if (c < 0x80) return to_upper(c);
  return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}

// Python's str.isprintable() for one code point: everything but the "Other" and "Separator"
// categories, except the ASCII space.
bool is_printable(char32_t c) {
  if (c == ' ') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
      return false;
    default:
      return true;
  }
}

template <typename Map>
std::string map_code_points(std::string_view s, Map map) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) append_utf8(out, map(next_code_point(s, pos)));
  return out;
}

// Byte offset of the code point index `index` in s (index <= length(s)).
size_t byte_offset_to_index(std::string_view s, size_t byte_offset) {
  return length(s.substr(0, byte_offset));
}

bool contains(std::u32string_view set, char32_t c) {
  return set.find(c) != std::u32string_view::npos;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    char32_t cp = 0;
    if ((b & 0xE0) == 0xC0) {
      len = 2;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    // Reject overlong forms, surrogates and values past U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

char32_t next_code_point(std::string_view s, size_t& pos) {
  const auto b = static_cast<unsigned char>(s[pos]);
  if (b < 0x80) {
    ++pos;
    return b;
  }
  size_t len = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : 4;
  char32_t cp = len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
  len = std::min(len, s.size() - pos);  // valid input never needs this; it keeps reads in bounds
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
  pos += len;
  return cp;
}

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) out.push_back(next_code_point(s, pos));
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

size_t length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

bool is_space(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_line_break(char32_t c) {
  return (c >= 0x0A && c <= 0x0D) || (c >= 0x1C && c <= 0x1E) || c == 0x85 || c == 0x2028 ||
         c == 0x2029;
}

std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  const std::u32string text = decode(s);
  const std::u32string set = chars ? decode(*chars) : std::u32string();
  auto strippable = [&](char32_t c) { return chars ? contains(set, c) : is_space(c); };
  size_t begin = 0;
  size_t end = text.size();
  if (left)
    while (begin < end && strippable(text[begin])) ++begin;
  if (right)
    while (end > begin && strippable(text[end - 1])) --end;
  return encode(std::u32string_view(text).substr(begin, end - begin));
}

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit) {
  std::vector<std::string> parts;
  if (maxsplit < 0) maxsplit = INT64_MAX;
  if (sep) {
    CANOPY_CHECK(!sep->empty(), "split(): empty separator");
    size_t i = 0;
    while (maxsplit-- > 0) {
      const size_t j = s.find(*sep, i);
      if (j == std::string_view::npos) break;
      parts.emplace_back(s.substr(i, j - i));
      i = j + sep->size();
    }
    parts.emplace_back(s.substr(i));
    return parts;
  }
  const std::u32string text = decode(s);
  const size_t n = text.size();
  size_t i = 0;
  while (maxsplit-- > 0) {
    while (i < n && is_space(text[i])) ++i;
    if (i == n) break;
    const size_t j = i;
    while (i < n && !is_space(text[i])) ++i;
    parts.push_back(encode(std::u32string_view(text).substr(j, i - j)));
  }
  while (i < n && is_space(text[i])) ++i;
  if (i < n) parts.push_back(encode(std::u32string_view(text).substr(i)));
  return parts;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit) {
  std::vector<std::string> parts;
  if (maxsplit < 0) maxsplit = INT64_MAX;
  if (sep) {
    CANOPY_CHECK(!sep->empty(), "rsplit(): empty separator");
    size_t end = s.size();
    while (maxsplit-- > 0) {
      if (end < sep->size()) break;
      const size_t j = s.rfind(*sep, end - sep->size());
      if (j == std::string_view::npos) break;
      parts.emplace_back(s.substr(j + sep->size(), end - j - sep->size()));
      end = j;
    }
    parts.emplace_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  const std::u32string text = decode(s);
  size_t i = text.size();
  while (maxsplit-- > 0) {
    while (i > 0 && is_space(text[i - 1])) --i;
    if (i == 0) break;
    const size_t j = i;
    while (i > 0 && !is_space(text[i - 1])) --i;
    parts.push_back(encode(std::u32string_view(text).substr(i, j - i)));
  }
  while (i > 0 && is_space(text[i - 1])) --i;
  if (i > 0) parts.push_back(encode(std::u32string_view(text).substr(0, i)));
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
  const std::u32string text = decode(s);
  std::vector<std::string> lines;
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    size_t j = i;
    while (j < n && !is_line_break(text[j])) ++j;
    size_t eol = j;
    if (j < n) {
      eol = (text[j] == '\r' && j + 1 < n && text[j + 1] == '\n') ? j + 2 : j + 1;
    }
    lines.push_back(encode(std::u32string_view(text).substr(i, (keepends ? eol : j) - i)));
    i = eol;
  }
  return lines;
}

std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count) {
  if (count < 0) count = INT64_MAX;
  std::string out;
  if (old.empty()) {
    // Python inserts the replacement before every code point and at the end.
    size_t pos = 0;
    while (pos < s.size()) {
      if (count > 0) {
        out += repl;
        --count;
      }
      const size_t start = pos;
      next_code_point(s, pos);
      out += s.substr(start, pos - start);
    }
    if (count > 0) out += repl;
    return out;
  }
  size_t i = 0;
  while (count > 0) {
    const size_t j = s.find(old, i);
    if (j == std::string_view::npos) break;
    out += s.substr(i, j - i);
    out += repl;
    i = j + old.size();
    --count;
  }
  out += s.substr(i);
  return out;
}

int64_t find(std::string_view s, std::string_view sub, bool last) {
  const size_t j = last ? s.rfind(sub) : s.find(sub);
  if (j == std::string_view::npos) return -1;
  return static_cast<int64_t>(byte_offset_to_index(s, j));
}

int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(length(s)) + 1;
  int64_t n = 0;
  size_t i = 0;
  while ((i = s.find(sub, i)) != std::string_view::npos) {
    ++n;
    i += sub.size();
  }
  return n;
}

std::string upper(std::string_view s) { return map_code_points(s, to_upper); }
std::string lower(std::string_view s) { return map_code_points(s, to_lower); }

std::string swapcase(std::string_view s) {
  return map_code_points(s, [](char32_t c) {
    const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
    if (cat == UTF8PROC_CATEGORY_LU) return to_lower(c);
    if (cat == UTF8PROC_CATEGORY_LL) return to_upper(c);
    return c;
  });
}

std::string title(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool previous_cased = false;
  size_t pos = 0;
  while (pos < s.size()) {
    const char32_t c = next_code_point(s, pos);
    append_utf8(out, previous_cased ? to_lower(c) : to_title(c));
    previous_cased = is_cased(c);
  }
  return out;
}

std::string capitalize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  bool first = true;
  while (pos < s.size()) {
    const char32_t c = next_code_point(s, pos);
    append_utf8(out, first ? to_title(c) : to_lower(c));
    first = false;
  }
  return out;
}

bool is_lower(std::string_view s) {
  bool any_cased = false;
  size_t pos = 0;
  while (pos < s.size()) {
    const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(next_code_point(s, pos)));
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) return false;
    any_cased |= cat == UTF8PROC_CATEGORY_LL;
  }
  return any_cased;
}

bool is_upper(std::string_view s) {
  bool any_cased = false;
  size_t pos = 0;
  while (pos < s.size()) {
    const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(next_code_point(s, pos)));
    if (cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return false;
    any_cased |= cat == UTF8PROC_CATEGORY_LU;
  }
  return any_cased;
}

namespace {
template <typename Pred>
bool all_code_points(std::string_view s, Pred pred) {
  if (s.empty()) return false;
  size_t pos = 0;
  while (pos < s.size())
    if (!pred(next_code_point(s, pos))) return false;
  return true;
}

bool is_alpha_cp(char32_t c) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
         cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_LO;
}

bool is_digit_cp(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_ND;
}
}  // namespace

bool is_digit(std::string_view s) { return all_code_points(s, is_digit_cp); }
bool is_alpha(std::string_view s) { return all_code_points(s, is_alpha_cp); }
bool is_alnum(std::string_view s) {
  return all_code_points(s, [](char32_t c) { return is_alpha_cp(c) || is_digit_cp(c); });
}
bool is_space_string(std::string_view s) { return all_code_points(s, is_space); }

std::string repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back(quote);
  size_t pos = 0;
  char buf[16];
  while (pos < s.size()) {
    const char32_t c = next_code_point(s, pos);
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else if (c < 0x7F || is_printable(c)) {
      append_utf8(out, c);
    } else if (c <= 0xFF) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else if (c <= 0xFFFF) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
      out += buf;
    }
  }
  out.push_back(quote);
  return out;
}

std::string float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  // The shortest round-trip digits, as d.ddde[+-]xx; then laid out by Python's rule: positional
  // notation when the decimal exponent is in [-4, 16), scientific otherwise.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));
  std::string sign;
  if (!sci.empty() && sci[0] == '-') {
    sign = "-";
    sci.remove_prefix(1);
  }
  const size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.') digits.push_back(c);
  int exponent = 0;
  std::from_chars(sci.data() + e + 1 + (sci[e + 1] == '+' ? 1 : 0), sci.data() + sci.size(), exponent);
  const int decpt = exponent + 1;  // value = 0.digits * 10^decpt
  const int n = static_cast<int>(digits.size());
  std::string out = sign;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-decpt), '0');
      out += digits;
    } else if (decpt >= n) {
      out += digits + std::string(static_cast<size_t>(decpt - n), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt));
      out += '.';
      out += digits.substr(static_cast<size_t>(decpt));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (n > 1) {
    out += '.';
    out += digits.substr(1);
  }
  const int x = decpt - 1;
  char ebuf[16];
  std::snprintf(ebuf, sizeof ebuf, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
  out += ebuf;
  return out;
}

}  // namespace canopy::jinja::py
