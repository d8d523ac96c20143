// Pre-tokenizers: how a stretch of normalized text is cut into pieces ("pre-tokens") that BPE
// then encodes one at a time (Hugging Face's "pre_tokenizer" section, or a GGUF regex family).
//
// The cuts follow Hugging Face's splitting rules: a splitter marks regions of a piece as matches
// or not, and its behaviour decides what becomes of the matches (kept as pieces of their own,
// removed, merged into the previous or next piece, or merged with adjacent matches). Splitters run
// in order, each on every piece the previous one produced.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/regex.h"

namespace canopy {

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Splitter {
  enum class Kind {
    Regex,    // matches of `regex`
    Numeric,  // each numeric code point (general category N) is a match (HF Digits)
    Char,     // each occurrence of the code point `ch` is a match
    WhiteSpace,  // each White_Space code point is a match (HF WhitespaceSplit)
  };
  Kind kind = Kind::Regex;
  std::shared_ptr<const Regex> regex;
  char32_t ch = 0;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;  // swap matches and non-matches before applying the behaviour
};

// A piece of the text being pre-tokenized: [begin, end) in bytes.
using Piece = std::pair<uint32_t, uint32_t>;

class PreTokenizer {
 public:
  // Text transformations that some pre-tokenizers make before splitting (Metaspace, ByteLevel).
  struct Transform {
    std::string replace_spaces_with;  // Metaspace: ' ' becomes this (empty: no replacement)
    std::string prepend;              // prepended to the text...
    bool prepend_only_at_start = false;  // ...only to text that starts the input (Metaspace "first")
    bool prepend_unless_present = false;  // ...unless the text already starts with it (ByteLevel)
  };

  void set_transform(Transform t) { transform_ = std::move(t); }
  void add(Splitter s) { splitters_.push_back(std::move(s)); }
  bool has_transform() const { return !transform_.replace_spaces_with.empty() || !transform_.prepend.empty(); }
  size_t splitter_count() const { return splitters_.size(); }

  // Applies the transform to `text` (at_input_start: the text begins the whole input).
  std::string transform(std::string_view text, bool at_input_start) const;

  // Cuts `text` into pieces, appended to `pieces`; `scratch` is working space.
  void split(std::string_view text, std::vector<Piece>& pieces, std::vector<Piece>& scratch) const;

 private:
  Transform transform_;
  std::vector<Splitter> splitters_;
};

}  // namespace canopy
