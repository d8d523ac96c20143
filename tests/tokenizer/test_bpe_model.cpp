// BPE merge order, unknown characters, byte fallback and ignore_merges on tiny vocabularies
// (expected ids printed by Hugging Face `tokenizers` 0.23 for the same tokenizer.json).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace canopy {
namespace {

using Json = nlohmann::json;
using Ids = std::vector<int32_t>;

Json tiny_model(bool fuse_unk, bool ignore_merges) {
  return Json{{"type", "BPE"},
              {"unk_token", "<unk>"},
              {"fuse_unk", fuse_unk},
              {"byte_fallback", false},
              {"ignore_merges", ignore_merges},
              {"vocab", {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"aa", 5}, {"bc", 6}, {"ab", 7}, {"cd", 8}, {"abcd", 9}}},
              {"merges", Json::array({Json::array({"a", "a"}), Json::array({"b", "c"}), "a b", "c d"})}};
}

Tokenizer tiny(bool fuse_unk, bool ignore_merges = false, Json pre_tokenizer = nullptr) {
  const Json j{{"model", tiny_model(fuse_unk, ignore_merges)}, {"pre_tokenizer", pre_tokenizer}};
  return Tokenizer::from_hf_json_text(j.dump(), "", "tiny tokenizer.json");
}

TEST(BpeModel, LowestRankFirstAndLeftmostAmongEqualRanks) {
  for (const bool fuse : {true, false}) {
    const Tokenizer t = tiny(fuse);
    EXPECT_EQ(t.encode("aaa"), (Ids{5, 1}));   // (a,a) merges at the leftmost position first
    EXPECT_EQ(t.encode("aaaa"), (Ids{5, 5}));
    EXPECT_EQ(t.encode("abcd"), (Ids{1, 6, 4}));  // (b,c) outranks (a,b) and (c,d); nothing then joins a+bc
    EXPECT_EQ(t.encode("abcdabcd"), (Ids{1, 6, 4, 1, 6, 4}));
  }
}

TEST(BpeModel, UnknownCharactersFusedOrNot) {
  EXPECT_EQ(tiny(true).encode("abxyc"), (Ids{7, 0, 3}));
  EXPECT_EQ(tiny(true).encode("xy"), (Ids{0}));
  EXPECT_EQ(tiny(false).encode("abxyc"), (Ids{7, 0, 0, 3}));
  EXPECT_EQ(tiny(false).encode("xy"), (Ids{0, 0}));
}

TEST(BpeModel, IgnoreMergesKeepsWholeWordTokens) {
  const Tokenizer t = tiny(false, true, Json{{"type", "WhitespaceSplit"}});
  EXPECT_EQ(t.encode("abcd abcdd"), (Ids{9, 1, 6, 4, 4}));
}

TEST(BpeModel, ByteFallbackForCharactersOutsideTheVocabulary) {
  Json vocab = {{"<unk>", 0}, {"▁", 1}, {"h", 2}, {"i", 3}, {"▁h", 4}, {"▁hi", 5}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 6 + b;
  const Json j{{"normalizer",
                {{"type", "Sequence"},
                 {"normalizers", Json::array({Json{{"type", "Prepend"}, {"prepend", "▁"}},
                                              Json{{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}})}}},
               {"decoder",
                {{"type", "Sequence"},
                 {"decoders", Json::array({Json{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                                           Json{{"type", "ByteFallback"}}, Json{{"type", "Fuse"}},
                                           Json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
               {"model",
                {{"type", "BPE"},
                 {"unk_token", "<unk>"},
                 {"byte_fallback", true},
                 {"fuse_unk", true},
                 {"vocab", vocab},
                 {"merges", Json::array({"▁ h", "▁h i"})}}}};
  const Tokenizer t = Tokenizer::from_hf_json_text(j.dump(), "", "byte fallback tokenizer.json");
  // "é" is C3 A9: two byte tokens; "hi" after a space merges into one token.
  EXPECT_EQ(t.encode("hi é"), (Ids{5, 1, 6 + 0xC3, 6 + 0xA9}));
  EXPECT_EQ(t.decode(t.encode("hi é")), "hi é");
  EXPECT_EQ(t.decode(Ids{6 + 0xC3}), "\xEF\xBF\xBD");  // half a character alone
}

}  // namespace
}  // namespace canopy
