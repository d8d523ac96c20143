#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace canopy {
namespace {

constexpr uint32_t kNone = UINT32_MAX;

// The code point that ends just before `end` in valid UTF-8.
char32_t previous_code_point(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return utf8::next(text, start);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens) : nodes_(1) {
  for (const AddedToken& t : tokens) {
    if (t.content.empty()) continue;
    uint32_t node = 0;
    for (const char ch : t.content) {
      const auto byte = static_cast<unsigned char>(ch);
      uint32_t next = child(node, byte);
      if (next == kNone) {
        next = static_cast<uint32_t>(nodes_.size());
        auto& children = nodes_[node].children;
        children.insert(std::upper_bound(children.begin(), children.end(), std::make_pair(byte, 0u),
                                         [](const auto& a, const auto& b) { return a.first < b.first; }),
                        {byte, next});
        nodes_.emplace_back();
      }
      node = next;
    }
    // Two added tokens with the same text: the first one listed wins.
    if (nodes_[node].token < 0) {
      nodes_[node].token = static_cast<int32_t>(tokens_.size());
      tokens_.push_back(t);
    }
    first_byte_[static_cast<unsigned char>(t.content[0])] = true;
  }
}

uint32_t AddedTokenMatcher::child(uint32_t node, unsigned char byte) const {
  const auto& children = nodes_[node].children;
  for (const auto& [b, next] : children) {
    if (b == byte) return next;
    if (b > byte) break;
  }
  return kNone;
}

bool AddedTokenMatcher::accept(const AddedToken& token, std::string_view text, size_t begin, size_t end,
                               bool parse_special) const {
  if (token.special && !parse_special) return false;
  if (token.single_word) {
    if (begin > 0 && unicode::is_word_char(previous_code_point(text, begin))) return false;
    size_t next = end;
    if (end < text.size() && unicode::is_word_char(utf8::next(text, next))) return false;
  }
  return true;
}

void AddedTokenMatcher::split(std::string_view text, bool parse_special, std::vector<Segment>& out) const {
  size_t text_begin = 0;  // start of the pending text segment
  size_t i = 0;
  auto flush_text = [&](size_t end) {
    if (end > text_begin) out.push_back({static_cast<uint32_t>(text_begin), static_cast<uint32_t>(end), -1});
  };
  while (i < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    // The longest acceptable token starting at i.
    int32_t best = -1;
    size_t best_end = 0;
    uint32_t node = 0;
    for (size_t j = i; j < text.size(); ++j) {
      node = child(node, static_cast<unsigned char>(text[j]));
      if (node == kNone) break;
      const int32_t t = nodes_[node].token;
      if (t >= 0 && accept(tokens_[static_cast<size_t>(t)], text, i, j + 1, parse_special)) {
        best = t;
        best_end = j + 1;
      }
    }
    if (best < 0) {
      ++i;
      continue;
    }
    const AddedToken& token = tokens_[static_cast<size_t>(best)];
    size_t match_begin = i, match_end = best_end;
    if (token.lstrip) {
      while (match_begin > text_begin) {
        const size_t before = match_begin;
        size_t start = before - 1;
        while (start > text_begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t probe = start;
        if (!unicode::is_white_space(utf8::next(text, probe))) break;
        match_begin = start;
      }
    }
    if (token.rstrip) {
      while (match_end < text.size()) {
        size_t next = match_end;
        if (!unicode::is_white_space(utf8::next(text, next))) break;
        match_end = next;
      }
    }
    flush_text(match_begin);
    out.push_back({static_cast<uint32_t>(match_begin), static_cast<uint32_t>(match_end), token.id});
    text_begin = i = match_end;
  }
  flush_text(text.size());
}

}  // namespace canopy
