// The KV cache manager: sequences, their block tables and lengths, over one block pool and one
// prefix tree. Host-only bookkeeping; the backend owns the KV memory (kv_layout.h) and does what
// the manager tells it (write slots, copy blocks).
//
// How the engine uses it, every step:
//   (a) For each sequence scheduled in the step, append(seq, n, slots, copies): reserves the KV
//       slots of the step's n new tokens (slot = block * block_size + offset, one per token, in
//       position order) and may allocate blocks. New requests first come from create(prompt),
//       which reuses the longest cached prefix of the prompt (length(seq) tokens are then already
//       in KV: prefill only prompt[length(seq)..]); n samples of one prompt come from fork().
//       Before appending, the scheduler can check blocks_needed() against num_available_blocks():
//       an append that cannot get its blocks throws CapacityError and changes nothing.
//   (b) Perform the block copies appended to `copies`, in order, on every layer's K and V cache,
//       BEFORE the step writes any KV: copy-on-write of a partly filled last block that a fork
//       shares (the copy's source keeps its contents for the other holders).
//   (c) Build the step's attention plan (attention/planner.h) from block_table(seq), length(seq)
//       (the KV length after this step's writes) and each sequence's step tokens, run the model.
//   (d) After the step, cache_prefix(seq, tokens) for sequences that finished (a chunk of) their
//       prompt: their full prompt blocks enter the prefix tree, so that later requests (online) or
//       later groups of the batch (offline) reuse them. Identical blocks already cached are
//       swapped in for the sequence's own, which then go back to the pool: two identical prompts
//       prefilled in the same step end up sharing one copy.
//   (e) free(seq) for finished sequences: references drop; blocks go back to the pool, except
//       those the prefix tree caches, which stay until evicted (LRU, when an allocation needs them).
//
// --no-prefix-sharing: construct with prefix_caching = false and give each of a prompt's n samples
// its own create() and prefill instead of fork(): every sequence then owns private blocks, and the
// attention planner, which finds sharing in the block tables, plans per-sequence attention.
//
// Sharing rules: a fork shares every block of its parent. A full block is never written again, so
// it is shared for good; the partly filled last block is shared until one side appends, and that
// side gets a copy (the other keeps writing in place once it is the only holder).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kv/block_pool.h"
#include "kv/prefix_tree.h"

namespace canopy {

using SeqId = int32_t;

// Copy the KV of block src into block dst (whole blocks, every layer, K and V).
struct BlockCopy {
  int32_t src = 0;
  int32_t dst = 0;
  bool operator==(const BlockCopy&) const = default;
};

struct KvCacheOptions {
  int32_t num_blocks = 0;
  int32_t block_size = 16;
  bool prefix_caching = true;  // off: create() never matches and cache_prefix() caches nothing
};

class KvCacheManager {
 public:
  explicit KvCacheManager(const KvCacheOptions& options);

  int32_t block_size() const { return block_size_; }

  // A new sequence. With prefix caching on, it starts with the longest cached block prefix of
  // `prompt` (at most prompt.size() - 1 tokens, so that at least one token is left to prefill and
  // produce logits); length() says how many tokens that is.
  SeqId create(std::span<const int32_t> prompt = {});
  // A new sequence sharing every block of `parent` (same length).
  SeqId fork(SeqId parent);

  // Blocks that append(seq, n) would allocate (new blocks plus a copy-on-write copy).
  int32_t blocks_needed(SeqId seq, int32_t n) const;
  // Blocks that could be allocated now (free plus evictable from the prefix tree).
  int32_t num_available_blocks() const { return pool_.num_available(); }

  // Reserves KV for n new tokens: appends their slots to `slots` and any copy-on-write to `copies`
  // (see (a) and (b) above). All or nothing: throws CapacityError when the blocks cannot be had.
  void append(SeqId seq, int32_t n, std::vector<int32_t>& slots, std::vector<BlockCopy>& copies);

  // Inserts the full blocks of tokens[0 .. min(tokens.size(), length(seq))) into the prefix tree
  // (`tokens` are the sequence's token ids from position 0). Returns the sequence's blocks now
  // cached. Cheap to call again as the prompt grows: it resumes where the last call stopped.
  int32_t cache_prefix(SeqId seq, std::span<const int32_t> tokens);

  // Ends a sequence; its id may be reused by a later create() or fork().
  void free(SeqId seq);

  std::span<const int32_t> block_table(SeqId seq) const;
  int32_t length(SeqId seq) const;
  bool is_live(SeqId seq) const;
  int32_t num_live_sequences() const { return num_live_; }

  const BlockPool& pool() const { return pool_; }
  PrefixTree& prefix_tree() { return tree_; }
  const PrefixTree& prefix_tree() const { return tree_; }
  std::string stats() const;

 private:
  struct Sequence {
    std::vector<int32_t> blocks;  // block table, position order
    int32_t length = 0;           // tokens reserved (written, or being written this step)
    int32_t tree_node = PrefixTree::kRoot;  // prefix tree node of blocks[cached_blocks - 1]
    int32_t cached_blocks = 0;    // blocks[0 .. cached_blocks) lie on the tree's path to tree_node
    bool live = false;
  };
  Sequence& get(SeqId seq);
  const Sequence& get(SeqId seq) const;
  SeqId new_sequence();
  // Makes `n` blocks allocatable, evicting from the prefix tree if needed; throws CapacityError.
  void ensure_available(int32_t n, SeqId seq);

  int32_t block_size_;
  bool prefix_caching_;
  BlockPool pool_;
  PrefixTree tree_;
  std::vector<Sequence> seqs_;
  std::vector<SeqId> free_ids_;
  int32_t num_live_ = 0;
  std::vector<int32_t> scratch_;  // canonical block ids from the tree
};

}  // namespace canopy
