// ModelConfig from a GGUF file's hyperparameters ({arch}.block_count, embedding_length, ...).
#include <fmt/ranges.h>

#include <algorithm>

#include "core/error.h"
#include "io/gguf.h"
#include "model/config.h"

namespace canopy {
namespace {

std::string hf_architecture_of(const std::string& gguf_arch, const std::string& origin) {
  if (gguf_arch == "llama") return "LlamaForCausalLM";
  if (gguf_arch == "qwen2") return "Qwen2ForCausalLM";
  fail("{}: unsupported GGUF architecture '{}' (supported: {})", origin, gguf_arch,
       fmt::join(supported_gguf_architectures(), ", "));
}

}  // namespace

ModelConfig load_gguf_config(const GgufFile& g) {
  const std::string origin = g.description();
  const std::string arch = g.get_string("general.architecture");
  ModelConfig c;
  c.architecture = hf_architecture_of(arch, origin);
  const auto key = [&arch](const char* suffix) { return arch + "." + suffix; };

  c.hidden_size = g.get_int(key("embedding_length"));
  c.intermediate_size = g.get_int(key("feed_forward_length"));
  c.num_layers = g.get_int(key("block_count"));
  c.num_heads = g.get_int(key("attention.head_count"));
  c.num_kv_heads = g.find_int(key("attention.head_count_kv")).value_or(c.num_heads);
  CANOPY_CHECK(c.num_heads > 0, "{}: {} must be positive, got {}", origin, key("attention.head_count"), c.num_heads);
  if (auto kl = g.find_int(key("attention.key_length"))) {
    c.head_dim = *kl;
    const auto vl = g.find_int(key("attention.value_length")).value_or(c.head_dim);
    CANOPY_CHECK(vl == c.head_dim, "{}: key_length {} != value_length {} is not supported", origin, c.head_dim, vl);
  } else {
    CANOPY_CHECK(c.hidden_size % c.num_heads == 0, "{}: embedding_length ({}) is not a multiple of head_count ({})",
                 origin, c.hidden_size, c.num_heads);
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (auto rd = g.find_int(key("rope.dimension_count"))) {
    CANOPY_CHECK(*rd == c.head_dim, "{}: partial rotary embeddings ({} = {}, head dim {}) are not supported",
                 origin, key("rope.dimension_count"), *rd, c.head_dim);
  }
  c.rms_norm_eps = g.get_float(key("attention.layer_norm_rms_epsilon"));
  c.rope_theta = g.find_float(key("rope.freq_base")).value_or(10000.0);
  c.max_position_embeddings = g.find_int(key("context_length")).value_or(2048);

  const std::string scaling = g.find_string(key("rope.scaling.type")).value_or("none");
  if (scaling == "linear") {
    c.rope_scaling.type = RopeScalingType::Linear;
    c.rope_scaling.factor = g.get_float(key("rope.scaling.factor"));
  } else {
    CANOPY_CHECK(scaling == "none", "{}: unsupported rope scaling type '{}' (supported: none, linear; llama3 "
                 "scaling comes as the rope_freqs tensor)", origin, scaling);
  }
  // llama.cpp stores llama3 rope scaling as per-frequency divisors in the tensor rope_freqs.
  if (const TensorInfo* freqs = g.find("rope_freqs.weight")) {
    CANOPY_CHECK(freqs->numel() == c.head_dim / 2, "{}: rope_freqs has {} elements, expected head_dim/2 = {}",
                 origin, freqs->numel(), c.head_dim / 2);
    c.rope_freq_factors.resize(static_cast<size_t>(freqs->numel()));
    dequantize_to_f32(*freqs, c.rope_freq_factors.data());
    for (float f : c.rope_freq_factors)
      CANOPY_CHECK(f > 0.0f && f < 1e6f, "{}: rope_freqs holds an invalid factor {}", origin, f);
  }

  const TensorInfo& embed = g.get("token_embd.weight");
  CANOPY_CHECK(embed.shape.size() == 2, "{}: token_embd.weight must be 2-D", origin);
  c.vocab_size = g.find_int(key("vocab_size")).value_or(embed.shape[0]);
  c.tie_word_embeddings = g.find("output.weight") == nullptr;
  if (arch == "qwen2") {
    c.qkv_bias = true;
  } else {
    c.qkv_bias = g.find("blk.0.attn_q.bias") != nullptr;
    c.o_bias = g.find("blk.0.attn_output.bias") != nullptr;
  }
  c.bos_token_id = g.find_int("tokenizer.ggml.bos_token_id").value_or(-1);
  if (auto eos = g.find_int("tokenizer.ggml.eos_token_id")) c.eos_token_ids.push_back(*eos);
  if (auto eot = g.find_int("tokenizer.ggml.eot_token_id"))
    if (!c.is_eos(*eot)) c.eos_token_ids.push_back(*eot);
  // general.file_type: 0 all f32, 1 mostly f16, 32 mostly bf16; quantized files run in bf16.
  const int64_t file_type = g.find_int("general.file_type").value_or(-1);
  c.checkpoint_dtype = file_type == 0 ? DType::F32 : file_type == 1 ? DType::F16 : DType::BF16;
  validate_config(c, origin);
  return c;
}

}  // namespace canopy
