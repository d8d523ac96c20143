// ModelConfig from config.json / generation_config.json / GGUF: fields, defaults, rope scaling in
// both the old and the transformers-5 layout, and errors that name the problem.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/gguf.h"
#include "model/config.h"
#include "model/rope.h"
#include "testing/testing.h"

namespace canopy {
namespace {

const char* kLlama = R"({
  "architectures": ["LlamaForCausalLM"], "vocab_size": 1000, "hidden_size": 256,
  "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
  "max_position_embeddings": 131072, "bos_token_id": 1, "eos_token_id": 2,
  "torch_dtype": "bfloat16", "tie_word_embeddings": false})";

std::string error_of(const std::string& config, const std::string& generation = "") {
  try {
    parse_hf_config(config, generation, "config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(ModelConfig, ReadsLlamaConfigWithLlama3Scaling) {
  const ModelConfig c = parse_hf_config(kLlama, R"({"eos_token_id": [2, 7]})", "config.json");
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.head_dim, 32);  // hidden / heads
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::Llama3);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2, 7}));  // generation_config.json wins
  EXPECT_TRUE(c.is_eos(7));
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.checkpoint_dtype, DType::BF16);
}

TEST(ModelConfig, TransformersFiveLayoutAndQwen2Defaults) {
  const ModelConfig c = parse_hf_config(R"({
    "model_type": "qwen2", "vocab_size": 100, "hidden_size": 128, "intermediate_size": 256,
    "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
    "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
    "tie_word_embeddings": true, "sliding_window": 4096, "use_sliding_window": false,
    "dtype": "float32", "eos_token_id": 5})", "", "config.json");
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::None);
  EXPECT_EQ(c.sliding_window, 0);  // declared but not used
  EXPECT_EQ(c.checkpoint_dtype, DType::F32);
  EXPECT_EQ(c.max_position_embeddings, 2048);
}

TEST(ModelConfig, ErrorsNameTheCause) {
  std::string bad = kLlama;
  bad.replace(bad.find("LlamaForCausalLM"), 16, "GPT2LMHeadModel");
  const std::string arch = error_of(bad);
  EXPECT_NE(arch.find("unsupported architecture 'GPT2LMHeadModel'"), std::string::npos) << arch;
  EXPECT_NE(arch.find("LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM"), std::string::npos) << arch;

  bad = kLlama;
  bad.replace(bad.find("\"hidden_size\": 256,"), 19, "");
  EXPECT_NE(error_of(bad).find("missing required key 'hidden_size'"), std::string::npos);

  bad = kLlama;
  bad.replace(bad.find("\"num_key_value_heads\": 2"), 24, "\"num_key_value_heads\": 3");
  EXPECT_NE(error_of(bad).find("not a multiple of num_key_value_heads"), std::string::npos);

  bad = kLlama;
  bad.replace(bad.find("\"num_attention_heads\": 8"), 24, "\"num_attention_heads\": 7");
  EXPECT_NE(error_of(bad).find("not a multiple of num_attention_heads"), std::string::npos);

  bad = kLlama;
  bad.replace(bad.find("\"vocab_size\": 1000"), 18, "\"vocab_size\": \"many\"");
  EXPECT_NE(error_of(bad).find("'vocab_size' must be an integer"), std::string::npos);

  bad = kLlama;
  bad.replace(bad.find("\"llama3\""), 8, "\"yarn\"");
  EXPECT_NE(error_of(bad).find("unsupported rope scaling type 'yarn'"), std::string::npos);

  EXPECT_NE(error_of(kLlama, R"({"eos_token_id": 5000})").find("eos_token_id = 5000 is out of range"),
            std::string::npos);
  EXPECT_NE(error_of("{not json").find("invalid JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 64,
    "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 1, "hidden_act": "gelu"})")
                .find("unsupported hidden_act 'gelu'"),
            std::string::npos);
}

TEST(ModelConfig, MissingFolderAndFile) {
  EXPECT_THROW(load_hf_config("/nonexistent"), Error);
  testing::TempDir dir;
  try {
    load_hf_config(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no config.json"), std::string::npos);
  }
}

TEST(ModelConfig, ReadsGgufHyperparameters) {
  const auto g = GgufFile::open(testing::source_dir() + "/tests/data/models/tiny-llama-gguf/model.gguf");
  const ModelConfig c = load_gguf_config(*g);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.hidden_size, 128);
  EXPECT_EQ(c.num_heads, 2);
  EXPECT_EQ(c.num_kv_heads, 1);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2}));
  const auto q = GgufFile::open(testing::source_dir() + "/tests/data/models/tiny-qwen2-gguf/model.gguf");
  const ModelConfig cq = load_gguf_config(*q);
  EXPECT_EQ(cq.architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(cq.tie_word_embeddings);
  EXPECT_TRUE(cq.qkv_bias);
}

TEST(Rope, InverseFrequenciesWithScaling) {
  ModelConfig c = parse_hf_config(kLlama, "", "config.json");
  c.head_dim = 128;
  const std::vector<float> scaled = rope_inverse_frequencies(c);
  c.rope_scaling.type = RopeScalingType::None;
  const std::vector<float> plain = rope_inverse_frequencies(c);
  ASSERT_EQ(plain.size(), 64u);
  EXPECT_FLOAT_EQ(plain[0], 1.0f);
  EXPECT_NEAR(plain[1], std::pow(500000.0, -2.0 / 128), 1e-7);
  // High frequencies (wavelength < 8192 / 4) unchanged, low ones (> 8192) divided by 8, the band
  // between interpolated.
  bool saw_high = false, saw_low = false, saw_mid = false;
  for (size_t i = 0; i < plain.size(); ++i) {
    const double wavelen = 2 * M_PI / plain[i];
    if (wavelen < 2048) {
      EXPECT_FLOAT_EQ(scaled[i], plain[i]);
      saw_high = true;
    } else if (wavelen > 8192) {
      EXPECT_FLOAT_EQ(scaled[i], plain[i] / 8);
      saw_low = true;
    } else {
      EXPECT_LT(scaled[i], plain[i]);
      EXPECT_GT(scaled[i], plain[i] / 8);
      saw_mid = true;
    }
  }
  EXPECT_TRUE(saw_high && saw_low && saw_mid);
  c.rope_scaling = {RopeScalingType::Linear, 4.0};
  EXPECT_FLOAT_EQ(rope_inverse_frequencies(c)[3], plain[3] / 4);
}

}  // namespace
}  // namespace canopy
