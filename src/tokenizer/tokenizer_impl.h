// Inside the tokenizer: what every loader produces (TokenizerSpec) and the compiled, immutable
// tokenizer built from it (Tokenizer::Impl). Not part of the public API.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocabulary.h"

namespace canopy {

// Ids are range-checked against this bound whenever they come from a file.
inline constexpr int64_t kMaxVocabSize = 1 << 24;

// A tokenizer as its files describe it, before compilation. Loaders fill it in.
struct TokenizerSpec {
  std::string source;  // the file(s) it came from, named in every error message
  std::string kind;    // e.g. "tokenizer.json, byte-level BPE" (for Tokenizer::description)

  // The model's vocabulary: tokens[id] as the file writes it ("" for ids the file leaves out).
  std::vector<std::string> tokens;
  bool byte_level = false;  // tokens are written in the byte-level alphabet (see byte_level.h)

  // Merge rules: pairs of token strings, best first. Without merges, SentencePiece scores
  // (one per token; higher merges first) give the rules, over the tokens marked mergeable.
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<float> scores;
  std::vector<bool> mergeable;  // empty: every token

  BpeModel::Config bpe;
  std::vector<AddedToken> added;

  Normalizer normalizer;
  PreTokenizer pre_tokenizer;

  // What add_special adds around the ids.
  std::vector<int32_t> prefix, suffix;
  std::optional<int32_t> bos;
  std::vector<int32_t> eos;

  // Decoding. Tokens of the model decode as: their bytes (byte_level); "<0xXX>" as that byte
  // (decode_byte_fallback); else their text with each `decode_replacements` pair applied.
  bool decode_byte_fallback = false;
  std::vector<std::pair<std::string, std::string>> decode_replacements;
  int strip_leading_spaces = 0;  // spaces removed from the start of the decoded text
};

struct Tokenizer::Impl {
  std::string description;
  std::vector<std::string> token_texts;  // [vocab_size]
  std::vector<uint8_t> special;          // [vocab_size]
  Vocabulary token_index;                // token_texts, for find_token

  Vocabulary model_vocab;  // model tokens in the model's alphabet (raw bytes when byte-level)
  BpeModel bpe;
  AddedTokenMatcher added;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;

  std::string decoded;                   // every token's decoded bytes, back to back
  std::vector<uint32_t> decoded_offsets;  // [vocab_size + 1]
  int strip_leading_spaces = 0;

  std::vector<int32_t> prefix, suffix;
  std::optional<int32_t> bos;
  std::vector<int32_t> eos;

  uint64_t serial = 0;  // unique per tokenizer built in this process (tags per-thread caches)

  std::string_view token_bytes(int32_t id) const {
    const auto i = static_cast<size_t>(id);
    return std::string_view(decoded).substr(decoded_offsets[i], decoded_offsets[i + 1] - decoded_offsets[i]);
  }
};

// Compiles a spec; throws canopy::Error (naming spec.source) when it is inconsistent.
Tokenizer build_tokenizer(TokenizerSpec spec);

// tokenizer.json (+ tokenizer_config.json, may be empty) -> spec; `source` names the file.
TokenizerSpec parse_hf_json(std::string_view tokenizer_json, std::string_view tokenizer_config,
                            const std::string& source);

// SentencePiece tokenizer.model bytes -> spec (BPE models only).
TokenizerSpec parse_sentencepiece_model(std::string_view bytes, const std::string& source);

// A regex that matches `literal` exactly (for Split and Replace patterns given as strings).
std::string regex_escape(std::string_view literal);

}  // namespace canopy
