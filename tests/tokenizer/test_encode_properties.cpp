// Properties of encode() beyond the goldens: round trips on random text, repaired invalid UTF-8,
// special-token handling, BOS never doubled, thread safety.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdlib>
#include <random>
#include <thread>

#include "shared_tokenizers.h"
#include "testing/testing.h"
#include "tokenizer/utf8.h"

namespace canopy {
namespace {

using canopy::testing::gpt2_tokenizer;
using canopy::testing::llama3_tokenizer;
using canopy::testing::mistral_tokenizer;
using canopy::testing::qwen3_tokenizer;
using Ids = std::vector<int32_t>;

// Random bytes, biased towards ASCII, spaces and pieces of multi-byte characters; often invalid.
std::string random_bytes(std::mt19937_64& rng, size_t n) {
  static const std::vector<std::string> pieces = {" ", "  ", "\n", "\t", "a", "Z", "9", "'s", "é", "你", "🦙", "\xE2\x96\x81",
                                                  "\xF0", "\x9F", "\xC3", "\xFF", "\x80", "<s>", "<|im_end|>", "\r\n"};
  std::string s;
  while (s.size() < n) {
    if (rng() % 3 == 0)
      s += pieces[rng() % pieces.size()];
    else
      s.push_back(static_cast<char>(rng() % 3 == 0 ? rng() % 256 : 32 + rng() % 95));
  }
  return s;
}

std::string nfc(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                              &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::string r(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

TEST(EncodeProperties, InvalidUtf8IsRepairedWithReplacementCharacters) {
  for (const Tokenizer* tok : {&llama3_tokenizer(), &mistral_tokenizer()}) {
    EXPECT_EQ(tok->encode("a\xFF" "b"), tok->encode("a\xEF\xBF\xBD" "b"));
    EXPECT_EQ(tok->encode("\xF0\x9F\xA6"), tok->encode("\xEF\xBF\xBD"));
    EXPECT_EQ(tok->decode(tok->encode("x\xC3")), "x\xEF\xBF\xBD");
  }
}

TEST(EncodeProperties, ByteLevelRoundTripsEveryText) {
  // Llama 3 and GPT-2 have no normalizer and a token for every byte: decode(encode(x)) == x for
  // any valid UTF-8 x (invalid input round-trips to its repaired form), special tokens included.
  std::mt19937_64 rng(canopy::testing::test_seed());
  for (const Tokenizer* tok : {&llama3_tokenizer(), &gpt2_tokenizer()}) {
    for (int i = 0; i < 300; ++i) {
      const std::string text = random_bytes(rng, rng() % 200);
      const std::string valid = utf8::sanitize(text);
      for (const bool parse_special : {true, false})
        ASSERT_EQ(tok->decode(tok->encode(text, false, parse_special)), valid) << tok->description();
    }
  }
}

TEST(EncodeProperties, Qwen3RoundTripsToNfc) {
  std::mt19937_64 rng(canopy::testing::test_seed());
  const Tokenizer& tok = qwen3_tokenizer();
  for (int i = 0; i < 300; ++i) {
    const std::string valid = utf8::sanitize(random_bytes(rng, rng() % 200)) + "e\xCC\x81";
    ASSERT_EQ(tok.decode(tok.encode(valid)), nfc(valid));
  }
}

TEST(EncodeProperties, SentencePieceRoundTripsPlainText) {
  // Mistral's "▁" prefix is stripped again by its decoder; text that itself contains "▁" or
  // special-token text (which gets a "▁" after it) is the documented exception.
  std::mt19937_64 rng(canopy::testing::test_seed());
  const Tokenizer& tok = mistral_tokenizer();
  for (int i = 0; i < 300; ++i) {
    const std::string raw = utf8::sanitize(random_bytes(rng, rng() % 200));
    std::string text;
    for (size_t p = 0; p < raw.size(); ++p) {
      if (raw.compare(p, 3, "\xE2\x96\x81") == 0) {
        text += '_';
        p += 2;
      } else {
        text += raw[p];
      }
    }
    ASSERT_EQ(tok.decode(tok.encode(text, false, /*parse_special=*/false)), text);
  }
}

TEST(EncodeProperties, SpecialTokenTextIsParsedOnlyWhenAsked) {
  const Tokenizer& tok = qwen3_tokenizer();
  const int32_t im_start = *tok.find_token("<|im_start|>");
  EXPECT_TRUE(tok.is_special(im_start));
  EXPECT_EQ(tok.encode("<|im_start|>user"), (Ids{im_start, *tok.find_token("user")}));
  const auto plain = tok.encode("<|im_start|>user", false, /*parse_special=*/false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), im_start), 0);
  EXPECT_EQ(tok.decode(plain), "<|im_start|>user");
  // Non-special added tokens (<think>) are always recognized.
  const int32_t think = *tok.find_token("<think>");
  EXPECT_FALSE(tok.is_special(think));
  EXPECT_EQ(tok.encode("<think>", false, false), (Ids{think}));
  EXPECT_EQ(tok.decode(Ids{im_start, think}, /*skip_special=*/true), "<think>");
}

TEST(EncodeProperties, AddSpecialNeverAddsASecondBos) {
  const Tokenizer& tok = mistral_tokenizer();
  ASSERT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.encode("Hello", true), (Ids{1, 22557}));
  EXPECT_EQ(tok.encode("<s>Hello", true), (Ids{1, 22557}));       // the text's own BOS is kept, not doubled
  EXPECT_EQ(tok.encode("<s>Hello", false), (Ids{1, 22557}));
  EXPECT_EQ(tok.encode("<s>Hello", true, false).front(), 1);      // BOS added; "<s>" is text here
  EXPECT_EQ(tok.encode("<s>Hello", true, false)[1], 523);        // "▁<"
  // Llama 3's tokenizer.json adds no BOS by itself (its post-processor is ByteLevel only).
  EXPECT_EQ(llama3_tokenizer().encode("Hello", true), llama3_tokenizer().encode("Hello", false));
  EXPECT_EQ(llama3_tokenizer().bos_id(), 128000);
  EXPECT_EQ(llama3_tokenizer().eos_ids(), (Ids{128001}));
}

TEST(EncodeProperties, ConcurrentCallersGetTheSameIds) {
  const Tokenizer& tok = llama3_tokenizer();
  std::mt19937_64 rng(canopy::testing::test_seed());
  std::vector<std::string> texts;
  for (int i = 0; i < 64; ++i) texts.push_back(random_bytes(rng, 300));
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(tok.encode(t));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      for (int rep = 0; rep < 5; ++rep)
        for (size_t i = 0; i < texts.size(); ++i)
          if (tok.encode(texts[(i + static_cast<size_t>(w)) % texts.size()]) != expected[(i + static_cast<size_t>(w)) % texts.size()])
            ++mismatches[static_cast<size_t>(w)];
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches, (std::vector<int>{0, 0, 0, 0}));
}

TEST(EncodeProperties, LongInputsStayExact) {
  // One long text equals the concatenation of its lines' encodings when lines end in "\n" and
  // the next starts with a letter (GPT-2's split never joins "\n" to a following letter).
  const Tokenizer& tok = gpt2_tokenizer();
  std::string text;
  Ids joined;
  for (int i = 0; i < 2000; ++i) {
    const std::string line = "line " + std::to_string(i) + " of a long text\n";
    text += line;
    const auto ids = tok.encode(line);
    joined.insert(joined.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(tok.encode(text), joined);
}

}  // namespace
}  // namespace canopy
