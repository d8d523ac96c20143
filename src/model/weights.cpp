#include "model/weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>

#include "core/error.h"

namespace canopy {
namespace {

// The checkpoint's name of a per-layer tensor: HF suffix (e.g. "self_attn.q_proj.weight") or
// the GGUF one (e.g. "attn_q.weight").
struct LayerTensorName {
  const char* hf;
  const char* gguf;
};

class Reader {
 public:
  Reader(const TensorSource& source, WeightNaming naming, const ModelConfig& config, Backend& backend)
      : source_(source), naming_(naming), config_(config), backend_(backend) {}

  std::string global_name(const char* hf, const char* gguf) const {
    return naming_ == WeightNaming::HuggingFace ? hf : gguf;
  }
  std::string layer_name(int64_t layer, LayerTensorName n) const {
    return naming_ == WeightNaming::HuggingFace ? fmt::format("model.layers.{}.{}", layer, n.hf)
                                                : fmt::format("blk.{}.{}", layer, n.gguf);
  }

  // Dequantizes `name` to f32 after checking its shape is `expected` (outermost first).
  std::vector<float> read(const std::string& name, std::initializer_list<int64_t> expected) const {
    const TensorInfo& info = source_.get(name);
    const std::vector<int64_t> want(expected);
    // A 1-D tensor may be stored as [1, n] by some writers; compare element layouts, not ranks.
    bool ok = info.shape == want;
    if (!ok && want.size() == 1 && info.shape.size() == 2 && info.shape[0] == 1) ok = info.shape[1] == want[0];
    CANOPY_CHECK(ok, "{}: tensor '{}' has shape [{}], expected [{}] for this model's config", source_.description(),
                 name, fmt::join(info.shape, ", "), fmt::join(want, ", "));
    std::vector<float> data(static_cast<size_t>(info.numel()));
    dequantize_to_f32(info, data.data());
    return data;
  }

  bool has(const std::string& name) const { return source_.find(name) != nullptr; }

  DeviceTensor matrix(const std::vector<float>& data, int64_t rows, int64_t cols) const {
    CANOPY_ASSERT(static_cast<int64_t>(data.size()) == rows * cols);
    return backend_.upload(data.data(), Shape{rows, cols}, backend_.weight_dtype());
  }
  DeviceTensor vector(const std::vector<float>& data) const {
    return backend_.upload(data.data(), Shape{static_cast<int64_t>(data.size())}, DType::F32);
  }

  const ModelConfig& config() const { return config_; }

 private:
  const TensorSource& source_;
  WeightNaming naming_;
  const ModelConfig& config_;
  Backend& backend_;
};

}  // namespace

void unpermute_gguf_qk_rows(std::vector<float>& data, int64_t n_heads, int64_t head_dim, int64_t cols) {
  CANOPY_ASSERT(static_cast<int64_t>(data.size()) == n_heads * head_dim * cols && head_dim % 2 == 0);
  std::vector<float> out(data.size());
  const int64_t half = head_dim / 2;
  const size_t row_bytes = static_cast<size_t>(cols) * sizeof(float);
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t j = 0; j < half; ++j)
      for (int64_t p = 0; p < 2; ++p) {
        const int64_t hf_row = h * head_dim + p * half + j;
        const int64_t gguf_row = h * head_dim + 2 * j + p;
        std::memcpy(out.data() + hf_row * cols, data.data() + gguf_row * cols, row_bytes);
      }
  data.swap(out);
}

LlamaWeights load_llama_weights(const TensorSource& source, WeightNaming naming, const std::string& gguf_arch,
                                const ModelConfig& c, Backend& backend) {
  const Reader r(source, naming, c, backend);
  const int64_t H = c.hidden_size, V = c.vocab_size, I = c.intermediate_size, D = c.head_dim;
  const int64_t QD = c.q_dim(), KVD = c.kv_dim();
  const bool permuted_qk = naming == WeightNaming::Gguf && gguf_arch == "llama";

  LlamaWeights w;
  w.embed = r.matrix(r.read(r.global_name("model.embed_tokens.weight", "token_embd.weight"), {V, H}), V, H);
  w.final_norm = r.vector(r.read(r.global_name("model.norm.weight", "output_norm.weight"), {H}));
  const std::string head_name = r.global_name("lm_head.weight", "output.weight");
  if (!c.tie_word_embeddings) {
    CANOPY_CHECK(r.has(head_name), "{}: tensor '{}' is missing (the config says the embeddings are not tied)",
                 source.description(), head_name);
    w.lm_head = r.matrix(r.read(head_name, {V, H}), V, H);
  }

  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights& l = w.layers[static_cast<size_t>(i)];
    const auto name = [&](const char* hf, const char* gguf) { return r.layer_name(i, {hf, gguf}); };
    // Q and K of llama GGUF files come permuted; undo it on weights and biases alike.
    const auto read_qk = [&](const char* hf, const char* gguf, int64_t heads, std::initializer_list<int64_t> shape) {
      std::vector<float> data = r.read(name(hf, gguf), shape);
      if (permuted_qk) unpermute_gguf_qk_rows(data, heads, D, static_cast<int64_t>(data.size()) / (heads * D));
      return data;
    };

    l.attn_norm = r.vector(r.read(name("input_layernorm.weight", "attn_norm.weight"), {H}));
    // Q, K and V become one [QD + 2 KVD, H] matrix: one product reads them in one pass.
    const auto concat = [](std::vector<float> q, const std::vector<float>& k, const std::vector<float>& v) {
      q.insert(q.end(), k.begin(), k.end());
      q.insert(q.end(), v.begin(), v.end());
      return q;
    };
    l.w_qkv = r.matrix(concat(read_qk("self_attn.q_proj.weight", "attn_q.weight", c.num_heads, {QD, H}),
                              read_qk("self_attn.k_proj.weight", "attn_k.weight", c.num_kv_heads, {KVD, H}),
                              r.read(name("self_attn.v_proj.weight", "attn_v.weight"), {KVD, H})),
                       QD + 2 * KVD, H);
    if (c.qkv_bias)
      l.b_qkv = r.vector(concat(read_qk("self_attn.q_proj.bias", "attn_q.bias", c.num_heads, {QD}),
                                read_qk("self_attn.k_proj.bias", "attn_k.bias", c.num_kv_heads, {KVD}),
                                r.read(name("self_attn.v_proj.bias", "attn_v.bias"), {KVD})));
    l.wo = r.matrix(r.read(name("self_attn.o_proj.weight", "attn_output.weight"), {H, QD}), H, QD);
    if (c.o_bias) l.bo = r.vector(r.read(name("self_attn.o_proj.bias", "attn_output.bias"), {H}));
    l.mlp_norm = r.vector(r.read(name("post_attention_layernorm.weight", "ffn_norm.weight"), {H}));

    std::vector<float> gate_up = r.read(name("mlp.gate_proj.weight", "ffn_gate.weight"), {I, H});
    const std::vector<float> up = r.read(name("mlp.up_proj.weight", "ffn_up.weight"), {I, H});
    gate_up.insert(gate_up.end(), up.begin(), up.end());
    l.w_gate_up = r.matrix(gate_up, 2 * I, H);
    l.w_down = r.matrix(r.read(name("mlp.down_proj.weight", "ffn_down.weight"), {H, I}), H, I);
  }
  return w;
}

}  // namespace canopy
