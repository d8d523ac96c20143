#include "model/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace canopy {

const std::vector<std::string>& supported_hf_architectures() {
  static const std::vector<std::string> names = {"LlamaForCausalLM", "MistralForCausalLM",
                                                 "Qwen2ForCausalLM"};
  return names;
}

const std::vector<std::string>& supported_gguf_architectures() {
  static const std::vector<std::string> names = {"llama", "qwen2"};
  return names;
}

int64_t ModelConfig::max_context() const {
  if (sliding_window > 0) return std::min(max_position_embeddings, sliding_window);
  return max_position_embeddings;
}

bool ModelConfig::is_eos(int64_t token) const {
  return std::find(eos_token_ids.begin(), eos_token_ids.end(), token) != eos_token_ids.end();
}

std::string ModelConfig::summary() const {
  return fmt::format(
      "{}: {} layers, hidden {}, intermediate {}, {} heads ({} KV) of dim {}, vocab {}, rope theta {}{}, "
      "context {}{}{}",
      architecture, num_layers, hidden_size, intermediate_size, num_heads, num_kv_heads, head_dim,
      vocab_size, rope_theta,
      rope_scaling.type == RopeScalingType::Llama3   ? fmt::format(" (llama3 x{})", rope_scaling.factor)
      : rope_scaling.type == RopeScalingType::Linear ? fmt::format(" (linear x{})", rope_scaling.factor)
                                                     : std::string(),
      max_context(), tie_word_embeddings ? ", tied embeddings" : "", qkv_bias ? ", qkv bias" : "");
}

namespace {

void check_range(int64_t value, int64_t lo, int64_t hi, const char* field, const std::string& origin) {
  CANOPY_CHECK(value >= lo && value <= hi, "{}: {} = {} is out of range [{}, {}]", origin, field, value,
               lo, hi);
}

void check_range(double value, double lo, double hi, const char* field, const std::string& origin) {
  CANOPY_CHECK(std::isfinite(value) && value >= lo && value <= hi, "{}: {} = {} is out of range [{}, {}]",
               origin, field, value, lo, hi);
}

}  // namespace

void validate_config(const ModelConfig& c, const std::string& origin) {
  const auto& archs = supported_hf_architectures();
  CANOPY_CHECK(std::find(archs.begin(), archs.end(), c.architecture) != archs.end(),
               "{}: unsupported architecture '{}' (supported: {})", origin, c.architecture,
               fmt::join(archs, ", "));
  check_range(c.vocab_size, 1, int64_t{1} << 24, "vocab_size", origin);
  check_range(c.hidden_size, 1, 65536, "hidden_size", origin);
  check_range(c.intermediate_size, 1, 1 << 20, "intermediate_size", origin);
  check_range(c.num_layers, 1, 1024, "num_hidden_layers", origin);
  check_range(c.num_heads, 1, 1024, "num_attention_heads", origin);
  check_range(c.num_kv_heads, 1, c.num_heads, "num_key_value_heads", origin);
  CANOPY_CHECK(c.num_heads % c.num_kv_heads == 0,
               "{}: num_attention_heads ({}) is not a multiple of num_key_value_heads ({})", origin,
               c.num_heads, c.num_kv_heads);
  check_range(c.head_dim, 2, 1024, "head_dim", origin);
  CANOPY_CHECK(c.head_dim % 2 == 0, "{}: head_dim ({}) must be even for rotary embeddings", origin,
               c.head_dim);
  check_range(c.rms_norm_eps, 1e-12, 1.0, "rms_norm_eps", origin);
  check_range(c.rope_theta, 1.0, 1e12, "rope_theta", origin);
  check_range(c.max_position_embeddings, 1, int64_t{1} << 24, "max_position_embeddings", origin);
  check_range(c.sliding_window, 0, int64_t{1} << 24, "sliding_window", origin);
  if (c.rope_scaling.type != RopeScalingType::None)
    check_range(c.rope_scaling.factor, 1e-3, 1e6, "rope scaling factor", origin);
  if (c.rope_scaling.type == RopeScalingType::Llama3) {
    check_range(c.rope_scaling.low_freq_factor, 1e-6, 1e6, "rope scaling low_freq_factor", origin);
    check_range(c.rope_scaling.high_freq_factor, 1e-6, 1e6, "rope scaling high_freq_factor", origin);
    CANOPY_CHECK(c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor,
                 "{}: llama3 rope scaling needs high_freq_factor ({}) > low_freq_factor ({})", origin,
                 c.rope_scaling.high_freq_factor, c.rope_scaling.low_freq_factor);
    check_range(c.rope_scaling.original_max_position_embeddings, 1, int64_t{1} << 24,
                "rope scaling original_max_position_embeddings", origin);
  }
  check_range(c.bos_token_id, -1, c.vocab_size - 1, "bos_token_id", origin);
  for (int64_t eos : c.eos_token_ids) check_range(eos, 0, c.vocab_size - 1, "eos_token_id", origin);
}

}  // namespace canopy
