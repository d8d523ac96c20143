// The prefix tree: a radix tree over full KV blocks, keyed by the blocks' token ids.
//
// Each node below the root stands for one full block of block_size tokens: the path from the root
// spells a token prefix, and the node maps the prefix's last block_size tokens to the block id that
// holds their KV (the KV of a block depends only on the tokens up to and including it, so every
// sequence whose prompt starts with that prefix can reuse the block). The tree holds one pool
// reference on each block it caches and marks it cached (block_pool.h).
//
// One structure serves both paths:
// - online (prefix caching across requests): a new request takes the longest cached prefix of its
//   prompt (match), prefills only the rest, and after prefill its full prompt blocks are inserted;
// - offline (batch): the global prefix forest (sched/prefix_forest.h) orders requests so that each
//   shared prefix is prefilled once, inserted, and matched by every later request below it.
//
// Eviction is LRU over unreferenced leaves: a node may go when no sequence holds its block (the
// tree's is the only reference) and it has no children; evicting a leaf can make its parent an
// evictable leaf. "Recently used" is a logical clock ticked by every match and insert, so eviction
// order is deterministic.
//
// Invariant kept by the KV cache manager: a sequence that holds a cached block holds every block on
// the path above it (blocks are taken by match, which returns whole paths, or inserted along the
// sequence's own path). Hence an ancestor is never less referenced than its descendants.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kv/block_pool.h"

namespace canopy {

struct PrefixTreeStats {
  int32_t cached_blocks = 0;     // nodes (one block each), excluding the root
  int64_t lookups = 0;           // match calls
  int64_t lookup_blocks = 0;     // full blocks asked for by match calls
  int64_t hit_blocks = 0;        // full blocks found by match calls
  int64_t evicted_blocks = 0;
  std::string str() const;
};

class PrefixTree {
 public:
  static constexpr int32_t kRoot = 0;

  PrefixTree(BlockPool& pool, int32_t block_size);
  PrefixTree(const PrefixTree&) = delete;
  PrefixTree& operator=(const PrefixTree&) = delete;

  int32_t block_size() const { return block_size_; }

  struct Match {
    int32_t node = kRoot;    // the deepest node matched (kRoot when nothing matched)
    int32_t num_blocks = 0;  // full blocks matched
  };
  // The longest cached prefix of `tokens`, in whole blocks (a trailing partial block never
  // matches). Appends the matched block ids to blocks_out and takes one pool reference on each for
  // the caller, who releases them (e.g. through KvCacheManager::free).
  Match match(std::span<const int32_t> tokens, std::vector<int32_t>& blocks_out);

  struct Inserted {
    int32_t node = kRoot;    // the node of the last block inserted or found
    int32_t num_blocks = 0;  // blocks of the input now on the tree's path (a prefix of the input)
  };
  // Extends the path below `node` with full blocks: tokens.size() == blocks.size() * block_size,
  // blocks[i] holding the KV of tokens [i*bs, (i+1)*bs) at the positions that follow node's path.
  // For each block, in order: when the tree already has a child with these tokens, its block id is
  // the canonical one (the caller's block holds the same KV and may be swapped for it); otherwise
  // the caller's block is cached (the tree takes its own reference) and is canonical. canonical_out
  // receives one id per block walked. Stops early, without error, at a 64-bit hash collision or a
  // block that is already cached elsewhere (neither can happen to a well-behaved caller).
  Inserted insert(int32_t node, std::span<const int32_t> tokens, std::span<const int32_t> blocks,
                  std::vector<int32_t>& canonical_out);

  // Evicts up to num_blocks least recently used unreferenced leaves (repeatedly, so parents follow
  // their children) and returns how many blocks went back to the pool.
  int32_t evict(int32_t num_blocks);
  // Evicts everything that no sequence uses.
  int32_t evict_all() { return evict(pool_.capacity()); }

  // Blocks that evict() could free now.
  int32_t num_evictable() const { return pool_.num_cached_idle(); }
  int32_t num_cached_blocks() const { return static_cast<int32_t>(nodes_.size()) - 1 - static_cast<int32_t>(free_nodes_.size()); }
  PrefixTreeStats stats() const;

  // Introspection for tests: a node's block and parent.
  int32_t node_block(int32_t node) const;
  int32_t node_parent(int32_t node) const;

 private:
  struct Node {
    int32_t parent = -1;
    int32_t block = -1;
    int32_t num_children = 0;
    uint64_t hash = 0;       // hash of the block's tokens (its edge key under parent)
    uint64_t last_used = 0;  // logical clock of the last match or insert that touched it
    bool live = false;
  };
  struct EdgeKey {
    int32_t parent;
    uint64_t hash;
    bool operator==(const EdgeKey&) const = default;
  };
  struct EdgeKeyHash {
    size_t operator()(const EdgeKey& k) const;
  };

  uint64_t hash_tokens(std::span<const int32_t> block_tokens) const;
  // The child of `parent` holding exactly these tokens, or -1.
  int32_t find_child(int32_t parent, uint64_t hash, std::span<const int32_t> block_tokens) const;
  std::span<const int32_t> node_tokens(int32_t node) const;
  void remove_leaf(int32_t node);

  BlockPool& pool_;
  int32_t block_size_;
  std::vector<Node> nodes_;          // [0] is the root; nodes are reused through free_nodes_
  std::vector<int32_t> tokens_;      // [nodes, block_size] token ids of each node's block
  std::vector<int32_t> free_nodes_;
  std::unordered_map<EdgeKey, int32_t, EdgeKeyHash> children_;
  uint64_t clock_ = 0;
  PrefixTreeStats stats_;
};

}  // namespace canopy
