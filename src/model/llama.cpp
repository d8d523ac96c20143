#include "model/llama.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/rope.h"

namespace canopy {

std::unique_ptr<LlamaModel> LlamaModel::load(const std::string& path, Backend& backend, StepCapacity capacity) {
  namespace fs = std::filesystem;
  CANOPY_CHECK(fs::exists(path), "model path '{}' does not exist", path);
  if (fs::is_directory(path)) {
    ModelConfig config = load_hf_config(path);
    const std::unique_ptr<TensorSource> source = open_safetensors(path);
    LlamaWeights weights = load_llama_weights(*source, WeightNaming::HuggingFace, "", config, backend);
    return std::make_unique<LlamaModel>(backend, std::move(config), std::move(weights), capacity);
  }
  CANOPY_CHECK(fs::path(path).extension() == ".gguf",
               "model path '{}' is neither a Hugging Face folder nor a .gguf file", path);
  const std::unique_ptr<GgufFile> gguf = GgufFile::open(path);
  ModelConfig config = load_gguf_config(*gguf);
  LlamaWeights weights =
      load_llama_weights(*gguf, WeightNaming::Gguf, gguf->get_string("general.architecture"), config, backend);
  return std::make_unique<LlamaModel>(backend, std::move(config), std::move(weights), capacity);
}

LlamaModel::LlamaModel(Backend& backend, ModelConfig config, LlamaWeights weights, StepCapacity capacity)
    : backend_(backend), config_(std::move(config)), weights_(std::move(weights)), capacity_(capacity) {
  CANOPY_CHECK(capacity_.max_tokens >= 1 && capacity_.max_tokens <= (1 << 20),
               "step capacity of {} tokens is out of range [1, 1048576]", capacity_.max_tokens);
  CANOPY_CHECK(capacity_.max_logit_rows >= 1 && capacity_.max_logit_rows <= capacity_.max_tokens,
               "step capacity of {} logit rows is out of range [1, {}]", capacity_.max_logit_rows,
               capacity_.max_tokens);
  const std::vector<float> inv_freq = rope_inverse_frequencies(config_);
  inv_freq_ = backend_.upload(inv_freq.data(), Shape{static_cast<int64_t>(inv_freq.size())}, DType::F32);

  const DType a = backend_.activation_dtype();
  const int64_t T = capacity_.max_tokens, H = config_.hidden_size, I = config_.intermediate_size;
  const int64_t D = config_.head_dim;
  residual_ = backend_.allocate(a, Shape{T, H});
  delta_ = backend_.allocate(a, Shape{T, H});
  normed_ = backend_.allocate(a, Shape{T, H});
  q_ = backend_.allocate(a, Shape{T, config_.num_heads, D});
  k_ = backend_.allocate(a, Shape{T, config_.num_kv_heads, D});
  v_ = backend_.allocate(a, Shape{T, config_.num_kv_heads, D});
  qkv_ = backend_.allocate(a, Shape{T, (config_.num_heads + 2 * config_.num_kv_heads) * D});
  attn_ = backend_.allocate(a, Shape{T, config_.num_heads, D});
  gate_up_ = backend_.allocate(a, Shape{T, 2 * I});
  act_ = backend_.allocate(a, Shape{T, I});
  logits_ = backend_.allocate(DType::F32, Shape{capacity_.max_logit_rows, config_.vocab_size});
}

AttentionShape LlamaModel::attention_shape() const {
  return AttentionShape{static_cast<int>(config_.num_heads), static_cast<int>(config_.num_kv_heads),
                        static_cast<int>(config_.head_dim),
                        static_cast<float>(1.0 / std::sqrt(static_cast<double>(config_.head_dim)))};
}

size_t LlamaModel::kv_bytes_per_block(int32_t block_size) const {
  return 2 * static_cast<size_t>(config_.num_layers) * static_cast<size_t>(config_.kv_dim()) *
         static_cast<size_t>(block_size) * dtype_size(backend_.activation_dtype());
}

KvCache LlamaModel::allocate_kv_cache(int32_t num_blocks, int32_t block_size) const {
  CANOPY_CHECK(num_blocks >= 1 && block_size >= 1 && block_size <= 1024,
               "KV cache of {} blocks of {} tokens is out of range", num_blocks, block_size);
  KvCache cache;
  cache.layout = KvLayout{num_blocks, block_size, static_cast<int32_t>(config_.num_kv_heads),
                          static_cast<int32_t>(config_.head_dim)};
  const Shape shape{num_blocks, config_.num_kv_heads, block_size, config_.head_dim};
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    cache.k.push_back(backend_.allocate(backend_.activation_dtype(), shape));
    cache.v.push_back(backend_.allocate(backend_.activation_dtype(), shape));
  }
  return cache;
}

