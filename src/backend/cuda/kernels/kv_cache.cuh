// KV cache writes and block copies (model_kernels.h, KvWriteParams, CopyBlocksParams), on the
// layout of kv/kv_layout.h: [num_blocks, Hkv, block_size, D]. A thread moves 16 bytes.
#pragma once

#include "device_common.cuh"
#include "model_kernels.h"

namespace canopy::kernels {

inline constexpr int kKvWriteThreads = 128;
inline constexpr int kCopyThreads = 256;

// One CTA per token: its K and V rows (Hkv x D) go to the token's slot of every head.
__global__ void __launch_bounds__(kKvWriteThreads) kv_write_kernel(const __grid_constant__ KvWriteParams p) {
  const int64_t t = blockIdx.x;
  const int32_t slot = p.slots[t];
  if (slot < 0 || static_cast<int64_t>(slot) >= static_cast<int64_t>(p.num_blocks) * p.block_size) return;
  const int64_t block = slot / p.block_size;
  const int64_t offset = slot % p.block_size;
  const int vectors_per_head = p.head_dim / 8;
  for (int vec = static_cast<int>(threadIdx.x); vec < p.num_kv_heads * vectors_per_head; vec += kKvWriteThreads) {
    const int h = vec / vectors_per_head;
    const int d = (vec % vectors_per_head) * 8;
    const int64_t src = (t * p.num_kv_heads + h) * p.head_dim + d;
    const int64_t dst = ((block * p.num_kv_heads + h) * p.block_size + offset) * p.head_dim + d;
    *reinterpret_cast<uint4*>(p.k_cache + dst) = *reinterpret_cast<const uint4*>(p.k + src);
    *reinterpret_cast<uint4*>(p.v_cache + dst) = *reinterpret_cast<const uint4*>(p.v + src);
  }
}

__host__ __device__ inline int64_t copy_blocks_chunks(const CopyBlocksParams& p) {
  return (p.block_elems / 8 + kCopyThreads - 1) / kCopyThreads;
}

// grid = num_pairs * copy_blocks_chunks(p).
__global__ void __launch_bounds__(kCopyThreads) copy_blocks_kernel(const __grid_constant__ CopyBlocksParams p) {
  const int64_t chunks = copy_blocks_chunks(p);
  const int pair = static_cast<int>(static_cast<int64_t>(blockIdx.x) / chunks);
  const int64_t vec = (static_cast<int64_t>(blockIdx.x) % chunks) * kCopyThreads + threadIdx.x;
  if (pair >= p.num_pairs || vec >= p.block_elems / 8) return;
  const int32_t src = p.src[pair];
  const int32_t dst = p.dst[pair];
  if (src < 0 || src >= p.num_blocks || dst < 0 || dst >= p.num_blocks) return;
  *reinterpret_cast<uint4*>(p.cache + dst * p.block_elems + vec * 8) =
      *reinterpret_cast<const uint4*>(p.cache + src * p.block_elems + vec * 8);
}

}  // namespace canopy::kernels
