// Normalizers: text transformations applied to each stretch of text between added tokens, before
// pre-tokenization (Hugging Face's "normalizer" section; SentencePiece's space handling).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace canopy {

class Normalizer {
 public:
  enum class Kind { NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, ReplaceRegex, Strip };
  struct Step {
    Kind kind;
    std::string text;         // Prepend: what to prepend; Replace*: the literal pattern
    std::string replacement;  // Replace*: what replaces each occurrence
    std::shared_ptr<const Regex> regex;  // ReplaceRegex
    bool strip_left = false, strip_right = false;  // Strip
  };

  void add(Step step) { steps_.push_back(std::move(step)); }
  bool empty() const { return steps_.empty(); }
  const std::vector<Step>& steps() const { return steps_; }

  // Applies every step in order to `text` (valid UTF-8) and returns the result.
  std::string apply(std::string_view text) const;

 private:
  std::vector<Step> steps_;
};

}  // namespace canopy
