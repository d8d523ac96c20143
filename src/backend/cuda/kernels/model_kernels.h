// The element-wise and per-row kernels of the Llama forward pass on the GPU (host interface):
// embedding lookup, residual add + RMSNorm (also gathering the rows that need logits), rotary
// embedding, KV cache writes and block copies, SwiGLU, and random fills for random-weight models.
//
// Raw device pointers and params structs; nothing of the engine. Activations, weights and the KV
// cache are bf16 (raw 16-bit patterns, uint16_t on the host); norm weights, rope frequencies and
// logits f32; every kernel computes in f32 and rounds once when it stores bf16.
// Vectorized paths read 8 bf16 (16 bytes) at a time: hidden sizes, head_dim and the
// intermediate size must be multiples of 8 (checked by the launchers, cudaErrorInvalidValue).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace canopy::kernels {

// out [T, H] = table [V, H] rows at tokens [T]. An id outside [0, V) gives a zero row.
struct EmbedParams {
  const uint16_t* table = nullptr;
  const int32_t* tokens = nullptr;
  uint16_t* out = nullptr;
  int32_t num_tokens = 0;
  int64_t vocab = 0;
  int64_t hidden = 0;
};

// For each output row r < rows, with t = row_map ? row_map[r] : r:
//   x = residual[t] (+ delta[t], rounded to bf16 as the residual stores it);
//   if write_residual: residual[t] = x;
//   out[r] = x / sqrt(mean(x^2) + eps) * weight.
// residual, delta [*, H] bf16 (delta may be null); weight [H] f32; out [rows, H] bf16.
// With row_map (the final norm of the rows that need logits) write_residual must be 0.
struct RmsNormParams {
  uint16_t* residual = nullptr;
  const uint16_t* delta = nullptr;
  const float* weight = nullptr;
  const int32_t* row_map = nullptr;
  uint16_t* out = nullptr;
  int32_t rows = 0;
  int32_t hidden = 0;
  float eps = 0.0f;
  int32_t write_residual = 0;
};

// Rotate-half rotary embedding in place at positions [T]: q [T, Hq, D], k [T, Hkv, D] bf16,
// inv_freq [D / 2] f32. The angle is positions[t] * inv_freq[i] rounded to f32, as on the CPU.
// qkv [T, (Hq + 2 Hkv) * D] (per token: q heads, k heads, v heads) -> q [T, Hq, D] and k
// [T, Hkv, D] rotated, v [T, Hkv, D] copied.
struct RopeParams {
  const uint16_t* qkv = nullptr;
  uint16_t* q = nullptr;
  uint16_t* k = nullptr;
  uint16_t* v = nullptr;
  const int32_t* positions = nullptr;
  const float* inv_freq = nullptr;
  int32_t num_tokens = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
};

// k, v [T, Hkv, D] -> caches [num_blocks, Hkv, block_size, D] at slots [T] (block * block_size +
// offset). A slot outside [0, num_blocks * block_size) is skipped (padding rows use -1).
struct KvWriteParams {
  const uint16_t* k = nullptr;
  const uint16_t* v = nullptr;
  uint16_t* k_cache = nullptr;
  uint16_t* v_cache = nullptr;
  const int32_t* slots = nullptr;
  int32_t num_tokens = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 0;
  int32_t num_blocks = 0;
};

// out [T, I] = silu(gate) * up with gate_up [T, 2I] = [gate | up].
struct SwigluParams {
  const uint16_t* gate_up = nullptr;
  uint16_t* out = nullptr;
  int32_t num_tokens = 0;
  int64_t inter = 0;
};

// Block dst[i] = block src[i] of one cache [num_blocks, block_elems] (bf16), for i < num_pairs.
// Passed by value: at most kMaxCopyPairs pairs per launch (the launcher takes any number).
inline constexpr int kMaxCopyPairs = 64;
struct CopyBlocksParams {
  uint16_t* cache = nullptr;
  int64_t block_elems = 0;
  int32_t num_blocks = 0;
  int32_t num_pairs = 0;
  int32_t src[kMaxCopyPairs] = {};
  int32_t dst[kMaxCopyPairs] = {};
};

// out[i] = (2 u_i - 1) * scale for i < count, u_i = (random_bits(seed, i) >> 40) * 2^-24 uniform in
// [0, 1) (sampling/random.h's bits), rounded to bf16 when out_bf16, else f32.
struct RandomFillParams {
  void* out = nullptr;
  int64_t count = 0;
  uint64_t seed = 0;
  float scale = 1.0f;
  int32_t out_bf16 = 1;
};

// Asynchronous on `stream`; each returns the launch error (cudaErrorInvalidValue for sizes the
// kernels do not take).
cudaError_t launch_embed(const EmbedParams& p, cudaStream_t stream);
cudaError_t launch_rms_norm(const RmsNormParams& p, cudaStream_t stream);
cudaError_t launch_rope(const RopeParams& p, cudaStream_t stream);
cudaError_t launch_kv_write(const KvWriteParams& p, cudaStream_t stream);
cudaError_t launch_swiglu(const SwigluParams& p, cudaStream_t stream);
// Copies `count` pairs (src[i], dst[i]), in launches of at most kMaxCopyPairs.
cudaError_t launch_copy_blocks(uint16_t* cache, int64_t block_elems, int32_t num_blocks, const int32_t* src,
                               const int32_t* dst, int64_t count, cudaStream_t stream);
cudaError_t launch_random_fill(const RandomFillParams& p, cudaStream_t stream);

}  // namespace canopy::kernels
