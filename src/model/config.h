// The configuration of a Llama-family model (Llama 2/3/3.x, CodeLlama, Mistral, Qwen2, SmolLM2,
// TinyLlama), read from a Hugging Face folder (config.json + generation_config.json) or from a
// GGUF file's hyperparameters. Every field is range-checked; an unsupported architecture or
// feature is named in the error together with what is supported.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace canopy {

class GgufFile;

enum class RopeScalingType { None, Linear, Llama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::None;
  double factor = 1.0;
  // llama3 only: frequencies with wavelength above original / low_freq_factor are divided by
  // factor, those below original / high_freq_factor are kept, the band between is interpolated.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // Hugging Face class name, e.g. "LlamaForCausalLM"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  // Per-frequency divisors of the inverse frequencies [head_dim / 2] (GGUF's rope_freqs tensor,
  // llama.cpp's form of llama3 scaling); empty when absent.
  std::vector<float> rope_freq_factors;
  int64_t max_position_embeddings = 2048;
  // Sliding-window attention (Mistral v0.1): 0 when absent. canopy attends to the full context,
  // which is exact as long as no sequence is longer than the window: max_context() enforces it.
  int64_t sliding_window = 0;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // q/k/v projections have a bias (Qwen2; Llama with attention_bias)
  bool o_bias = false;    // o projection has a bias (Llama with attention_bias)
  int64_t bos_token_id = -1;             // -1: none
  std::vector<int64_t> eos_token_ids;    // generation stops at any of them
  DType checkpoint_dtype = DType::BF16;  // the dtype a GPU backend keeps the weights in

  // The longest sequence (prompt + generated) the model can attend over exactly.
  int64_t max_context() const;
  bool is_eos(int64_t token) const;
  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  std::string summary() const;
};

// The architectures canopy runs, as named in config.json's "architectures".
const std::vector<std::string>& supported_hf_architectures();
// The GGUF general.architecture values canopy runs.
const std::vector<std::string>& supported_gguf_architectures();

// Reads `folder`/config.json and, when present, `folder`/generation_config.json (whose
// eos_token_id, an int or a list, takes precedence). Throws canopy::Error naming the file and key.
ModelConfig load_hf_config(const std::string& folder);
// Parses config.json text (and optional generation_config.json text, empty when absent).
// `origin` names the source in error messages.
ModelConfig parse_hf_config(const std::string& config_json, const std::string& generation_json,
                            const std::string& origin);
// Reads the hyperparameters of a GGUF file ({arch}.block_count, embedding_length, ...).
ModelConfig load_gguf_config(const GgufFile& gguf);

// Checks every field (ranges, divisibility, token ids inside the vocabulary); throws canopy::Error
// naming `origin` and the field.
void validate_config(const ModelConfig& config, const std::string& origin);

}  // namespace canopy
