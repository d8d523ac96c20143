#include "tokenizer/pre_tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace canopy {
namespace {

// A region of a piece, marked as a match of the splitter or not.
struct Region {
  uint32_t begin, end;
  bool match;
};

// Marks the regions of text[begin, end) for splitter `s`: matches and the gaps between them, in
// order, covering the piece.
void find_regions(const Splitter& s, std::string_view text, uint32_t begin, uint32_t end,
                  std::vector<Region>& regions) {
  regions.clear();
  const std::string_view piece = text.substr(begin, end - begin);
  uint32_t previous = 0;
  auto add_match = [&](size_t b, size_t e) {
    if (b > previous) regions.push_back({begin + previous, static_cast<uint32_t>(begin + b), false});
    regions.push_back({static_cast<uint32_t>(begin + b), static_cast<uint32_t>(begin + e), true});
    previous = static_cast<uint32_t>(e);
  };
  switch (s.kind) {
    case Splitter::Kind::Regex:
      s.regex->for_each_match(piece, add_match);
      break;
    case Splitter::Kind::Numeric:
    case Splitter::Kind::Char:
    case Splitter::Kind::WhiteSpace: {
      size_t i = 0;
      while (i < piece.size()) {
        const size_t start = i;
        const char32_t cp = utf8::next(piece, i);
        const bool hit = s.kind == Splitter::Kind::Numeric ? unicode::is_numeric(cp)
                         : s.kind == Splitter::Kind::Char  ? cp == s.ch
                                                           : unicode::is_white_space(cp);
        if (hit) add_match(start, i);
      }
      break;
    }
  }
  if (previous < piece.size()) regions.push_back({begin + previous, end, false});
  if (s.invert)
    for (Region& r : regions) r.match = !r.match;
}

// Applies the splitter's behaviour to the regions and appends the resulting pieces (Hugging
// Face's NormalizedString::split).
void emit(SplitBehavior behavior, const std::vector<Region>& regions, std::vector<Piece>& out) {
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const Region& r : regions) out.emplace_back(r.begin, r.end);
      break;
    case SplitBehavior::Removed:
      for (const Region& r : regions)
        if (!r.match) out.emplace_back(r.begin, r.end);
      break;
    case SplitBehavior::Contiguous: {
      const size_t first = out.size();
      bool previous_match = false;
      for (const Region& r : regions) {
        if (r.match == previous_match && out.size() > first)
          out.back().second = r.end;
        else
          out.emplace_back(r.begin, r.end);
        previous_match = r.match;
      }
      break;
    }
    case SplitBehavior::MergedWithPrevious: {
      const size_t first = out.size();
      bool previous_match = false;
      for (const Region& r : regions) {
        if (r.match && !previous_match && out.size() > first)
          out.back().second = r.end;
        else
          out.emplace_back(r.begin, r.end);
        previous_match = r.match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      // The mirror image of MergedWithPrevious: walk backwards, then restore the order.
      const size_t first = out.size();
      bool previous_match = false;
      for (auto it = regions.rbegin(); it != regions.rend(); ++it) {
        if (it->match && !previous_match && out.size() > first)
          out.back().first = it->begin;
        else
          out.emplace_back(it->begin, it->end);
        previous_match = it->match;
      }
      std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
      break;
    }
  }
}

}  // namespace

std::string PreTokenizer::transform(std::string_view text, bool at_input_start) const {
  std::string out;
  if (transform_.replace_spaces_with.empty()) {
    out.assign(text);
  } else {
    out.reserve(text.size() + 16);
    for (const char c : text) {
      if (c == ' ')
        out.append(transform_.replace_spaces_with);
      else
        out.push_back(c);
    }
  }
  // As in Hugging Face, the prefix is checked for after the replacement of spaces.
  const bool prepend = !transform_.prepend.empty() && !out.empty() &&
                       (!transform_.prepend_only_at_start || at_input_start) &&
                       !(transform_.prepend_unless_present && out.starts_with(transform_.prepend));
  if (prepend) out.insert(0, transform_.prepend);
  return out;
}

void PreTokenizer::split(std::string_view text, std::vector<Piece>& pieces, std::vector<Piece>& scratch) const {
  if (text.size() > UINT32_MAX) fail("text of {} bytes is too long to tokenize in one piece", text.size());
  const size_t first = pieces.size();
  pieces.emplace_back(0u, static_cast<uint32_t>(text.size()));
  thread_local std::vector<Region> regions;
  for (const Splitter& s : splitters_) {
    scratch.assign(pieces.begin() + static_cast<std::ptrdiff_t>(first), pieces.end());
    pieces.resize(first);
    for (const Piece& p : scratch) {
      if (p.first == p.second) continue;
      find_regions(s, text, p.first, p.second, regions);
      emit(s.behavior, regions, pieces);
    }
  }
  // Empty pieces carry nothing to encode.
  std::erase_if(pieces, [](const Piece& p) { return p.first == p.second; });
}

}  // namespace canopy
