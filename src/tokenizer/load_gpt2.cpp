// GPT-2's original tokenizer files: encoder.json (token -> id) and vocab.bpe (merges).
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/pre_tokenizer_families.h"
#include "tokenizer/tokenizer_impl.h"

namespace canopy {

Tokenizer Tokenizer::from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe) {
  TokenizerSpec spec;
  spec.source = encoder_json + " + " + vocab_bpe;
  spec.kind = "GPT-2 files, byte-level BPE";
  spec.byte_level = true;
  nlohmann::json encoder;
  try {
    encoder = nlohmann::json::parse(read_text_file(encoder_json));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", encoder_json, e.what());
  }
  CANOPY_CHECK(encoder.is_object(), "{}: not a JSON object of token -> id", encoder_json);
  for (const auto& [text, id_json] : encoder.items()) {
    CANOPY_CHECK(id_json.is_number_integer(), "{}: token '{}' has no integer id", encoder_json, text);
    const auto id = id_json.get<int64_t>();
    CANOPY_CHECK(id >= 0 && id < kMaxVocabSize, "{}: token '{}' has an id out of range: {}", encoder_json, text, id);
    if (static_cast<size_t>(id) >= spec.tokens.size()) spec.tokens.resize(static_cast<size_t>(id) + 1);
    spec.tokens[static_cast<size_t>(id)] = text;
  }
  const std::string merges = read_text_file(vocab_bpe);
  size_t pos = 0;
  while (pos < merges.size()) {
    size_t end = merges.find('\n', pos);
    if (end == std::string::npos) end = merges.size();
    std::string_view line(merges.data() + pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.starts_with("#version")) continue;
    const size_t space = line.find(' ', 1);
    CANOPY_CHECK(space != std::string_view::npos, "{}: line '{}' is not two tokens separated by a space", vocab_bpe,
                 line);
    spec.merges.emplace_back(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
  }
  Splitter split;
  split.regex = std::make_shared<Regex>(kGpt2SplitPattern);
  spec.pre_tokenizer.add(std::move(split));
  for (size_t id = 0; id < spec.tokens.size(); ++id) {
    if (spec.tokens[id] != "<|endoftext|>") continue;
    spec.added.push_back({static_cast<int32_t>(id), spec.tokens[id], true});
    spec.bos = static_cast<int32_t>(id);
    spec.eos = {static_cast<int32_t>(id)};
  }
  return build_tokenizer(std::move(spec));
}

}  // namespace canopy
