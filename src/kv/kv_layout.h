// Layout of the paged KV cache, in one place.
//
// Per layer there is one K cache and one V cache, each an array of fixed-size blocks:
//   K[num_blocks][num_kv_heads][block_size][head_dim]   (and V likewise)
// i.e. "HND" pages: the block_size x head_dim tile of one KV head is contiguous, so a kernel that
// works on one KV head streams whole tiles. Element type: f32 on the CPU backend, bf16/f16 on GPU.
// A token's K/V is written to slot s = block * block_size + offset of every layer's cache.
#pragma once

#include <cstddef>
#include <cstdint>

namespace canopy {

struct KvLayout {
  int32_t num_blocks = 0;
  int32_t block_size = 16;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;

  // Elements of one block (all heads).
  size_t block_elems() const {
    return static_cast<size_t>(num_kv_heads) * static_cast<size_t>(block_size) * static_cast<size_t>(head_dim);
  }
  // Elements of one layer's K (or V) cache.
  size_t layer_elems() const { return block_elems() * static_cast<size_t>(num_blocks); }
  // Element offset of (block, kv head, slot in block), at dimension 0.
  size_t offset(int32_t block, int32_t head, int32_t slot) const {
    return (static_cast<size_t>(block) * static_cast<size_t>(num_kv_heads) + static_cast<size_t>(head)) *
               static_cast<size_t>(block_size) * static_cast<size_t>(head_dim) +
           static_cast<size_t>(slot) * static_cast<size_t>(head_dim);
  }
};

}  // namespace canopy
