// Tokenizers read from GGUF metadata: every test case shipped with the ggml-vocab files
// (../shared/data/tokenizers/ggml-vocab/*.gguf.inp/.out), and the default model's tokenizer
// (SmolLM2, tokenizer.ggml.pre = smollm) against the goldens.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "golden.h"
#include "io/gguf.h"
#include "testing/testing.h"
#include "tokenizer/tokenizer.h"

namespace canopy {
namespace {

namespace fs = std::filesystem;
using canopy::testing::escape;
using canopy::testing::format_ids;

std::string vocab_dir() { return canopy::testing::shared_dir() + "/data/tokenizers/ggml-vocab"; }

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The .inp file: texts separated by lines that read "__ggml_vocab_test__".
std::vector<std::string> read_inputs(const std::string& path) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  const std::string all = read(path);
  std::vector<std::string> texts;
  size_t pos = 0;
  while (true) {
    const size_t hit = all.find(sep, pos);
    if (hit == std::string::npos) break;
    texts.push_back(all.substr(pos, hit - pos));
    pos = hit + sep.size();
  }
  return texts;
}

// The .out file: one line of space-separated ids per input.
std::vector<std::vector<int32_t>> read_outputs(const std::string& path) {
  std::istringstream in(read(path));
  std::vector<std::vector<int32_t>> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ids(line);
    std::vector<int32_t> v;
    int32_t id;
    while (ids >> id) v.push_back(id);
    out.push_back(std::move(v));
  }
  return out;
}

class GgmlVocab : public ::testing::TestWithParam<std::string> {};

TEST_P(GgmlVocab, EveryCasePasses) {
  const std::string base = vocab_dir() + "/ggml-vocab-" + GetParam() + ".gguf";
  ASSERT_TRUE(fs::exists(base)) << base;
  const auto texts = read_inputs(base + ".inp");
  const auto expected = read_outputs(base + ".out");
  ASSERT_EQ(texts.size(), expected.size()) << base;
  ASSERT_GT(texts.size(), 20u);
  const Tokenizer tok = Tokenizer::load(base);
  size_t bad = 0;
  std::string report;
  for (size_t i = 0; i < texts.size(); ++i) {
    // As the cases were made: no BOS/EOS, special-token text not parsed.
    const auto ids = tok.encode(texts[i], /*add_special=*/false, /*parse_special=*/false);
    if (ids != expected[i] && bad++ < 10)
      report += fmt::format("\"{}\":\n    got      {}\n    expected {}\n", escape(texts[i]), format_ids(ids),
                            format_ids(expected[i]));
    // These vocabularies cover every byte: what was encoded decodes back (SentencePiece's "▁"
    // prefix is stripped again).
    EXPECT_EQ(tok.decode(ids), texts[i]) << GetParam() << " case " << i;
  }
  EXPECT_EQ(bad, 0u) << GetParam() << ": " << bad << " of " << texts.size() << " cases differ:\n" << report;
}

INSTANTIATE_TEST_SUITE_P(AllVocabs, GgmlVocab,
                         ::testing::Values("llama-spm", "llama-bpe", "phi-3", "qwen2", "gpt-2", "starcoder",
                                           "deepseek-llm"),
                         [](const ::testing::TestParamInfo<std::string>& vocab) {
                           std::string name = vocab.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

TEST(GgmlVocab, EveryVocabInTheFolderIsCovered) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(vocab_dir()))
    if (e.path().extension() == ".gguf" && fs::exists(e.path().string() + ".inp")) ++n;
  EXPECT_EQ(n, 7u) << "a new vocab in " << vocab_dir() << " needs adding to the list above";
}

TEST(GgufTokenizer, SmolLM2MatchesGoldens) {
  const std::string model = canopy::testing::default_model_path();
  if (model.empty()) {
    GTEST_SKIP() << "the default model is absent: run scripts/fetch_model.sh";
  }
  const Tokenizer tok = Tokenizer::load(model);
  EXPECT_EQ(tok.vocab_size(), 49152);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_ids(), (std::vector<int32_t>{2}));
  EXPECT_TRUE(tok.is_special(*tok.find_token("<|im_start|>")));
  const auto g = canopy::testing::read_goldens("smollm2");
  size_t bad = 0;
  std::string report;
  for (const auto& c : g.encode) {
    const auto ids = tok.encode(c.text);
    const auto plain = tok.encode(c.text, false, false);
    const auto& expected_plain = c.ids_no_special ? *c.ids_no_special : c.ids;
    if ((ids != c.ids || plain != expected_plain) && bad++ < 10)
      report += fmt::format("\"{}\":\n    got      {}\n    expected {}\n", escape(c.text), format_ids(ids),
                            format_ids(c.ids));
    if (c.ids_add_special) {
      EXPECT_EQ(tok.encode(c.text, true), *c.ids_add_special);  // SmolLM2 adds no BOS
    }
    EXPECT_EQ(tok.decode(c.ids), c.decoded ? *c.decoded : c.text);
  }
  EXPECT_EQ(bad, 0u) << bad << " of " << g.encode.size() << " cases differ:\n" << report;
}

TEST(GgufTokenizer, LoadFromAnOpenFile) {
  const auto file = GgufFile::open(vocab_dir() + "/ggml-vocab-qwen2.gguf");
  const Tokenizer tok = Tokenizer::from_gguf(*file);
  EXPECT_EQ(tok.encode("Hello world"), (std::vector<int32_t>{9707, 1879}));
  EXPECT_NE(tok.description().find("qwen2"), std::string::npos) << tok.description();
}

}  // namespace
}  // namespace canopy
