// The tokenizer agrees with Hugging Face `tokenizers` on the committed goldens: ~1,570 varied
// strings per tokenizer (whitespace runs, digits, code, CJK, emoji, combining marks, special-token
// text...), with and without special-token parsing, with add_special, and decoding.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "golden.h"
#include "testing/testing.h"
#include "tokenizer/tokenizer.h"

namespace canopy {
namespace {

using canopy::testing::escape;
using canopy::testing::format_ids;

std::string tokenizers_dir() { return canopy::testing::shared_dir() + "/data/tokenizers"; }

// Collects mismatches and reports the first few in full, so that one run shows the pattern.
class Mismatches {
 public:
  void add(const std::string& what) {
    if (count_++ < 12) report_ += what + "\n";
  }
  void expect_none(const std::string& name, size_t cases) const {
    EXPECT_EQ(count_, 0u) << name << ": " << count_ << " mismatches over " << cases << " cases; first ones:\n"
                          << report_;
  }

 private:
  size_t count_ = 0;
  std::string report_;
};

// byte_level: the reference repairs invalid UTF-8 in decoded text the way canopy does.
void check_goldens(const std::string& name, const Tokenizer& tok, bool byte_level) {
  const auto g = canopy::testing::read_goldens(name);
  ASSERT_GE(g.encode.size(), 1000u) << "the corpus should hold at least 1,000 strings";
  // Some references (sentencepiece) never parse special-token text and leave special tokens out
  // when decoding.
  const bool reference_parses_special = g.header.value("parse_special", true);
  const bool reference_skips_special = g.header.value("decode_skips_special", false);
  Mismatches bad;
  for (const auto& c : g.encode) {
    const auto ids = tok.encode(c.text, /*add_special=*/false, /*parse_special=*/reference_parses_special);
    if (ids != c.ids)
      bad.add(fmt::format("encode(\"{}\"{}):\n    got      {}\n    expected {}", escape(c.text),
                          reference_parses_special ? "" : ", parse_special=false", format_ids(ids), format_ids(c.ids)));
    if (reference_parses_special) {
      const auto& expected_plain = c.ids_no_special ? *c.ids_no_special : c.ids;
      const auto plain = tok.encode(c.text, false, /*parse_special=*/false);
      if (plain != expected_plain)
        bad.add(fmt::format("encode(\"{}\", parse_special=false):\n    got      {}\n    expected {}", escape(c.text),
                            format_ids(plain), format_ids(expected_plain)));
    }
    if (c.ids_add_special) {
      const auto with = tok.encode(c.text, /*add_special=*/true, reference_parses_special);
      if (with != *c.ids_add_special)
        bad.add(fmt::format("encode(\"{}\", add_special):\n    got      {}\n    expected {}", escape(c.text),
                            format_ids(with), format_ids(*c.ids_add_special)));
    }
    const std::string expected_text = c.decoded ? *c.decoded : c.text;
    const std::string text = tok.decode(c.ids, reference_skips_special);
    if (text != expected_text)
      bad.add(fmt::format("decode({}):\n    got      \"{}\"\n    expected \"{}\"", format_ids(c.ids), escape(text),
                          escape(expected_text)));
  }
  for (const auto& d : g.decode) {
    // For invalid UTF-8, Hugging Face's ByteFallback decoder (and sentencepiece) write one U+FFFD
    // per byte, while canopy (like HF's ByteLevel decoder) writes one per maximal invalid
    // subpart: compare only where the reference has no replacement character.
    const std::string replacement = "\xEF\xBF\xBD";
    if (!reference_skips_special && (byte_level || d.decoded.find(replacement) == std::string::npos)) {
      const std::string text = tok.decode(d.ids);
      if (text != d.decoded)
        bad.add(fmt::format("decode({}):\n    got      \"{}\"\n    expected \"{}\"", format_ids(d.ids), escape(text),
                            escape(d.decoded)));
    }
    // sentencepiece writes the unknown token as " \u2047 "; canopy writes its text.
    const bool has_unknown = reference_skips_special && std::count(d.ids.begin(), d.ids.end(), 0) > 0;
    if ((byte_level || d.decoded_skip_special.find(replacement) == std::string::npos) && !has_unknown) {
      const std::string skipped = tok.decode(d.ids, /*skip_special=*/true);
      if (skipped != d.decoded_skip_special)
        bad.add(fmt::format("decode({}, skip_special):\n    got      \"{}\"\n    expected \"{}\"", format_ids(d.ids),
                            escape(skipped), escape(d.decoded_skip_special)));
    }
  }
  bad.expect_none(name, g.encode.size() + g.decode.size());
}

TEST(TokenizerGoldens, Llama3TokenizerJson) {
  const auto tok = Tokenizer::from_hf_json(tokenizers_dir() + "/llama3/tokenizer.json",
                                           tokenizers_dir() + "/llama3/tokenizer_config.json");
  check_goldens("llama3", tok, true);
}

TEST(TokenizerGoldens, Qwen3TokenizerJson) { check_goldens("qwen3", Tokenizer::load(tokenizers_dir() + "/qwen3"), true); }

TEST(TokenizerGoldens, MistralTokenizerJson) {
  check_goldens("mistral", Tokenizer::load(tokenizers_dir() + "/mistral/tokenizer.json"), false);
}

TEST(TokenizerGoldens, Gpt2EncoderJsonAndVocabBpe) {
  check_goldens("gpt2", Tokenizer::load(tokenizers_dir() + "/gpt2"), true);
}

TEST(TokenizerGoldens, Llama2SentencePieceModel) {
  const auto tok = Tokenizer::load(tokenizers_dir() + "/llama2-spm/tokenizer.model");
  EXPECT_EQ(tok.vocab_size(), 32000);
  EXPECT_EQ(tok.bos_id(), 1);
  check_goldens("llama2_spm", tok, false);
}

}  // namespace
}  // namespace canopy