void LlamaModel::copy_kv_blocks(KvCache& cache, std::span<const int32_t> src, std::span<const int32_t> dst) const {
  if (src.empty()) return;
  for (size_t l = 0; l < cache.k.size(); ++l) {
    backend_.copy_blocks(cache.k[l].view(), cache.layout, src, dst);
    backend_.copy_blocks(cache.v[l].view(), cache.layout, src, dst);
  }
}

void LlamaModel::forward(const StepInput& step, KvCache& cache) {
  const auto T = static_cast<int64_t>(step.tokens.size());
  const auto R = static_cast<int64_t>(step.logit_rows.size());
  CANOPY_CHECK(T >= 1 && T <= capacity_.max_tokens, "a step of {} tokens is out of range [1, {}]", T,
               capacity_.max_tokens);
  CANOPY_CHECK(R <= capacity_.max_logit_rows, "a step asking for {} logit rows exceeds the capacity of {}", R,
               capacity_.max_logit_rows);
  for (int32_t id : step.tokens)
    CANOPY_CHECK(id >= 0 && id < config_.vocab_size, "token id {} is outside the vocabulary [0, {})", id,
                 config_.vocab_size);
  CANOPY_ASSERT(static_cast<int64_t>(cache.k.size()) == config_.num_layers);

  backend_.set_attention_geometry(attention_shape(), cache.layout);
  if (forward_graphed(step, cache)) return;
  backend_.begin_step(step);
  run_layers(T, R, cache);
  last_logit_rows_ = R;
  ++graph_stats_.eager_steps;
}

void LlamaModel::run_layers(int64_t T, int64_t R, KvCache& cache) {
  const AttentionShape shape = attention_shape();
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const TensorView none{};
  const TensorView r = residual_.rows(T), d = delta_.rows(T), x = normed_.rows(T);
  const TensorView q = q_.rows(T), k = k_.rows(T), v = v_.rows(T), qkv = qkv_.rows(T), attn = attn_.rows(T);
  const TensorView gate_up = gate_up_.rows(T), act = act_.rows(T);

  backend_.embed(weights_.embed.view(), r);
  for (size_t i = 0; i < weights_.layers.size(); ++i) {
    const LayerWeights& l = weights_.layers[i];
    // The previous layer's MLP output is still pending in d (none before the first layer).
    backend_.add_rms_norm(r, i == 0 ? none : d, l.attn_norm.view(), eps, x);
    backend_.linear(x, l.w_qkv.view(), l.b_qkv.view(), qkv);
    backend_.split_qkv_rope(qkv, inv_freq_.view(), q, k, v);
    backend_.kv_write(k, v, cache.k[i].view(), cache.v[i].view(), cache.layout);
    backend_.attention(q, cache.k[i].view(), cache.v[i].view(), cache.layout, shape, attn);
    backend_.linear(attn, l.wo.view(), l.bo.view(), d);
    backend_.add_rms_norm(r, d, l.mlp_norm.view(), eps, x);
    backend_.linear(x, l.w_gate_up.view(), none, gate_up);
    backend_.swiglu(gate_up, act);
    backend_.linear(act, l.w_down.view(), none, d);
  }
  if (R > 0)
    backend_.final_logits(r, d, weights_.final_norm.view(), eps, weights_.lm_head_view(), logits_.rows(R));
}

}  // namespace canopy
