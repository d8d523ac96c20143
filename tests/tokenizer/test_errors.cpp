// Errors a user can cause (files, unsupported tokenizers) are canopy::Error naming the cause.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gguf.h"
#include "testing/testing.h"
#include "tokenizer/tokenizer.h"

namespace canopy {
namespace {

using Json = nlohmann::json;

// Expects `f` to throw canopy::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

Json minimal() {
  return Json{{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}}};
}

Tokenizer from(const Json& j) { return Tokenizer::from_hf_json_text(j.dump(), "", "test.json"); }

TEST(TokenizerErrors, UnsupportedPiecesOfTokenizerJsonAreNamed) {
  EXPECT_EQ(from(minimal()).encode("ab"), (std::vector<int32_t>{2}));
  Json j = minimal();
  j["model"]["type"] = "Unigram";
  expect_error([&] { from(j); }, {"test.json", "Unigram"});
  j = minimal();
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  expect_error([&] { from(j); }, {"test.json", "BertPreTokenizer"});
  j = minimal();
  j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", "xx"}};
  expect_error([&] { from(j); }, {"Precompiled"});
  j = minimal();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_error([&] { from(j); }, {"WordPiece"});
  j = minimal();
  j["post_processor"] = {{"type", "Funky"}};
  expect_error([&] { from(j); }, {"Funky"});
  j = minimal();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_error([&] { from(j); }, {"(unclosed"});
}

TEST(TokenizerErrors, IdsTheFileLeavesOutDecodeToNothing) {
  // Found by fuzzing: an added token far above the model's vocabulary leaves ids with no token.
  Json j = minimal();
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  j["added_tokens"] = Json::array({Json{{"id", 8}, {"content", "<s>"}, {"special", true}}});
  const Tokenizer tok = from(j);
  EXPECT_EQ(tok.vocab_size(), 9);
  EXPECT_EQ(tok.decode(std::vector<int32_t>{5, 6, 8, 2}), "<s>ab");
  EXPECT_EQ(tok.token_text(5), "");
}

TEST(TokenizerErrors, MalformedFilesAreRejected) {
  expect_error([] { Tokenizer::from_hf_json_text("{not json", "", "bad.json"); }, {"bad.json", "JSON"});
  expect_error([] { Tokenizer::from_hf_json_text("[1,2]", "", "list.json"); }, {"list.json"});
  Json j = minimal();
  j["model"]["vocab"]["c"] = -5;
  expect_error([&] { from(j); }, {"out of range"});
  j = minimal();
  j["added_tokens"] = Json::array({Json{{"id", 1 << 30}, {"content", "<x>"}}});
  expect_error([&] { from(j); }, {"out of range"});
  j = minimal();
  j["model"]["merges"] = Json::array({42});
  expect_error([&] { from(j); }, {"merge"});
  expect_error([] { Tokenizer::from_hf_json("/no/such/tokenizer.json"); }, {"/no/such/tokenizer.json"});
}

GgufValue str(std::string s) { return GgufValue{std::move(s)}; }
GgufValue strings(const std::vector<std::string>& v) {
  GgufArray a;
  for (const auto& s : v) a.push_back(str(s));
  return GgufValue{a};
}

GgufMetadata gguf_bpe(const std::string& pre) {
  GgufMetadata m;
  m["tokenizer.ggml.model"] = str("gpt2");
  m["tokenizer.ggml.pre"] = str(pre);
  m["tokenizer.ggml.tokens"] = strings({"a", "b", "ab", "Ġ"});
  m["tokenizer.ggml.merges"] = strings({"a b"});
  return m;
}

TEST(TokenizerErrors, GgufUnknownModelOrPreTokenizerIsNamed) {
  EXPECT_EQ(Tokenizer::from_gguf_metadata(gguf_bpe("gpt-2"), "x.gguf").encode("ab a"),
            (std::vector<int32_t>{2, 3, 0}));
  expect_error([] { Tokenizer::from_gguf_metadata(gguf_bpe("my-new-llm"), "x.gguf"); },
               {"x.gguf", "my-new-llm", "tokenizer.ggml.pre"});
  GgufMetadata m = gguf_bpe("gpt-2");
  m["tokenizer.ggml.model"] = str("bert");
  expect_error([&] { Tokenizer::from_gguf_metadata(m, "x.gguf"); }, {"x.gguf", "bert", "tokenizer.ggml.model"});
  m.erase("tokenizer.ggml.model");
  expect_error([&] { Tokenizer::from_gguf_metadata(m, "x.gguf"); }, {"tokenizer.ggml.model"});
  m = gguf_bpe("gpt-2");
  m["tokenizer.ggml.eos_token_id"] = GgufValue{uint64_t{99}};
  expect_error([&] { Tokenizer::from_gguf_metadata(m, "x.gguf"); }, {"eos_token_id", "99"});
  m = gguf_bpe("gpt-2");
  m["tokenizer.ggml.token_type"] = GgufValue{GgufArray{GgufValue{int64_t{1}}}};
  expect_error([&] { Tokenizer::from_gguf_metadata(m, "x.gguf"); }, {"token_type"});
  m = gguf_bpe("gpt-2");
  m["tokenizer.ggml.tokens"] = str("not an array");
  expect_error([&] { Tokenizer::from_gguf_metadata(m, "x.gguf"); }, {"tokenizer.ggml.tokens"});
}

TEST(TokenizerGguf, SentencePieceVocabularyWithScores) {
  // A SentencePiece vocabulary as GGUF stores it: scores instead of merges, <0xXX> byte tokens.
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "▁", "h", "i", "▁h", "▁hi", "hi"};
  std::vector<float> scores = {0, 0, 0, -1, -2, -3, -4, -5, -10};
  std::vector<int64_t> types = {2, 3, 3, 1, 1, 1, 1, 1, 1};
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(fmt::format("<0x{:02X}>", b));
    scores.push_back(0);
    types.push_back(6);
  }
  GgufMetadata m;
  m["tokenizer.ggml.model"] = str("llama");
  m["tokenizer.ggml.tokens"] = strings(tokens);
  GgufArray s, t;
  for (float x : scores) s.push_back(GgufValue{static_cast<double>(x)});
  for (int64_t x : types) t.push_back(GgufValue{x});
  m["tokenizer.ggml.scores"] = GgufValue{s};
  m["tokenizer.ggml.token_type"] = GgufValue{t};
  m["tokenizer.ggml.bos_token_id"] = GgufValue{uint64_t{1}};
  m["tokenizer.ggml.eos_token_id"] = GgufValue{uint64_t{2}};
  const Tokenizer tok = Tokenizer::from_gguf_metadata(m, "spm.gguf");
  // "▁h" (score -4) outranks "hi" (-10), so " hi" is ▁h + i, then ▁hi.
  EXPECT_EQ(tok.encode("hi"), (std::vector<int32_t>{7}));
  EXPECT_EQ(tok.encode("hi hi", true), (std::vector<int32_t>{1, 7, 7}));
  EXPECT_EQ(tok.encode("hé"), (std::vector<int32_t>{6, 9 + 0xC3, 9 + 0xA9}));
  EXPECT_EQ(tok.decode(tok.encode("hé hi")), "hé hi");
  EXPECT_EQ(tok.encode("<s>hi</s>"), (std::vector<int32_t>{1, 7, 2}));
  EXPECT_EQ(tok.encode("<s>", false, /*parse_special=*/false).front(), 3);
  EXPECT_TRUE(tok.is_special(1));
  EXPECT_EQ(tok.eos_ids(), (std::vector<int32_t>{2}));
}

}  // namespace
}  // namespace canopy
