// The device the forward pass runs on: memory, the per-step metadata, and the few operations a
// Llama-family forward pass needs. The model (model/llama.h) is written once against this
// interface; the CPU backend (backend/cpu) and the CUDA backend (backend/cuda) implement it.
//
// Conventions:
// - Tensors are row-major TensorViews whose data points into the backend's memory ("device
//   memory"); ops never take host pointers except upload/download/begin_step/sample.
// - Matrices of weights are kept in weight_dtype() (f32 on the CPU, bf16/f16 on GPUs); vectors
//   (norm weights, biases, rope frequencies) in f32; activations and the KV cache in
//   activation_dtype(). Every op accumulates in f32.
// - T is the number of tokens of the current step (decode tokens and prefill chunks of many
//   sequences, in any order); ops take views whose outermost dimension is T (or R, the rows
//   needing logits). Buffers may be larger (fixed capacity, so a GPU step can be captured as a
//   graph): pass views of their first rows.
// - A step's metadata is uploaded once by begin_step() and reused by every layer's ops.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "attention/plan.h"
#include "core/tensor.h"
#include "kv/kv_layout.h"
#include "sampling/random.h"
#include "sampling/sampling_row.h"

namespace canopy {

class Backend;

// An owned allocation in a backend's memory. Move-only; the backend must outlive it.
class DeviceTensor {
 public:
  DeviceTensor() = default;
  DeviceTensor(Backend* owner, TensorView view) : owner_(owner), view_(view) {}
  ~DeviceTensor();
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;
  DeviceTensor(DeviceTensor&& other) noexcept
      : owner_(std::exchange(other.owner_, nullptr)), view_(std::exchange(other.view_, {})) {}
  DeviceTensor& operator=(DeviceTensor&& other) noexcept;

  bool empty() const { return view_.data == nullptr; }
  const TensorView& view() const { return view_; }
  const Shape& shape() const { return view_.shape; }
  DType dtype() const { return view_.dtype; }
  // A view of the first n rows (outermost dimension); n <= shape()[0].
  TensorView rows(int64_t n) const;

 private:
  Backend* owner_ = nullptr;
  TensorView view_;
};

// The host-side description of one step, as the engine builds it.
struct StepInput {
  std::span<const int32_t> tokens;    // [T] token ids
  std::span<const int32_t> kv_slots;  // [T] cache slot of each token's K/V: block * block_size + offset
                                      // (-1: a padding token, nothing written)
  const AttentionPlan* plan = nullptr;  // num_tokens == T; plan->q_positions are the positions
  std::span<const int32_t> logit_rows;  // [R] step tokens whose next-token logits are wanted
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual DType weight_dtype() const = 0;
  virtual DType activation_dtype() const = 0;

  // ---- memory ------------------------------------------------------------------------------
  // Zero-filled; throws canopy::Error (naming the size) when out of memory.
  virtual DeviceTensor allocate(DType dtype, Shape shape) = 0;
  // host [shape.numel()] f32 -> a new tensor of `dtype` (converted, rounding to nearest even).
  virtual DeviceTensor upload(const float* host, Shape shape, DType dtype) = 0;
  // src (any dtype) -> host f32 [src.numel()].
  virtual void download(const TensorView& src, float* host) = 0;
  // Frees memory from allocate()/upload(); called by ~DeviceTensor.
  virtual void release(const TensorView& tensor) = 0;

  // ---- per step ----------------------------------------------------------------------------
  // Uploads the step's tokens, positions, KV slots, attention plan and logit rows; every op
  // below until the next begin_step() uses them. The spans need not outlive the call.
  virtual void begin_step(const StepInput& step) = 0;

  // ---- ops ---------------------------------------------------------------------------------
  // out [T, H] = table [V, H] rows at the step's tokens.
  virtual void embed(const TensorView& table, const TensorView& out) = 0;

  // Residual add and RMSNorm, fused: if delta.data != nullptr, residual += delta; then
  // out = residual / sqrt(mean(residual^2) + eps) * weight.
  // residual [T, H] (in/out), delta [T, H] or empty, weight [H] f32, out [T, H].
  virtual void add_rms_norm(const TensorView& residual, const TensorView& delta, const TensorView& weight,
                            float eps, const TensorView& out) = 0;

  // y [T, N] = x [T, K] @ w [N, K]^T (+ bias [N] f32 when bias.data != nullptr).
  virtual void linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) = 0;

  // Splits the fused projection qkv [T, (Hq + 2 Hkv) * D] (per token: q heads, k heads, v heads)
  // into q [T, Hq, D], k [T, Hkv, D], v [T, Hkv, D], and rotates q and k (rotary embedding,
  // rotate-half convention, model/rope.h) at the step's positions; inv_freq [D / 2] f32.
  virtual void split_qkv_rope(const TensorView& qkv, const TensorView& inv_freq, const TensorView& q,
                              const TensorView& k, const TensorView& v) = 0;

  // Copies whole blocks of one layer's cache [num_blocks, Hkv, block_size, D]: block dst[i] =
  // block src[i], in order (copy-on-write of a partly filled block that a fork shares).
  virtual void copy_blocks(const TensorView& cache, const KvLayout& layout, std::span<const int32_t> src,
                           std::span<const int32_t> dst) = 0;

