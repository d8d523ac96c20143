// The default model (SmolLM2-135M-Instruct, Q4_1 GGUF): metadata, every tensor dequantized, and
// spot values against the gguf Python package (tests/data/io/smollm2_spot.json, written by
// tools/make_io_fixtures.py). Skips when scripts/fetch_model.sh has not fetched the model.
#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io_test_util.h"

namespace canopy {
namespace {

class SmolLM2 : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = canopy::testing::default_model_path();
    if (path_.empty()) GTEST_SKIP() << "the default model is absent: run scripts/fetch_model.sh";
    file_ = GgufFile::open(path_);
  }
  std::string path_;
  std::unique_ptr<GgufFile> file_;
};

TEST_F(SmolLM2, Metadata) {
  const GgufFile& f = *file_;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 30);
  EXPECT_EQ(f.get_int("llama.embedding_length"), 576);
  EXPECT_EQ(f.get_int("llama.feed_forward_length"), 1536);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 9);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 3);
  EXPECT_EQ(f.get_int("llama.context_length"), 8192);
  EXPECT_NEAR(f.get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-12);
  EXPECT_EQ(f.get_float("llama.rope.freq_base"), 100000.0);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 49152u);
  EXPECT_EQ(tokens[0], "<|endoftext|>");
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").size(), 49152u);
  EXPECT_GT(f.get_string_array("tokenizer.ggml.merges").size(), 40000u);
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_NE(f.get_string("tokenizer.chat_template").find("im_start"), std::string::npos);
}

TEST_F(SmolLM2, TensorsAndShapes) {
  const GgufFile& f = *file_;
  EXPECT_EQ(f.tensors().size(), 272u);
  EXPECT_EQ(f.get("token_embd.weight").shape, (std::vector<int64_t>{49152, 576}));
  EXPECT_EQ(f.get("token_embd.weight").type, TensorType::Q8_0);
  EXPECT_EQ(f.get("blk.0.attn_q.weight").shape, (std::vector<int64_t>{576, 576}));
  EXPECT_EQ(f.get("blk.0.attn_k.weight").shape, (std::vector<int64_t>{192, 576}));
  EXPECT_EQ(f.get("blk.0.ffn_down.weight").shape, (std::vector<int64_t>{576, 1536}));
  EXPECT_EQ(f.get("blk.0.ffn_up.weight").shape, (std::vector<int64_t>{1536, 576}));
  EXPECT_EQ(f.get("blk.29.ffn_up.weight").type, TensorType::Q4_1);
  EXPECT_EQ(f.get("output_norm.weight").type, TensorType::F32);
}

// Dequantizes every tensor (all must be supported) and reports the time it takes (into memory
// already allocated): the cost of turning the model's weights into f32.
TEST_F(SmolLM2, EveryTensorDequantizesAndSpotValuesMatch) {
  const GgufFile& f = *file_;
  std::map<std::string, std::vector<float>> values;
  std::vector<DequantizeJob> jobs;
  size_t total = 0;
  for (const TensorInfo& t : f.tensors()) {
    ASSERT_TRUE(tensor_type_supported(t.type)) << t.name;
    auto& v = values[t.name];
    v.resize(static_cast<size_t>(t.numel()));
    jobs.push_back({&t, v.data()});
    total += v.size();
  }
  const auto start = std::chrono::steady_clock::now();
  dequantize_many(jobs);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("dequantized %zu tensors, %zu values (%.1f MB of f32) in %.3f s\n", f.tensors().size(), total,
              static_cast<double>(total) * 4 / 1e6, seconds);
  ::testing::Test::RecordProperty("dequantize_seconds", std::to_string(seconds));

  const auto golden = nlohmann::json::parse(canopy::testing::read_file(io_test::fixture("smollm2_spot.json")));
  ASSERT_GE(golden["tensors"].size(), 5u);
  for (const auto& spot : golden["tensors"]) {
    const std::string name = spot["name"];
    SCOPED_TRACE(name);
    const TensorInfo& t = f.get(name);
    EXPECT_EQ(tensor_type_name(t.type), spot["type"].get<std::string>());
    EXPECT_EQ(t.shape, spot["shape"].get<std::vector<int64_t>>());
    const auto& v = values.at(name);
    const auto indices = spot["indices"].get<std::vector<size_t>>();
    const auto expected = spot["values"].get<std::vector<double>>();
    ASSERT_EQ(indices.size(), expected.size());
    for (size_t k = 0; k < indices.size(); ++k) {
      ASSERT_LT(indices[k], v.size());
      EXPECT_EQ(std::bit_cast<uint32_t>(v[indices[k]]), std::bit_cast<uint32_t>(static_cast<float>(expected[k])))
          << "index " << indices[k] << ": " << v[indices[k]] << " vs " << expected[k];
    }
    double sum = 0, abs_sum = 0;
    for (const float x : v) {
      sum += x;
      abs_sum += std::fabs(x);
    }
    const double want_abs = spot["abs_sum"];
    EXPECT_NEAR(abs_sum, want_abs, 1e-9 * want_abs);
    EXPECT_NEAR(sum, spot["sum"].get<double>(), 1e-9 * want_abs);
  }
}

}  // namespace
}  // namespace canopy
