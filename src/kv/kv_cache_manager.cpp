#include "kv/kv_cache_manager.h"

#include <fmt/format.h>

#include "core/error.h"

namespace canopy {

KvCacheManager::KvCacheManager(const KvCacheOptions& options)
    : block_size_(options.block_size),
      prefix_caching_(options.prefix_caching),
      pool_(options.num_blocks),
      tree_(pool_, options.block_size) {}

KvCacheManager::Sequence& KvCacheManager::get(SeqId seq) {
  CANOPY_ASSERT(seq >= 0 && static_cast<size_t>(seq) < seqs_.size() && seqs_[static_cast<size_t>(seq)].live);
  return seqs_[static_cast<size_t>(seq)];
}

const KvCacheManager::Sequence& KvCacheManager::get(SeqId seq) const {
  CANOPY_ASSERT(seq >= 0 && static_cast<size_t>(seq) < seqs_.size() && seqs_[static_cast<size_t>(seq)].live);
  return seqs_[static_cast<size_t>(seq)];
}

bool KvCacheManager::is_live(SeqId seq) const {
  return seq >= 0 && static_cast<size_t>(seq) < seqs_.size() && seqs_[static_cast<size_t>(seq)].live;
}

SeqId KvCacheManager::new_sequence() {
  SeqId id;
  if (free_ids_.empty()) {
    id = static_cast<SeqId>(seqs_.size());
    seqs_.emplace_back();
  } else {
    id = free_ids_.back();
    free_ids_.pop_back();
  }
  Sequence& s = seqs_[static_cast<size_t>(id)];
  s.blocks.clear();
  s.length = 0;
  s.tree_node = PrefixTree::kRoot;
  s.cached_blocks = 0;
  s.live = true;
  ++num_live_;
  return id;
}

SeqId KvCacheManager::create(std::span<const int32_t> prompt) {
  const SeqId id = new_sequence();
  if (prefix_caching_ && prompt.size() > 1) {
    Sequence& s = seqs_[static_cast<size_t>(id)];
    const auto m = tree_.match(prompt.first(prompt.size() - 1), s.blocks);
    s.length = m.num_blocks * block_size_;
    s.tree_node = m.node;
    s.cached_blocks = m.num_blocks;
  }
  return id;
}

SeqId KvCacheManager::fork(SeqId parent) {
  get(parent);  // validates before new_sequence() may reallocate seqs_
  const SeqId id = new_sequence();
  const Sequence& p = seqs_[static_cast<size_t>(parent)];
  Sequence& s = seqs_[static_cast<size_t>(id)];
  s.blocks = p.blocks;
  for (int32_t b : s.blocks) pool_.retain(b);
  s.length = p.length;
  s.tree_node = p.tree_node;
  s.cached_blocks = p.cached_blocks;
  return id;
}

int32_t KvCacheManager::blocks_needed(SeqId seq, int32_t n) const {
  CANOPY_ASSERT(n >= 0);
  const Sequence& s = get(seq);
  const int64_t have = static_cast<int64_t>(s.blocks.size());
  const int64_t need = (static_cast<int64_t>(s.length) + n + block_size_ - 1) / block_size_;
  int64_t extra = need > have ? need - have : 0;
  const bool writes_partial_last = n > 0 && s.length % block_size_ != 0;
  if (writes_partial_last && pool_.refcount(s.blocks.back()) > 1) ++extra;  // copy-on-write
  CANOPY_CHECK(extra <= pool_.capacity(), "a sequence of {} tokens cannot fit in a KV cache of {} blocks of {}",
               static_cast<int64_t>(s.length) + n, pool_.capacity(), block_size_);
  return static_cast<int32_t>(extra);
}

void KvCacheManager::ensure_available(int32_t n, SeqId seq) {
  if (pool_.num_free() >= n) return;
  if (pool_.num_available() < n) {
    throw CapacityError(fmt::format(
        "out of KV cache blocks: sequence {} needs {} more, {} free and {} evictable of {} (block size {}); "
        "shorten the requests, lower the batch size, or give the KV cache more memory",
        seq, n, pool_.num_free(), pool_.num_cached_idle(), pool_.capacity(), block_size_));
  }
  tree_.evict(n - pool_.num_free());
  if (pool_.num_free() < n) {
    // Idle cached blocks that are not leaves yet (their children are still in use) cannot go.
    throw CapacityError(fmt::format(
        "out of KV cache blocks: sequence {} needs {} more, {} free of {} after evicting the prefix cache "
        "(block size {}); shorten the requests, lower the batch size, or give the KV cache more memory",
        seq, n, pool_.num_free(), pool_.capacity(), block_size_));
  }
}

void KvCacheManager::append(SeqId seq, int32_t n, std::vector<int32_t>& slots, std::vector<BlockCopy>& copies) {
  CANOPY_CHECK(n >= 0, "cannot append {} tokens to a sequence", n);
  const int32_t needed = blocks_needed(seq, n);
  CANOPY_CHECK(static_cast<int64_t>(get(seq).length) + n <= INT32_MAX / 2, "sequence {} would grow too long", seq);
  ensure_available(needed, seq);
  Sequence& s = get(seq);
  if (n == 0) return;
  // Copy-on-write: the partly filled last block is shared with a fork, and we are about to write it.
  if (s.length % block_size_ != 0 && pool_.refcount(s.blocks.back()) > 1) {
    const int32_t copy = pool_.allocate();
    copies.push_back({s.blocks.back(), copy});
    pool_.release(s.blocks.back());
    s.blocks.back() = copy;
  }
  for (int32_t i = 0; i < n; ++i, ++s.length) {
    const int32_t offset = s.length % block_size_;
    const size_t index = static_cast<size_t>(s.length / block_size_);
    if (index == s.blocks.size()) s.blocks.push_back(pool_.allocate());
    slots.push_back(s.blocks[index] * block_size_ + offset);
  }
}

int32_t KvCacheManager::cache_prefix(SeqId seq, std::span<const int32_t> tokens) {
  Sequence& s = get(seq);
  if (!prefix_caching_) return 0;
  const size_t usable = std::min(tokens.size(), static_cast<size_t>(s.length));
  const int32_t full = static_cast<int32_t>(usable / static_cast<size_t>(block_size_));
  if (full <= s.cached_blocks) return s.cached_blocks;
  const size_t bs = static_cast<size_t>(block_size_);
  // One block at a time, because each block decides whether the walk may go on.
  while (s.cached_blocks < full) {
    const size_t i = static_cast<size_t>(s.cached_blocks);
    int32_t& mine = s.blocks[i];
    scratch_.clear();
    const auto result = tree_.insert(s.tree_node, tokens.subspan(i * bs, bs), std::span<const int32_t>(&mine, 1), scratch_);
    if (result.num_blocks == 0) break;  // the tree refused (hash collision): keep the rest private
    const int32_t canonical = scratch_[0];
    if (canonical != mine) {
      // The tree already holds these tokens at this place: same tokens, same positions, same KV.
      // Swap it in, unless a fork shares our block: the fork would then hold cached blocks below
      // this one without the path above them, so we stop (see prefix_tree.h's invariant). Call
      // cache_prefix before forking to avoid that.
      if (pool_.refcount(mine) > 1) break;
      pool_.retain(canonical);
      pool_.release(mine);
      mine = canonical;
    }
    s.tree_node = result.node;
    ++s.cached_blocks;
  }
  return s.cached_blocks;
}

void KvCacheManager::free(SeqId seq) {
  Sequence& s = get(seq);
  for (int32_t b : s.blocks) pool_.release(b);
  s.blocks.clear();
  s.length = 0;
  s.live = false;
  free_ids_.push_back(seq);
  --num_live_;
}

std::span<const int32_t> KvCacheManager::block_table(SeqId seq) const { return get(seq).blocks; }

int32_t KvCacheManager::length(SeqId seq) const { return get(seq).length; }

std::string KvCacheManager::stats() const {
  return fmt::format("{} sequences; {}; prefix cache: {}", num_live_, pool_.stats().str(), tree_.stats().str());
}

}  // namespace canopy