  // Writes k, v [T, Hkv, D] into one layer's caches [num_blocks, Hkv, block_size, D]
  // (kv/kv_layout.h) at the step's KV slots. A slot of -1 is not written (a padding token).
  virtual void kv_write(const TensorView& k, const TensorView& v, const TensorView& k_cache,
                        const TensorView& v_cache, const KvLayout& layout) = 0;

  // out [T, Hq, D] = attention of q [T, Hq, D] over one layer's caches, executing the step's
  // AttentionPlan (attention/plan.h).
  virtual void attention(const TensorView& q, const TensorView& k_cache, const TensorView& v_cache,
                         const KvLayout& layout, const AttentionShape& shape, const TensorView& out) = 0;

  // out [T, I] = silu(gate) * up, where gate_up [T, 2I] holds gate in columns [0, I) and up in
  // [I, 2I) (the loader fuses the two projections into one matrix).
  virtual void swiglu(const TensorView& gate_up, const TensorView& out) = 0;

  // The last residual add, the final norm and the LM head, for the step's logit rows only:
  // for r < R, with t = logit_rows[r] and v = residual[t] + delta[t] (delta may be empty),
  // logits[r] = (v / sqrt(mean(v^2) + eps) * norm_weight) @ lm_head^T.
  // residual, delta [T, H]; norm_weight [H] f32; lm_head [V, H]; logits [R, V] f32.
  virtual void final_logits(const TensorView& residual, const TensorView& delta, const TensorView& norm_weight,
                            float eps, const TensorView& lm_head, const TensorView& logits) = 0;

  // Draws S samples: sample i from logits row logits_row[i] of logits [R, V] (f32) with
  // parameters rows[i] (several samples may draw from one row: n samples of one prompt).
  // logits_row, rows and out have S entries; results on the host.
  virtual void sample(const TensorView& logits, std::span<const int32_t> logits_row, std::span<const SamplingRow> rows,
                      std::span<SampledToken> out) = 0;

  // ---- optional: what a GPU backend needs beyond the ops (defaults fit the CPU backend) --------
  // Bytes the KV cache may take: for a GPU, its --gpu-memory-utilization share of the device
  // memory minus everything in use now (weights, step buffers, workspaces, the CUDA context, other
  // processes) and a reserve for workspaces that grow per step (0 when nothing is left). None: no
  // device budget (the engine picks its default). Meaningful once the model is loaded.
  virtual std::optional<int64_t> kv_cache_budget_bytes() const { return std::nullopt; }

  // The attention geometry of the steps that follow: the model's heads and its KV cache's layout.
  // LlamaModel::forward calls it before every begin_step (cheap when nothing changed): a backend
  // that turns the plan into launch lists in begin_step (CUDA) needs them there.
  virtual void set_attention_geometry(const AttentionShape& /*shape*/, const KvLayout& /*layout*/) {}

  // CUDA graphs (LlamaModel::forward pads small steps to a few bucket sizes and replays them):
  // after begin_step, begin_capture() records the ops that follow instead of running them, until
  // end_capture(key) stores them (false: the capture failed; run the ops eagerly instead).
  // replay(key) runs what was recorded under key with the current step's metadata (false: nothing
  // recorded). The ops recorded must have the same views (pointers and shapes) on every replay.
  // abort_capture() ends a capture an exception interrupted; clear_graphs() drops every graph.
  virtual bool supports_graphs() const { return false; }
  virtual void begin_capture() { CANOPY_ASSERT(false); }
  virtual bool end_capture(int64_t /*key*/) { return false; }
  virtual void abort_capture() {}
  virtual bool replay(int64_t /*key*/) { return false; }
  virtual void clear_graphs() {}

  // A tensor of `dtype` whose element i is uniform_weight(seed, i, scale): random weights for
  // models of real size (throughput does not depend on the values). Every backend builds the
  // same tensor up to its dtype's rounding; a GPU backend fills it on the device.
  virtual DeviceTensor random_tensor(DType dtype, Shape shape, float scale, uint64_t seed);
};

// Element i of Backend::random_tensor: (2u - 1) * scale with u = (random_bits(seed, i) >> 40) *
// 2^-24, uniform in [0, 1) (exact in f32; the CUDA kernel computes the same bits).
inline float uniform_weight(uint64_t seed, uint64_t index, float scale) {
  const float u = static_cast<float>(random_bits(seed, index) >> 40) * 0x1.0p-24f;
  return (2.0f * u - 1.0f) * scale;
}

inline DeviceTensor Backend::random_tensor(DType dtype, Shape shape, float scale, uint64_t seed) {
  std::vector<float> host(static_cast<size_t>(shape.numel()));
  for (size_t i = 0; i < host.size(); ++i) host[i] = uniform_weight(seed, i, scale);
  return upload(host.data(), shape, dtype);
}

inline DeviceTensor::~DeviceTensor() {
  if (owner_ != nullptr && view_.data != nullptr) owner_->release(view_);
}

inline DeviceTensor& DeviceTensor::operator=(DeviceTensor&& other) noexcept {
  if (this != &other) {
    if (owner_ != nullptr && view_.data != nullptr) owner_->release(view_);
    owner_ = std::exchange(other.owner_, nullptr);
    view_ = std::exchange(other.view_, {});
  }
  return *this;
}

inline TensorView DeviceTensor::rows(int64_t n) const {
  CANOPY_ASSERT(view_.shape.rank() >= 1 && n >= 0 && n <= view_.shape[0]);
  TensorView v = view_;
  v.shape[0] = n;
  return v;
}

}  // namespace canopy
