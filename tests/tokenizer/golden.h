// Reading the tokenizer goldens of tests/data/tokenizer/*.jsonl (see tools/make_tokenizer_goldens.py).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace canopy::testing {

struct EncodeCase {
  std::string text;
  std::vector<int32_t> ids;
  std::optional<std::vector<int32_t>> ids_no_special;   // when it differs from ids
  std::optional<std::vector<int32_t>> ids_add_special;  // for some cases
  std::optional<std::string> decoded;                   // when decode(ids) != text
};

struct DecodeCase {
  std::vector<int32_t> ids;
  std::string decoded, decoded_skip_special;
};

struct Goldens {
  nlohmann::json header;
  std::vector<EncodeCase> encode;
  std::vector<DecodeCase> decode;
};

Goldens read_goldens(const std::string& name);

// "[1, 2, 3]" for messages.
std::string format_ids(const std::vector<int32_t>& ids);
// The text with control and non-ASCII bytes escaped, for messages.
std::string escape(const std::string& text);

}  // namespace canopy::testing
