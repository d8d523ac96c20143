// The pool of KV cache blocks: a fixed number of block ids, each with a reference count.
//
// Blocks are plain indices into the backend's KV memory (kv_layout.h); the pool only does the
// bookkeeping, so it is host-only and backend-independent. Allocation and release are O(1): free
// blocks sit on a stack (the most recently freed block is reused first, which keeps memory warm).
//
// Every holder of a block holds one reference: each sequence whose block table contains it, and the
// prefix tree for each block it caches. A block returns to the free list when its last reference is
// released. The prefix tree marks the blocks it caches; a cached block whose only reference is the
// tree's is "idle": no sequence uses it and the tree may evict it when the pool runs short. The pool
// counts idle blocks in O(1) so that admission control can ask how many blocks could be had.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace canopy {

struct BlockPoolStats {
  int32_t capacity = 0;      // blocks in the pool
  int32_t in_use = 0;        // blocks with at least one reference
  int32_t cached_idle = 0;   // in use, but held only by the prefix tree (evictable)
  int32_t peak_in_use = 0;   // high-water mark of in_use
  int64_t allocations = 0;   // blocks handed out since construction
  int64_t frees = 0;         // blocks returned to the free list since construction
  std::string str() const;
};

class BlockPool {
 public:
  explicit BlockPool(int32_t num_blocks);

  int32_t capacity() const { return static_cast<int32_t>(refcount_.size()); }
  int32_t num_free() const { return static_cast<int32_t>(free_list_.size()); }
  int32_t num_in_use() const { return capacity() - num_free(); }
  // Blocks that could be had now: free ones plus those only the prefix tree holds.
  int32_t num_available() const { return num_free() + cached_idle_; }
  int32_t num_cached_idle() const { return cached_idle_; }

  // A free block with one reference. Throws CapacityError ("out of KV cache blocks: ...") when none
  // is free; the pool does not evict by itself (the KV cache manager asks the prefix tree first).
  int32_t allocate();
  // Takes one more reference on a block in use.
  void retain(int32_t block);
  // Drops one reference; returns true when that was the last one and the block is free again.
  bool release(int32_t block);
  int32_t refcount(int32_t block) const;

  // The prefix tree marks the blocks it caches (it holds one reference on each while marked).
  void set_cached(int32_t block, bool cached);
  bool is_cached(int32_t block) const;

  BlockPoolStats stats() const;

 private:
  void check_in_use(int32_t block) const;

  std::vector<int32_t> refcount_;   // [capacity]
  std::vector<uint8_t> cached_;     // [capacity] 1 while the prefix tree caches the block
  std::vector<int32_t> free_list_;  // stack of free block ids
  int32_t cached_idle_ = 0;
  int32_t peak_in_use_ = 0;
  int64_t allocations_ = 0;
  int64_t frees_ = 0;
};

}  // namespace canopy
