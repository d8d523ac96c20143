// The Llama-family forward pass, written once against Backend (backend/backend.h).
//
// One call runs one engine step: a batch of T tokens from many sequences (decode tokens and
// prefill chunks mixed), each at its own position, attending over the paged KV cache as the
// step's AttentionPlan says. Per layer:
//   x = rmsnorm(r);  q,k,v = x Wq^T (+b), x Wk^T (+b), x Wv^T (+b);  rope(q, k);  cache <- k, v
//   r += attention(q, cache) Wo^T;  x = rmsnorm(r);  r += (silu(x Wg^T) * x Wu^T) Wd^T
// and at the end logits = rmsnorm(r) Wlm^T for the step's logit rows only.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/weights.h"

namespace canopy {

// The paged KV cache of every layer (layout: kv/kv_layout.h), in the backend's memory.
struct KvCache {
  KvLayout layout;
  std::vector<DeviceTensor> k, v;  // per layer, [num_blocks, Hkv, block_size, D]
};

// Fixed capacities of a model's step buffers (a GPU step can then be captured as a graph).
struct StepCapacity {
  int32_t max_tokens = 512;      // T per step
  int32_t max_logit_rows = 256;  // R per step
  // On a backend with CUDA graphs, a step of T <= max_graph_tokens tokens is padded to the next
  // power of two and replays the graph captured for that size (model/step_graphs.cpp). 0: never.
  int32_t max_graph_tokens = 256;
};

// How the steps of a model ran (CUDA graphs).
struct StepGraphStats {
  int64_t eager_steps = 0;      // ran op by op
  int64_t captures = 0;         // graphs recorded (then replayed once)
  int64_t replays = 0;          // steps that replayed a recorded graph
  int64_t failed_captures = 0;  // captures the backend refused (those steps ran eagerly)
};

class LlamaModel {
 public:
  // Loads a Hugging Face folder (config.json + safetensors) or a .gguf file onto `backend`
  // (which must outlive the model). Throws canopy::Error naming the path and the problem.
  static std::unique_ptr<LlamaModel> load(const std::string& path, Backend& backend, StepCapacity capacity = {});
  // A model of `config_json`'s shape (a Hugging Face config.json) with random weights made on the
  // backend's device (Backend::random_tensor): for benchmarks of real-size models whose weights
  // cannot be had. Linear weights are uniform with variance 1/fan-in, norms are 1, so activations
  // stay of order one. Throws canopy::Error naming the file, or when the weights do not fit.
  static std::unique_ptr<LlamaModel> load_random(const std::string& config_json, Backend& backend,
                                                 StepCapacity capacity = {}, uint64_t seed = 0);

  LlamaModel(Backend& backend, ModelConfig config, LlamaWeights weights, StepCapacity capacity);

  const ModelConfig& config() const { return config_; }
  const StepCapacity& capacity() const { return capacity_; }
  Backend& backend() const { return backend_; }
  AttentionShape attention_shape() const;

  // Bytes of KV cache one block of `block_size` tokens takes, over all layers (K and V).
  size_t kv_bytes_per_block(int32_t block_size) const;
  KvCache allocate_kv_cache(int32_t num_blocks, int32_t block_size) const;
  // Block dst[i] = block src[i] in every layer's K and V (copy-on-write before a step).
  void copy_kv_blocks(KvCache& cache, std::span<const int32_t> src, std::span<const int32_t> dst) const;

  // Runs one step. step.tokens.size() <= capacity().max_tokens, logit_rows.size() <=
  // max_logit_rows, every token id < vocab_size (checked: canopy::Error otherwise). The
  // logits of the step's logit rows are then in logits().
  void forward(const StepInput& step, KvCache& cache);
  // [R, V] f32, R = the last step's logit_rows.size().
  TensorView logits() const { return logits_.rows(last_logit_rows_); }
  const StepGraphStats& graph_stats() const { return graph_stats_; }

 private:
  // The layers and the logits of the current step (begin_step done), for T tokens and R logit rows.
  void run_layers(int64_t T, int64_t R, KvCache& cache);
  // The step as a CUDA graph (step_graphs.cpp); false when the backend or the step's size does not
  // allow it (the caller then runs it eagerly).
  bool forward_graphed(const StepInput& step, KvCache& cache);

  Backend& backend_;
  ModelConfig config_;
  LlamaWeights weights_;
  StepCapacity capacity_;
  DeviceTensor inv_freq_;  // [D / 2] f32
  // Step buffers, [capacity, ...].
  DeviceTensor residual_, delta_, normed_, qkv_, q_, k_, v_, attn_, gate_up_, act_, logits_;
  int64_t last_logit_rows_ = 0;
  // Graph steps: the step padded to its bucket, and the cache the recorded graphs write.
  std::vector<int32_t> padded_tokens_, padded_slots_, padded_rows_;
  AttentionPlan padded_plan_;
  const void* graph_cache_ = nullptr;
  bool graphs_disabled_ = false;
  int64_t graph_id_ = 0;  // distinguishes this model's graphs from others' on the same backend
  StepGraphStats graph_stats_;
  bool graphs_warmed_up_ = false;  // the first graph-eligible step ran eagerly
};

}  // namespace canopy
