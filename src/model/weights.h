// The weights of a Llama-family model on a backend, loaded from a Hugging Face safetensors
// checkpoint or a GGUF file.
//
// Canonical (Hugging Face) names, per layer i:
//   model.layers.{i}.input_layernorm.weight            attn_norm   [H]
//   model.layers.{i}.self_attn.{q,k,v,o}_proj.weight   q [Hq*D, H], k/v [Hkv*D, H], o [H, Hq*D]
//   model.layers.{i}.self_attn.{q,k,v}_proj.bias       (Qwen2; Llama with attention_bias, + o)
//   model.layers.{i}.post_attention_layernorm.weight   mlp_norm    [H]
//   model.layers.{i}.mlp.{gate,up,down}_proj.weight    gate/up [I, H], down [H, I]
// and model.embed_tokens.weight [V, H], model.norm.weight [H], lm_head.weight [V, H] (absent when
// the embeddings are tied). GGUF names (token_embd, blk.{i}.attn_q, ..., output_norm, output) map
// onto them. llama.cpp's converter permutes the rows of Q and K of llama-architecture GGUF files
// (for RoPE on interleaved pairs); the loader undoes it, so the model has one RoPE convention.
#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/tensor_source.h"
#include "model/config.h"

namespace canopy {

struct LayerWeights {
  DeviceTensor attn_norm;   // [H] f32
  DeviceTensor w_qkv;       // [(Hq + 2 Hkv) * D, H]: q_proj rows, then k_proj, then v_proj (one product)
  DeviceTensor b_qkv;       // [(Hq + 2 Hkv) * D] f32 (q, k, v biases), or empty
  DeviceTensor wo;          // [H, Hq*D]
  DeviceTensor bo;          // [H] f32, or empty
  DeviceTensor mlp_norm;    // [H] f32
  DeviceTensor w_gate_up;   // [2I, H]: gate_proj rows, then up_proj rows
  DeviceTensor w_down;      // [H, I]
};

struct LlamaWeights {
  DeviceTensor embed;       // [V, H]
  DeviceTensor final_norm;  // [H] f32
  DeviceTensor lm_head;     // [V, H], or empty when tied to embed
  std::vector<LayerWeights> layers;

  const TensorView& lm_head_view() const { return lm_head.empty() ? embed.view() : lm_head.view(); }
};

enum class WeightNaming { HuggingFace, Gguf };

// Loads every tensor, checks its shape against the config (a clear error naming the tensor, its
// shape and the expected one), converts it to the backend's dtypes and uploads it. `gguf_arch`
// is the GGUF general.architecture ("llama" permutes Q/K rows), ignored for HuggingFace naming.
LlamaWeights load_llama_weights(const TensorSource& source, WeightNaming naming, const std::string& gguf_arch,
                                const ModelConfig& config, Backend& backend);

// Undoes llama.cpp's row permutation of a Q or K projection ([n_heads * D, cols] rows, or a bias
// with cols = 1): GGUF row h*D + 2j + half holds Hugging Face row h*D + half*D/2 + j.
void unpermute_gguf_qk_rows(std::vector<float>& data, int64_t n_heads, int64_t head_dim, int64_t cols);

}  // namespace canopy
