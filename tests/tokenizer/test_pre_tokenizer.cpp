// Pre-tokenizer splitting rules, checked against Hugging Face `tokenizers` on small inputs (the
// expected pieces below were printed by tokenizers 0.23 for the same pre-tokenizers).
#include <gtest/gtest.h>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/pre_tokenizer_families.h"
#include "tokenizer/regex.h"

namespace canopy {
namespace {

std::vector<std::string> pieces(const PreTokenizer& p, std::string_view text, bool at_start = true) {
  const std::string t = p.transform(text, at_start);
  std::vector<Piece> out, scratch;
  p.split(t, out, scratch);
  std::vector<std::string> result;
  for (const auto& [b, e] : out) result.push_back(t.substr(b, e - b));
  return result;
}

PreTokenizer split(const char* pattern, SplitBehavior behavior, bool invert) {
  PreTokenizer p;
  Splitter s;
  s.regex = std::make_shared<Regex>(pattern);
  s.behavior = behavior;
  s.invert = invert;
  p.add(s);
  return p;
}

using V = std::vector<std::string>;

TEST(PreTokenizer, SplitBehaviorsMatchHuggingFace) {
  const std::string text = "Hey friend!     How are you?!?  12 3";
  const char* re = R"(\s+|[?!])";
  EXPECT_EQ(pieces(split(re, SplitBehavior::Removed, false), text), (V{"Hey", "friend", "How", "are", "you", "12", "3"}));
  EXPECT_EQ(pieces(split(re, SplitBehavior::Removed, true), text),
            (V{" ", "!", "     ", " ", " ", "?", "!", "?", "  ", " "}));
  const V isolated{"Hey", " ", "friend", "!", "     ", "How", " ", "are", " ", "you", "?", "!", "?", "  ", "12", " ", "3"};
  EXPECT_EQ(pieces(split(re, SplitBehavior::Isolated, false), text), isolated);
  EXPECT_EQ(pieces(split(re, SplitBehavior::Isolated, true), text), isolated);
  const V with_previous{"Hey ", "friend!", "     ", "How ", "are ", "you?", "!", "?", "  ", "12 ", "3"};
  const V with_next{"Hey", " friend", "!", "     How", " are", " you", "?", "!", "?", "  12", " 3"};
  EXPECT_EQ(pieces(split(re, SplitBehavior::MergedWithPrevious, false), text), with_previous);
  EXPECT_EQ(pieces(split(re, SplitBehavior::MergedWithPrevious, true), text), with_next);
  EXPECT_EQ(pieces(split(re, SplitBehavior::MergedWithNext, false), text), with_next);
  EXPECT_EQ(pieces(split(re, SplitBehavior::MergedWithNext, true), text), with_previous);
  const V contiguous{"Hey", " ", "friend", "!     ", "How", " ", "are", " ", "you", "?!?  ", "12", " ", "3"};
  EXPECT_EQ(pieces(split(re, SplitBehavior::Contiguous, false), text), contiguous);
  EXPECT_EQ(pieces(split(re, SplitBehavior::Contiguous, true), text), contiguous);
}

TEST(PreTokenizer, DigitsAreUnicodeNumerics) {
  PreTokenizer grouped, individual;
  Splitter s;
  s.kind = Splitter::Kind::Numeric;
  s.behavior = SplitBehavior::Contiguous;
  grouped.add(s);
  s.behavior = SplitBehavior::Isolated;
  individual.add(s);
  EXPECT_EQ(pieces(grouped, "a12b٣٤5 x"), (V{"a", "12", "b", "٣٤5", " x"}));
  EXPECT_EQ(pieces(individual, "a12b٣٤5 x"), (V{"a", "1", "2", "b", "٣", "٤", "5", " x"}));
}

TEST(PreTokenizer, MetaspaceReplacesPrependsAndSplits) {
  PreTokenizer p;
  PreTokenizer::Transform t;
  t.replace_spaces_with = "▁";
  t.prepend = "▁";
  t.prepend_unless_present = true;
  p.set_transform(t);
  Splitter s;
  s.kind = Splitter::Kind::Char;
  s.ch = 0x2581;
  s.behavior = SplitBehavior::MergedWithNext;
  p.add(s);
  EXPECT_EQ(pieces(p, "Hey  you there"), (V{"▁Hey", "▁", "▁you", "▁there"}));

  PreTokenizer first;
  t.prepend_only_at_start = true;
  first.set_transform(t);
  EXPECT_EQ(pieces(first, " Hey you"), (V{"▁Hey▁you"}));
  EXPECT_EQ(pieces(first, "Hey you", /*at_start=*/false), (V{"Hey▁you"}));
  EXPECT_EQ(pieces(first, "Hey you", /*at_start=*/true), (V{"▁Hey▁you"}));
}

TEST(PreTokenizer, Gpt2PatternWithPrefixSpace) {
  PreTokenizer p;
  PreTokenizer::Transform t;
  t.prepend = " ";
  t.prepend_unless_present = true;
  p.set_transform(t);
  Splitter s;
  s.regex = std::make_shared<Regex>(kGpt2SplitPattern);
  p.add(s);
  EXPECT_EQ(pieces(p, "Hey  you"), (V{" Hey", " ", " you"}));
}

TEST(PreTokenizer, WhiteSpaceIsUnicodeWhiteSpaceNotPcre2s) {
  // Oniguruma's \s is White_Space; PCRE2's would also take U+180E (Mongolian vowel separator).
  PreTokenizer p = split(R"(\s+)", SplitBehavior::Removed, false);
  EXPECT_EQ(pieces(p, "a\u00a0b\u3000c\u180ed\u2028e\u0085f\u200bg"), (V{"a", "b", "c\u180ed", "e", "f\u200bg"}));
  EXPECT_EQ(translate_whitespace_classes(R"([^\s\p{L}]\s)"),
            R"([^\x{9}-\x{D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\p{L}])"
            R"([\x{9}-\x{D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}])");
}

TEST(PreTokenizer, Llama3PatternOnTrickyText) {
  auto family = find_pre_tokenizer_family("llama-bpe");
  ASSERT_TRUE(family.has_value());
  EXPECT_TRUE(family->ignore_merges);
  PreTokenizer p;
  for (auto& s : family->splitters) p.add(s);
  // Expected pieces from HF's pre_tokenize_str on Llama 3's tokenizer.json (byte-level mapping undone).
  EXPECT_EQ(pieces(p, "a\u00a0\u00a0b"), (V{"a", "\u00a0", "\u00a0b"}));
  EXPECT_EQ(pieces(p, "x\u180e\u180ey"), (V{"x", "\u180e\u180e", "y"}));
  EXPECT_EQ(pieces(p, "'ſ 'K 'S"), (V{"'ſ", " '", "K", " '", "S"}));
  EXPECT_EQ(pieces(p, "x  \u00a0y"), (V{"x", "  ", "\u00a0y"}));
  EXPECT_EQ(pieces(p, "12345 don't\n\n  x"), (V{"123", "45", " don", "'t", "\n\n", " ", " x"}));
}

TEST(PreTokenizer, EveryFamilyCompilesAndCoversItsInput) {
  const std::string text = "Hello, wörld! 12345 \t\n 你好 🦙 x's";
  for (const char* name : {"llama3", "qwen2", "gpt-2", "starcoder", "smollm", "deepseek-llm", "deepseek-coder",
                           "deepseek-v3", "falcon", "bloom", "viking", "tekken", "gpt-4o", "default"}) {
    auto family = find_pre_tokenizer_family(name);
    ASSERT_TRUE(family.has_value()) << name;
    PreTokenizer p;
    for (auto& s : family->splitters) p.add(s);
    std::string joined;
    for (const auto& piece : pieces(p, text)) joined += piece;
    EXPECT_EQ(joined, text) << name << ": Isolated splits must keep every byte";
  }
  EXPECT_FALSE(find_pre_tokenizer_family("no-such-family").has_value());
}

TEST(PreTokenizer, LongWhitespaceRunsAreLinearAndSafe) {
  auto family = find_pre_tokenizer_family("llama3");
  PreTokenizer p;
  for (auto& s : family->splitters) p.add(s);
  const std::string text = std::string(200000, ' ') + "x" + std::string(100000, '\n') + std::string(100000, '!');
  size_t total = 0;
  for (const auto& piece : pieces(p, text)) total += piece.size();
  EXPECT_EQ(total, text.size());
}

}  // namespace
}  // namespace canopy
