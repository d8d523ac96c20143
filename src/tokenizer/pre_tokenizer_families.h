// The pre-tokenizers of well-known tokenizer families, by the names GGUF files give them in
// tokenizer.ggml.pre. A GGUF file names its family instead of spelling out the split patterns, so
// canopy keeps the patterns here, written from the tokenizer.json files those families ship with.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pre_tokenizer.h"

namespace canopy {

// GPT-2's split pattern (also what a Hugging Face ByteLevel pre-tokenizer with use_regex applies).
extern const char* const kGpt2SplitPattern;

struct PreTokenizerFamily {
  std::vector<Splitter> splitters;
  bool ignore_merges = false;  // the family's BPE keeps whole-word tokens unmerged (Llama 3)
};

// The byte-level BPE pre-tokenizer for `name`; nullopt when canopy does not know it.
std::optional<PreTokenizerFamily> find_pre_tokenizer_family(std::string_view name);
// Every name find_pre_tokenizer_family knows, comma-separated (for error messages).
std::string known_pre_tokenizer_families();

}  // namespace canopy
