// Stop strings over streamed text: found when they straddle pieces, the earliest wins, text is cut
// where it begins; SampleText decodes tokens with a tokenizer file and stops on them.
#include <gtest/gtest.h>

#include <random>
#include <span>

#include "api/sample_text.h"
#include "api/stop_strings.h"
#include "testing/testing.h"

namespace canopy::cli {
namespace {

TEST(StopStrings, NoStopsKeepsEverything) {
  StopStringMatcher m({});
  EXPECT_FALSE(m.append("Hello"));
  EXPECT_FALSE(m.append(", world"));
  EXPECT_EQ(m.text(), "Hello, world");
  EXPECT_FALSE(m.stopped());
}

TEST(StopStrings, StraddlingPiecesAndEarliestMatch) {
  StopStringMatcher m({"END", "\n\n"});
  EXPECT_FALSE(m.append("one\n"));
  EXPECT_FALSE(m.append("two E"));
  EXPECT_FALSE(m.append("N"));
  EXPECT_TRUE(m.append("D three"));
  EXPECT_EQ(m.text(), "one\ntwo ");
  EXPECT_TRUE(m.stopped());
  EXPECT_TRUE(m.append("more"));  // ignored after the stop
  EXPECT_EQ(m.text(), "one\ntwo ");

  StopStringMatcher earliest({"cd", "b"});
  EXPECT_TRUE(earliest.append("abcd"));
  EXPECT_EQ(earliest.text(), "a");

  StopStringMatcher at_start({"ab"});
  EXPECT_TRUE(at_start.append("ab"));
  EXPECT_EQ(at_start.text(), "");
}

TEST(StopStrings, OverlappingPrefixes) {
  // "aab" appears only once the third piece arrives; the partial "aa" before must not hide it.
  StopStringMatcher m({"aab"});
  EXPECT_FALSE(m.append("xa"));
  EXPECT_FALSE(m.append("a"));
  EXPECT_FALSE(m.append("a"));
  EXPECT_TRUE(m.append("bz"));
  EXPECT_EQ(m.text(), "xa");
}

// Against a plain search of the whole text, on random pieces of a small alphabet.
TEST(StopStrings, MatchesAWholeTextSearch) {
  std::mt19937_64 rng(testing::test_seed());
  std::uniform_int_distribution<int> letter(0, 2), length(0, 4);
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<std::string> stops;
    for (int k = 0; k < 2; ++k) {
      std::string s(static_cast<size_t>(1 + length(rng) % 3), 'a');
      for (char& c : s) c = static_cast<char>('a' + letter(rng));
      stops.push_back(s);
    }
    StopStringMatcher m(stops);
    std::string all;
    bool stopped = false;
    for (int p = 0; p < 8 && !stopped; ++p) {
      std::string piece(static_cast<size_t>(length(rng)), 'a');
      for (char& c : piece) c = static_cast<char>('a' + letter(rng));
      all += piece;
      stopped = m.append(piece);
    }
    size_t expected = std::string::npos;
    for (const auto& s : stops) expected = std::min(expected, all.find(s));
    ASSERT_EQ(stopped, expected != std::string::npos) << all;
    if (stopped) {
      ASSERT_EQ(m.text(), all.substr(0, expected)) << all;
    }
  }
}

// The tiny byte-level tokenizer of run-batch's tests (tools/make_batch_fixtures.py): quick to load.
const Tokenizer& tiny_tokenizer() {
  static const Tokenizer t = Tokenizer::load(testing::source_dir() + "/tests/data/api/tiny-tokenizer");
  return t;
}

TEST(SampleText, DecodesTokensAndStopsOnText) {
  const Tokenizer& tok = tiny_tokenizer();
  const std::vector<int32_t> ids = tok.encode("The capital of France is Paris. It is big.");
  SampleText text(tok, {". It"}, /*continues_prompt=*/true);
  size_t pushed = 0;
  while (pushed < ids.size() && text.push(ids[pushed])) ++pushed;
  ASSERT_LT(pushed, ids.size());
  text.finish();
  EXPECT_TRUE(text.stopped());
  EXPECT_EQ(text.text(), "The capital of France is Paris");
  ASSERT_EQ(text.token_offsets().size(), pushed + 1);  // the token that completed the stop string too
  // Each token's text starts where the text decoded before it ends.
  for (size_t i = 0; i < pushed; ++i)
    EXPECT_EQ(text.token_offsets()[i], tok.decode(std::span<const int32_t>(ids.data(), i)).size()) << i;
}

TEST(SampleText, WholeCharactersAndUnknownIds) {
  const Tokenizer& tok = tiny_tokenizer();
  const std::vector<int32_t> ids = tok.encode("héllo → wörld");
  SampleText text(tok, {}, true);
  for (int32_t id : ids) EXPECT_TRUE(text.push(id));
  EXPECT_TRUE(text.push(tok.vocab_size() + 5));  // a padded model vocabulary: no text, no failure
  text.finish();
  EXPECT_EQ(text.text(), "héllo → wörld");
  EXPECT_FALSE(text.stopped());
  // A stop string made of a multi-byte character is found once the character is complete.
  SampleText arrow(tok, {"→"}, true);
  bool going = true;
  for (size_t i = 0; i < ids.size() && going; ++i) going = arrow.push(ids[i]);
  EXPECT_FALSE(going);
  EXPECT_EQ(arrow.text(), "héllo ");
}

TEST(SampleText, SpecialTokensAreLeftOut) {
  const Tokenizer& tok = tiny_tokenizer();
  SampleText text(tok, {}, true);
  for (int32_t id : tok.encode("Hi</s> there")) text.push(id);
  text.finish();
  EXPECT_EQ(text.text(), "Hi there");
}

}  // namespace
}  // namespace canopy::cli
