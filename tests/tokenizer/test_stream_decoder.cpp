// Streaming detokenization: the pieces add up to decode(), no piece ends inside a character, and
// no byte is lost.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <random>

#include "shared_tokenizers.h"
#include "testing/testing.h"
#include "core/error.h"
#include "tokenizer/utf8.h"

namespace canopy {
namespace {

using canopy::testing::gpt2_tokenizer;
using canopy::testing::llama3_tokenizer;
using canopy::testing::mistral_tokenizer;
using canopy::testing::qwen3_tokenizer;

std::string stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special,
                   std::vector<std::string>* pieces = nullptr) {
  StreamDecoder dec(tok, skip_special);
  std::string out;
  for (const int32_t id : ids) {
    std::string piece = dec.push(id);
    EXPECT_TRUE(utf8::is_valid(piece)) << "a streamed piece must be whole characters";
    if (pieces) pieces->push_back(piece);
    out += piece;
  }
  out += dec.finish();
  return out;
}

TEST(StreamDecoder, RandomIdsAddUpToDecode) {
  std::mt19937_64 rng(canopy::testing::test_seed());
  for (const Tokenizer* tok : {&llama3_tokenizer(), &qwen3_tokenizer(), &mistral_tokenizer(), &gpt2_tokenizer()}) {
    std::uniform_int_distribution<int32_t> any(0, tok->vocab_size() - 1), low(0, 600);
    for (int round = 0; round < 300; ++round) {
      std::vector<int32_t> ids(static_cast<size_t>(rng() % 24));
      for (auto& id : ids) id = (rng() & 1) ? any(rng) : low(rng);  // low ids: bytes, short pieces
      for (const bool skip : {false, true}) EXPECT_EQ(stream(*tok, ids, skip), tok->decode(ids, skip)) << tok->description();
    }
  }
}

TEST(StreamDecoder, HoldsBackSplitCharactersUntilComplete) {
  const Tokenizer& tok = llama3_tokenizer();
  // Byte-level tokens of the single bytes of "🦙" (F0 9F A6 99).
  std::vector<int32_t> ids;
  for (const unsigned char b : std::string("a🦙b")) {
    // In a byte-level vocabulary every byte has its own token; find it by its decoded bytes.
    for (int32_t id = 0; id < 512; ++id)
      if (tok.token_bytes(id) == std::string(1, static_cast<char>(b))) {
        ids.push_back(id);
        break;
      }
  }
  ASSERT_EQ(ids.size(), 6u);
  std::vector<std::string> pieces;
  EXPECT_EQ(stream(tok, ids, false, &pieces), "a🦙b");
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", "", "", "", "🦙", "b"}));
}

TEST(StreamDecoder, UnfinishedCharacterAtTheEndBecomesOneReplacement) {
  const Tokenizer& tok = mistral_tokenizer();
  const auto byte = [&](int b) { return *tok.find_token(fmt::format("<0x{:02X}>", b)); };
  StreamDecoder dec(tok);
  EXPECT_EQ(dec.push(byte(0xF0)), "");
  EXPECT_EQ(dec.push(byte(0x9F)), "");
  EXPECT_EQ(dec.finish(), "\xEF\xBF\xBD");
  // An impossible continuation is replaced at once, and the byte that broke it is kept.
  EXPECT_EQ(dec.push(byte(0xE2)), "");
  EXPECT_EQ(dec.push(byte(0x41)), "\xEF\xBF\xBD" "A");
  EXPECT_EQ(dec.finish(), "");
}

TEST(StreamDecoder, DropsTheSentencePiecePrefixSpaceOnlyAtTheStart) {
  const Tokenizer& tok = mistral_tokenizer();
  const auto ids = tok.encode("Hello world");
  std::vector<std::string> pieces;
  EXPECT_EQ(stream(tok, ids, false, &pieces), "Hello world");
  EXPECT_EQ(pieces.front(), "Hello");
  const auto with_bos = tok.encode("Hello world", /*add_special=*/true);
  EXPECT_EQ(stream(tok, with_bos, false), "<s> Hello world");
  EXPECT_EQ(stream(tok, with_bos, true), "Hello world");
  // A continuation keeps the space that separates it from what came before.
  const auto prompt = tok.encode("Hello"), rest = tok.encode(" world how", false, false);
  StreamDecoder continuation(tok, false, /*at_text_start=*/false);
  std::string out;
  for (size_t i = 1; i < rest.size(); ++i) out += continuation.push(rest[i]);  // rest[0] is the added "▁"
  EXPECT_EQ(tok.decode(prompt) + out + continuation.finish(), "Hello world how");
}

TEST(StreamDecoder, RejectsIdsOutsideTheVocabulary) {
  StreamDecoder dec(gpt2_tokenizer());
  EXPECT_THROW(dec.push(-1), Error);
  EXPECT_THROW(dec.push(gpt2_tokenizer().vocab_size()), Error);
  EXPECT_THROW(gpt2_tokenizer().decode(std::vector<int32_t>{1 << 30}), Error);
}

}  // namespace
}  // namespace canopy
