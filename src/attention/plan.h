// The attention plan of one engine step: flat work lists built once per step by the host planner
// and reused by every layer, on every backend (plan/run split; DESIGN.md section 2).
//
// A step has T query tokens (decode tokens and prefill chunks of many sequences, in any order),
// with queries q [T, Hq, D]. Each sequence's KV lives in paged blocks (kv/kv_layout.h); sequences
// that share a prefix share its blocks. The planner cuts every sequence's block path into forest
// nodes (maximal runs of blocks shared by the same set of the step's sequences) and emits one work
// item per (node segment, set of query tokens that attend to it). A long segment may be split into
// several items (split-KV), each writing its own partials.
//
// Executing a plan:
// Segments start at a block boundary (split-KV chunks are whole blocks).
//   1. for every item, every KV head h, every query token j in the item and every query head of h's
//      GQA group: attend q[token, head] to the segment's keys -> partial (O, LSE) in slot
//      item.out_begin + j (lse.h has the convention and the layout of partials);
//   2. for every token t, merge the partials in slots merge_slots[merge_offsets[t] ..
//      merge_offsets[t+1]) -> out [T, Hq, D].
// A key at absolute position kp is visible to a query at position qp iff kp <= qp. Items whose keys
// all precede all their queries have causal = 0 and need no mask. A row of a causal item may see no
// key at all (a prefill token tiled with later ones): its partial is empty, LSE = -inf (lse.h).
//
// Built by attention/planner.h (the layout of kv_pages and q_tokens is its business: consumers
// only follow the indices). Sizes vary per step; the planner reuses the vectors, so their capacity
// settles at the high-water mark, and a backend that captures a step as a graph sizes its device
// copies the same way.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace canopy {

struct AttentionItem {
  int32_t kv_page_begin = 0;  // index into AttentionPlan::kv_pages of the segment's first block
  int32_t kv_len = 0;         // tokens in the segment (its last block may be partly used)
  int32_t kv_pos0 = 0;        // absolute position of the segment's first token
  int32_t q_begin = 0;        // index into AttentionPlan::q_tokens of the item's first query
  int32_t q_count = 0;        // number of query tokens
  int32_t out_begin = 0;      // partial slot of query j is out_begin + j
  int32_t causal = 0;         // 1 when some key of the segment comes after some query
  int32_t node = 0;           // forest node the segment belongs to, < num_nodes (statistics, tests)
};

struct AttentionPlan {
  int32_t num_tokens = 0;            // T
  int32_t num_nodes = 0;             // nodes of the step's prefix forest, numbered parents first
  std::vector<int32_t> q_positions;  // [T] absolute position of each query token
  std::vector<AttentionItem> items;  // sorted longest first (largest kv_len * q_count)
  std::vector<int32_t> kv_pages;     // block ids, referenced by items
  std::vector<int32_t> q_tokens;     // step token indices, referenced by items
  int32_t num_slots = 0;             // partial slots used by all items
  std::vector<int32_t> merge_offsets;  // [T + 1]
  std::vector<int32_t> merge_slots;    // slots of token t: merge_slots[merge_offsets[t] .. t+1)

  // Statistics, for tests and benchmarks.
  int64_t kv_tokens_read() const;  // sum over items of kv_len: the KV this plan reads, in tokens
  std::string summary() const;
};

// Attention geometry, shared by every kernel that executes a plan.
struct AttentionShape {
  int num_q_heads = 0;   // Hq
  int num_kv_heads = 0;  // Hkv; Hq % Hkv == 0, group g = Hq / Hkv
  int head_dim = 0;      // D
  float scale = 0.0f;    // softmax scale, usually 1/sqrt(D) (natural units; kernels fold log2 e)
  int group() const { return num_q_heads / num_kv_heads; }
};

}  // namespace canopy
