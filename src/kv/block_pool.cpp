#include "kv/block_pool.h"

#include <fmt/format.h>

#include "core/error.h"

namespace canopy {

std::string BlockPoolStats::str() const {
  return fmt::format("{} of {} blocks in use ({} idle in the prefix cache, peak {}), {} allocations, {} frees",
                     in_use, capacity, cached_idle, peak_in_use, allocations, frees);
}

BlockPool::BlockPool(int32_t num_blocks) {
  CANOPY_CHECK(num_blocks > 0, "the KV cache needs at least one block (got {})", num_blocks);
  refcount_.assign(static_cast<size_t>(num_blocks), 0);
  cached_.assign(static_cast<size_t>(num_blocks), 0);
  free_list_.reserve(static_cast<size_t>(num_blocks));
  // Reversed, so that a fresh pool hands out 0, 1, 2, ... (easier to read in tests and dumps).
  for (int32_t b = num_blocks - 1; b >= 0; --b) free_list_.push_back(b);
}

int32_t BlockPool::allocate() {
  if (free_list_.empty()) {
    throw CapacityError(fmt::format(
        "out of KV cache blocks: {} in use of {} ({} held only by the prefix cache); "
        "shorten the requests, lower the batch size, or give the KV cache more memory",
        num_in_use(), capacity(), cached_idle_));
  }
  const int32_t block = free_list_.back();
  free_list_.pop_back();
  CANOPY_ASSERT(refcount_[static_cast<size_t>(block)] == 0);
  refcount_[static_cast<size_t>(block)] = 1;
  ++allocations_;
  if (num_in_use() > peak_in_use_) peak_in_use_ = num_in_use();
  return block;
}

void BlockPool::check_in_use(int32_t block) const {
  CANOPY_ASSERT(block >= 0 && block < capacity());
  CANOPY_ASSERT(refcount_[static_cast<size_t>(block)] > 0);
}

void BlockPool::retain(int32_t block) {
  check_in_use(block);
  int32_t& rc = refcount_[static_cast<size_t>(block)];
  if (rc == 1 && cached_[static_cast<size_t>(block)]) --cached_idle_;  // a sequence takes it back
  ++rc;
}

bool BlockPool::release(int32_t block) {
  check_in_use(block);
  int32_t& rc = refcount_[static_cast<size_t>(block)];
  --rc;
  if (rc == 1 && cached_[static_cast<size_t>(block)]) ++cached_idle_;  // only the tree holds it now
  if (rc > 0) return false;
  CANOPY_ASSERT(!cached_[static_cast<size_t>(block)]);  // the tree unmarks before it releases
  free_list_.push_back(block);
  ++frees_;
  return true;
}

int32_t BlockPool::refcount(int32_t block) const {
  CANOPY_ASSERT(block >= 0 && block < capacity());
  return refcount_[static_cast<size_t>(block)];
}

void BlockPool::set_cached(int32_t block, bool cached) {
  check_in_use(block);
  uint8_t& flag = cached_[static_cast<size_t>(block)];
  if (static_cast<bool>(flag) == cached) return;
  flag = cached ? 1 : 0;
  if (refcount_[static_cast<size_t>(block)] == 1) cached_idle_ += cached ? 1 : -1;
}

bool BlockPool::is_cached(int32_t block) const {
  CANOPY_ASSERT(block >= 0 && block < capacity());
  return cached_[static_cast<size_t>(block)] != 0;
}

BlockPoolStats BlockPool::stats() const {
  BlockPoolStats s;
  s.capacity = capacity();
  s.in_use = num_in_use();
  s.cached_idle = cached_idle_;
  s.peak_in_use = peak_in_use_;
  s.allocations = allocations_;
  s.frees = frees_;
  return s;
}

}  // namespace canopy
