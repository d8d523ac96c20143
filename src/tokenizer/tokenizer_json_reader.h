// Reads a tokenizer.json quickly. The file is mostly two huge members, model.vocab (100K+
// entries) and model.merges (100K+ pairs); building a JSON tree for them costs a second, so a
// SAX pass streams them into flat vectors and builds a tree only for everything else.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace canopy {

struct TokenizerJson {
  nlohmann::json root;  // the whole file except model.vocab and model.merges
  bool has_vocab = false, has_merges = false;
  std::vector<std::pair<std::string, int64_t>> vocab;            // model.vocab, in file order
  std::vector<std::pair<std::string, std::string>> merges;      // model.merges, best first
};

// Throws canopy::Error naming `source` when the text is not JSON, or when model.vocab is not an
// object of integers or model.merges not a list of "a b" strings or ["a", "b"] pairs.
TokenizerJson read_tokenizer_json(std::string_view text, const std::string& source);

}  // namespace canopy
