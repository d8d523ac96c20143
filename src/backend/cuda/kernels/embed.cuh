// Embedding lookup (model_kernels.h, EmbedParams): one thread copies 8 bf16 (16 bytes) of a row.
#pragma once

#include "device_common.cuh"
#include "model_kernels.h"

namespace canopy::kernels {

inline constexpr int kEmbedThreads = 128;

// CTAs per token: ceil(H / 8 / kEmbedThreads); grid = tokens * that.
__host__ __device__ inline int64_t embed_chunks(const EmbedParams& p) { return (p.hidden / 8 + kEmbedThreads - 1) / kEmbedThreads; }

__global__ void __launch_bounds__(kEmbedThreads) embed_kernel(const __grid_constant__ EmbedParams p) {
  const int64_t vectors = p.hidden / 8;
  const int64_t chunks = embed_chunks(p);
  const int64_t t = static_cast<int64_t>(blockIdx.x) / chunks;
  const int64_t vec = (static_cast<int64_t>(blockIdx.x) % chunks) * kEmbedThreads + threadIdx.x;
  if (vec >= vectors) return;
  const int32_t id = p.tokens[t];
  uint4 value = make_uint4(0u, 0u, 0u, 0u);
  if (id >= 0 && id < p.vocab) value = *reinterpret_cast<const uint4*>(p.table + id * p.hidden + vec * 8);
  *reinterpret_cast<uint4*>(p.out + t * p.hidden + vec * 8) = value;
}

}  // namespace canopy::kernels
