#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>

#include "core/error.h"
#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace canopy {
namespace {

// Normalizes `text` with utf8proc `options`, touching only the stretches that can change. The
// position before an ASCII character is a safe cut for every normalization form (ASCII characters
// are starters and never the second half of a composition), so only the runs of non-ASCII text,
// each with the ASCII character before it (a possible base of a combining mark), go through
// utf8proc. Text with every byte below `lead_limit` is returned as is: text below U+0300 (lead
// bytes < 0xCC) is unchanged by NFC, and ASCII by every form.
std::string utf8proc_normalize(std::string_view text, int options, unsigned char lead_limit) {
  auto needs_work = [&](size_t i) { return static_cast<unsigned char>(text[i]) >= lead_limit; };
  size_t i = 0;
  while (i < text.size() && !needs_work(i)) ++i;
  if (i == text.size()) return std::string(text);
  std::string out;
  out.reserve(text.size() + 16);
  size_t copied = 0;
  while (i < text.size()) {
    // The run around text[i]: from the last ASCII character before it to the next one after it.
    size_t begin = i;
    while (begin > copied && static_cast<unsigned char>(text[begin - 1]) >= 0x80) --begin;
    if (begin > copied) --begin;  // include the ASCII character before the run
    size_t end = i;
    while (end < text.size() && static_cast<unsigned char>(text[end]) >= 0x80) ++end;
    out.append(text.substr(copied, begin - copied));
    utf8proc_uint8_t* mapped = nullptr;
    const utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + begin),
                     static_cast<utf8proc_ssize_t>(end - begin), &mapped, static_cast<utf8proc_option_t>(options));
    if (n < 0) fail("Unicode normalization failed: {}", utf8proc_errmsg(n));
    out.append(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
    std::free(mapped);
    copied = end;
    i = end;
    while (i < text.size() && !needs_work(i)) ++i;
  }
  out.append(text.substr(copied));
  return out;
}

std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const char32_t cp = utf8::next(text, i);
    if (cp == 0x130) {  // İ lowercases to two code points (i + combining dot), as in Unicode's SpecialCasing
      out.append("i\xCC\x87");
      continue;
    }
    utf8::append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
  }
  return out;
}

std::string replace_literal(std::string_view text, std::string_view pattern, std::string_view replacement) {
  if (pattern.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(pattern, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(replacement);
    pos = hit + pattern.size();
  }
  out.append(text.substr(pos));
  return out;
}

std::string strip(std::string_view text, bool left, bool right) {
  size_t begin = 0, end = text.size();
  if (left) {
    while (begin < end) {
      size_t next = begin;
      if (!unicode::is_white_space(utf8::next(text, next))) break;
      begin = next;
    }
  }
  if (right) {
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
      size_t probe = start;
      if (!unicode::is_white_space(utf8::next(text, probe))) break;
      end = start;
    }
  }
  return std::string(text.substr(begin, end - begin));
}

}  // namespace

std::string Normalizer::apply(std::string_view input) const {
  std::string text(input);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::NFC:
        text = utf8proc_normalize(text, UTF8PROC_STABLE | UTF8PROC_COMPOSE, 0xCC);
        break;
      case Kind::NFD:
        text = utf8proc_normalize(text, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, 0x80);
        break;
      case Kind::NFKC:
        text = utf8proc_normalize(text, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, 0x80);
        break;
      case Kind::NFKD:
        text = utf8proc_normalize(text, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, 0x80);
        break;
      case Kind::Lowercase:
        text = lowercase(text);
        break;
      case Kind::Prepend:
        // Hugging Face prepends only to non-empty text.
        if (!text.empty()) text.insert(0, step.text);
        break;
      case Kind::Replace:
        text = replace_literal(text, step.text, step.replacement);
        break;
      case Kind::ReplaceRegex:
        text = step.regex->replace_all(text, step.replacement);
        break;
      case Kind::Strip:
        text = strip(text, step.strip_left, step.strip_right);
        break;
    }
  }
  return text;
}

}  // namespace canopy
