// The global prefix forest of an offline batch (BatchLLM): all prompts of the batch, each with n
// samples, arranged as a forest of shared token runs, known before anything runs.
//
// A node is a maximal run of tokens shared by the same set of requests: the path from a root to a
// node spells a prefix, and every request whose prompt starts with that prefix lies below it. A
// prompt ends at a node (possibly an inner one, when it is a prefix of other prompts). The n
// samples of a request share its whole prompt, so they add nothing to the forest.
//
// What it gives the offline scheduler:
// - statistics: logical prompt tokens (sum over requests of prompt length x n, what an engine
//   without any sharing prefills), unique prompt tokens (sum of node lengths: what must be
//   prefilled at the least, the optimum) and the saving;
// - a prefill order with parents before children (nodes are numbered in that order), and a request
//   order that walks the forest depth-first, so requests sharing a prefix run together and the
//   prefix's KV is reused before it could be evicted;
// - groups (the root subtrees: requests in different groups share nothing) with their prefill and
//   estimated decode work, and orderings of groups, e.g. decode-heavy first, so that long decodes
//   start early and later prefills overlap them.
// Everything is deterministic: children are ordered by their first token, requests ending at the
// same node by index.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace canopy {

struct ForestRequest {
  std::span<const int32_t> prompt;  // token ids (the forest keeps only positions, not a copy)
  int32_t num_samples = 1;          // n
  int32_t max_new_tokens = 0;       // decode budget per sample, for the decode-work estimate
};

struct ForestNode {
  int32_t parent = -1;       // -1 for a root
  int32_t first_token = 0;   // position of the node's first token in every prompt below it
  int32_t num_tokens = 0;    // length of the run (>= 1)
  int32_t source = 0;        // a request whose prompt holds the run at [first_token, first_token + num_tokens)
  int32_t subtree_end = 0;   // nodes of the subtree: [this node, subtree_end) in preorder
  int32_t requests_begin = 0, requests_end = 0;  // requests ending here: request_order()[begin .. end)
  int32_t group = 0;         // index of its root subtree
  int64_t samples = 0;       // sum of n over requests in the subtree
  int64_t decode_tokens = 0; // sum of n x max_new_tokens over requests in the subtree
};

struct ForestGroup {
  int32_t root = 0;                 // node id; the group's nodes are [root, nodes[root].subtree_end)
  int32_t requests_begin = 0;       // its requests: request_order()[begin .. end)
  int32_t requests_end = 0;
  int64_t prefill_tokens = 0;       // unique prompt tokens of the subtree (prefilled once each)
  int64_t logical_prompt_tokens = 0;
  int64_t samples = 0;
  int64_t decode_tokens = 0;        // estimated: sum of n x max_new_tokens
};

struct ForestStats {
  int32_t num_requests = 0;
  int64_t num_samples = 0;
  int32_t num_nodes = 0;
  int32_t num_groups = 0;
  int32_t max_depth = 0;               // nodes on the longest root-to-node path
  int64_t logical_prompt_tokens = 0;   // sum of prompt length x n
  int64_t unique_prompt_tokens = 0;    // sum of node lengths: the prefill optimum
  // Fraction of the logical prompt tokens that sharing avoids: 1 - unique / logical (0 when empty).
  double saving_ratio() const;
  // logical / unique: how many times each unique token is used on average (1 when nothing is shared).
  double sharing_factor() const;
  std::string str() const;
};

enum class GroupOrder {
  Forest,           // as the forest lists them (by first token)
  DecodeHeavyFirst, // most estimated decode tokens first (BatchLLM: start long decodes early)
  DecodeToPrefillRatio,  // highest decode / prefill work ratio first
};

class PrefixForest {
 public:
  // Throws canopy::Error for a request with an empty prompt, num_samples < 1 or max_new_tokens < 0.
  static PrefixForest build(std::span<const ForestRequest> requests);

  // In preorder: a node's parent comes before it; roots and children in order of first token.
  const std::vector<ForestNode>& nodes() const { return nodes_; }
  std::span<const int32_t> children(int32_t node) const;
  std::span<const int32_t> roots() const { return roots_; }
  // The node where request r's prompt ends.
  int32_t leaf_of(int32_t request) const { return leaf_[static_cast<size_t>(request)]; }
  // Requests in depth-first order of their leaves (a request at a node comes before the nodes below).
  const std::vector<int32_t>& request_order() const { return request_order_; }
  // Nodes on the path from the root to `node`, root first.
  std::vector<int32_t> path(int32_t node) const;

  const std::vector<ForestGroup>& groups() const { return groups_; }
  std::vector<int32_t> group_order(GroupOrder order) const;
  // Requests of all groups, group by group in the given order, depth-first within each group.
  std::vector<int32_t> schedule(GroupOrder order) const;

  const ForestStats& stats() const { return stats_; }

 private:
  std::vector<ForestNode> nodes_;
  std::vector<int32_t> child_offsets_;  // [nodes + 1] into child_list_
  std::vector<int32_t> child_list_;
  std::vector<int32_t> roots_;
  std::vector<int32_t> leaf_;           // [requests]
  std::vector<int32_t> request_order_;
  std::vector<ForestGroup> groups_;
  ForestStats stats_;
};

}  // namespace canopy
