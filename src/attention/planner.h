// The host attention planner: one engine step's batch -> the flat AttentionPlan (plan.h).
//
// Input, per sequence with queries in the step: its block table, its KV length after this step's
// writes, and its step tokens, a contiguous range [q_begin, q_begin + q_count) of the step's token
// indices holding its last q_count positions (kv_len - q_count .. kv_len - 1): one token for a
// decode, many for a prefill chunk.
//
// Sharing is discovered from the block tables: sequences that hold the same block id at the same
// block position, with identical block ids before it, share that block's KV. The planner builds a
// compressed trie over block ids (the step's prefix forest, node = maximal run of blocks shared by
// the same set of the step's sequences) and emits, for every node, the items that attend the
// queries of every sequence below it to the node's KV, causal only where a key can come after a
// query. With --no-prefix-sharing every sequence owns private blocks, and the same code yields one
// node, hence plain per-sequence attention, per sequence.
//
// Items are split along the KV (max_kv_tokens_per_item, whole blocks) and along the queries
// (max_q_per_item) so that a backend can spread one long shared node over all its cores or SMs;
// each (KV chunk, query tile) is one item. Items are sorted longest first (kv_len * q_count, ties
// in creation order), partial slots are numbered in that order, and each token's merge list
// follows it too: the plan is deterministic for a given input.
//
// Cost: one pass over the step's tokens, a walk over each sequence's private (unshared) blocks, and
// (unless PlannerOptions::verify_shared_prefixes is off) one memcmp of each sequence's shared block
// prefix against the sequence it shares with, which makes sharing exact even for block tables that
// were not built by the KV cache manager. The Planner keeps its buffers, and the plan keeps its
// vectors' capacity, so steady-state steps do not allocate.
// Engine use, once per step after the KV cache manager has reserved the step's slots
// (kv/kv_cache_manager.h): for each scheduled sequence,
//   PlannerSequence{kv.block_table(id), kv.length(id), first step token, tokens this step}
// then planner.build(...) and every layer runs the same plan. Block tables come from the manager,
// so PlannerOptions::verify_shared_prefixes may be off. Suggested options: GPU, from the SM count
// (e.g. max_q_per_item 64-128 rows / group, max_kv_tokens_per_item so that items cover every SM);
// CPU (run_attention_plan_cpu parallelizes over items x KV heads), max_q_per_item 64 and
// max_kv_tokens_per_item 2048 or 0.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attention/plan.h"

namespace canopy {

struct PlannerSequence {
  std::span<const int32_t> block_table;  // the sequence's blocks in position order (>= ceil(kv_len / block_size))
  int32_t kv_len = 0;   // KV tokens after this step's writes
  int32_t q_begin = 0;  // step token index of the sequence's first query
  int32_t q_count = 0;  // queries: positions kv_len - q_count .. kv_len - 1 (0: not in this step)
};

struct PlannerOptions {
  int32_t block_size = 16;
  int32_t num_blocks = 0;               // block ids are < num_blocks (the pool's capacity)
  int32_t max_kv_tokens_per_item = 0;   // split-KV chunk, a multiple of block_size; 0 = no split
  int32_t max_q_per_item = 0;           // query tokens per item; 0 = no limit
  // Sharing is taken from identical block ids at identical positions. With verification on, a
  // sequence that meets a block already placed by another sequence is compared with it over every
  // earlier block (one memcmp), so the plan is exact for any block tables. Tables from the KV cache
  // manager always agree there (kv_cache_manager.h: a block determines the whole path before it),
  // so the engine may turn verification off and save one pass over the shared part of the tables.
  bool verify_shared_prefixes = true;
};

// What the last build found, for statistics, tests and benchmarks.
struct PlannerStats {
  int32_t num_sequences = 0;   // sequences with queries
  int32_t num_nodes = 0;       // nodes of the step's forest
  int32_t shared_nodes = 0;    // nodes read by more than one sequence
  int64_t kv_tokens_logical = 0;  // sum over sequences of kv_len: what per-sequence attention reads
};

class Planner {
 public:
  explicit Planner(const PlannerOptions& options);

  const PlannerOptions& options() const { return options_; }

  // Builds the plan of a step with num_tokens query tokens; every token must belong to exactly one
  // sequence. Replaces plan's contents, keeping its capacity.
  void build(std::span<const PlannerSequence> sequences, int32_t num_tokens, AttentionPlan& plan);

  const PlannerStats& stats() const { return stats_; }

 private:
  struct Node {
    int32_t parent = -1;
    int32_t rep = 0;          // a sequence whose block table holds this node's blocks
    int32_t block_begin = 0;  // block positions [block_begin, block_end)
    int32_t block_end = 0;
    int32_t first_child = -1, last_child = -1, next_sibling = -1;
    int32_t first_seq = -1;   // sequences whose path ends at this node (linked through seq_next_)
    int32_t page_begin = 0;   // AttentionPlan::kv_pages index of block_begin's block
    int32_t kv_end = 0;       // KV positions [block_begin * bs, kv_end)
    int32_t seq_lo = 0, seq_hi = 0;  // sequences below it: dfs_seqs_[seq_lo .. seq_hi)
    int32_t order = 0;        // preorder index: the node id the plan reports
    bool stamped = true;      // false: a root whose blocks after the first are not stamped yet
  };

  int32_t new_node(int32_t parent, int32_t rep, int32_t block_begin, int32_t block_end);
  void add_child(int32_t parent, int32_t child);
  void attach_sequence(int32_t node, int32_t seq);
  // Inserts sequence s into the step's trie; its private blocks go to `pages` (the plan's kv_pages).
  void insert_sequence(std::span<const PlannerSequence> sequences, int32_t s, std::vector<int32_t>& pages);
  // Records blocks [from, to) of sequence s as placed by s (keeping earlier stamps).
  void stamp_blocks(std::span<const PlannerSequence> sequences, int32_t s, int32_t from, int32_t to);
  // Stamps the rest of the root that sequence r started, if that was left for later.
  void complete_stamps(std::span<const PlannerSequence> sequences, int32_t r);
  void order_nodes(std::span<const PlannerSequence> sequences);
  void emit_items(std::span<const PlannerSequence> sequences, AttentionPlan& plan);
  void finish_plan(AttentionPlan& plan);

  PlannerOptions options_;
  PlannerStats stats_;

  // Per block id: which sequence first placed it in the trie this step, at which block position.
  struct BlockStamp {
    uint32_t epoch = 0;  // == epoch_ when placed in this build
    int32_t seq = 0;
    int32_t pos = 0;
  };
  std::vector<BlockStamp> stamps_;  // [num_blocks]
  uint32_t epoch_ = 0;

  std::vector<Node> nodes_;
  std::vector<int32_t> roots_;
  std::vector<int32_t> seq_leaf_;    // [sequences] node where the sequence's path ends
  std::vector<int32_t> seq_next_;    // [sequences] next sequence ending at the same node
  std::vector<int32_t> token_owner_; // [T] sequence of each step token (coverage check)
  std::vector<int32_t> dfs_stack_;
  std::vector<int32_t> dfs_seqs_;    // sequences in depth-first order of their leaves
  std::vector<int32_t> preorder_;    // nodes, parents before children
  std::vector<AttentionItem> unsorted_;
  std::vector<std::pair<int64_t, int32_t>> order_;  // (-(kv_len * q_count), creation index)
};

}  // namespace canopy
