// The text of one generated sample, built as its tokens arrive: decoded incrementally (special
// tokens left out, characters never split) and cut at the first stop string.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "api/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace canopy::cli {

class SampleText {
 public:
  // continues_prompt: the text continues a prompt (completions), so a SentencePiece-style leading
  // space is kept; a chat reply starts a text of its own.
  SampleText(const Tokenizer& tokenizer, const std::vector<std::string>& stops, bool continues_prompt);

  // Adds a generated token; returns false once a stop string has appeared (the sample should
  // stop). Ids outside the tokenizer's vocabulary (models often pad theirs) add no text.
  bool push(int32_t token);
  // Flushes what the decoder holds back (an unfinished character becomes U+FFFD); call once, at
  // the end. A stop string completed by the flush still cuts the text.
  void finish();

  bool stopped() const { return matcher_.stopped(); }
  const std::string& text() const { return matcher_.text(); }
  // Where each pushed token's text starts in text() (tokens past a stop string start at or after
  // its end: callers drop them).
  const std::vector<size_t>& token_offsets() const { return offsets_; }

 private:
  int32_t vocab_size_;
  StreamDecoder decoder_;
  StopStringMatcher matcher_;
  std::vector<size_t> offsets_;
};

}  // namespace canopy::cli
