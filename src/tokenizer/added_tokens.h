// Added tokens (special tokens such as <|im_start|> and user-defined ones such as <think>): they
// are found in the raw text before anything else happens, leftmost first and longest first, and
// become their ids directly; only the text between them is normalized, pre-tokenized and BPE'd.
//
// Special tokens are found only when the caller asks to parse special-token text; other added
// tokens are always found (as Hugging Face and llama.cpp do). Every added token is matched on the
// raw text (Hugging Face can also match "normalized" added tokens on normalized text; the
// tokenizers canopy supports do not rely on that).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace canopy {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;       // the match also swallows whitespace on its left
  bool rstrip = false;       // ...and on its right
  bool single_word = false;  // matches only when not inside a word
};

class AddedTokenMatcher {
 public:
  struct Segment {
    uint32_t begin, end;  // bytes of the input
    int32_t id;           // the added token's id, or -1 for text to tokenize
  };

  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(const std::vector<AddedToken>& tokens);

  bool empty() const { return nodes_.size() <= 1; }

  // Cuts `text` into added tokens and the text between them (empty text segments are left out).
  void split(std::string_view text, bool parse_special, std::vector<Segment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, uint32_t>> children;  // sorted by byte
    int32_t token = -1;                                        // index into tokens_ when a token ends here
  };
  uint32_t child(uint32_t node, unsigned char byte) const;
  bool accept(const AddedToken& token, std::string_view text, size_t begin, size_t end, bool parse_special) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};
};

}  // namespace canopy
