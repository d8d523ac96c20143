#include "attention/planner.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace canopy {

Planner::Planner(const PlannerOptions& options) : options_(options) {
  const int32_t bs = options.block_size;
  CANOPY_CHECK(bs > 0, "attention planner: block size must be positive (got {})", bs);
  CANOPY_CHECK(options.num_blocks > 0, "attention planner: the number of KV blocks must be positive (got {})",
               options.num_blocks);
  CANOPY_CHECK(options.max_kv_tokens_per_item >= 0 && options.max_kv_tokens_per_item % bs == 0,
               "attention planner: max KV tokens per item ({}) must be a multiple of the block size ({}), or 0",
               options.max_kv_tokens_per_item, bs);
  CANOPY_CHECK(options.max_q_per_item >= 0, "attention planner: max queries per item must be >= 0 (got {})",
               options.max_q_per_item);
  stamps_.assign(static_cast<size_t>(options.num_blocks), BlockStamp{});
}

int32_t Planner::new_node(int32_t parent, int32_t rep, int32_t block_begin, int32_t block_end) {
  Node n;
  n.parent = parent;
  n.rep = rep;
  n.block_begin = block_begin;
  n.block_end = block_end;
  nodes_.push_back(n);
  return static_cast<int32_t>(nodes_.size()) - 1;
}

void Planner::add_child(int32_t parent, int32_t child) {
  Node& p = nodes_[static_cast<size_t>(parent)];
  nodes_[static_cast<size_t>(child)].parent = parent;
  nodes_[static_cast<size_t>(child)].next_sibling = -1;
  if (p.last_child < 0) {
    p.first_child = child;
  } else {
    nodes_[static_cast<size_t>(p.last_child)].next_sibling = child;
  }
  p.last_child = child;
}

void Planner::attach_sequence(int32_t node, int32_t seq) {
  seq_leaf_[static_cast<size_t>(seq)] = node;
  seq_next_[static_cast<size_t>(seq)] = nodes_[static_cast<size_t>(node)].first_seq;
  nodes_[static_cast<size_t>(node)].first_seq = seq;
}

void Planner::insert_sequence(std::span<const PlannerSequence> sequences, int32_t s, std::vector<int32_t>& pages) {
  const PlannerSequence& seq = sequences[static_cast<size_t>(s)];
  const int32_t bs = options_.block_size;
  const int32_t nb = (seq.kv_len + bs - 1) / bs;  // blocks in use, >= 1
  const int32_t* table = seq.block_table.data();
  auto check_block = [&](int32_t j) {
    const int32_t b = table[j];
    CANOPY_CHECK(b >= 0 && b < options_.num_blocks,
                 "attention planner: sequence {} has block id {} at position {}, outside the cache's {} blocks", s,
                 b, j, options_.num_blocks);
    return b;
  };
  auto seen_at = [&](int32_t b, int32_t j) {
    const BlockStamp& st = stamps_[static_cast<size_t>(b)];
    return st.epoch == epoch_ && st.pos == j;
  };

  // Find the deepest block position j at which this sequence joins a path already in the trie:
  // walk back over its private tail until a block placed earlier at the same position, then check
  // that the whole prefix up to it is identical (so the trie stays exact for any block tables).
  int32_t join_seq = -1, join_pos = -1;
  if (seen_at(check_block(0), 0)) {
    complete_stamps(sequences, stamps_[static_cast<size_t>(table[0])].seq);
    for (int32_t j = nb - 1; j >= 0; --j) {
      const int32_t b = check_block(j);
      if (!seen_at(b, j)) continue;
      const int32_t r = stamps_[static_cast<size_t>(b)].seq;
      const int32_t* rep_table = sequences[static_cast<size_t>(r)].block_table.data();
      if (!options_.verify_shared_prefixes ||
          std::memcmp(table, rep_table, static_cast<size_t>(j) * sizeof(int32_t)) == 0) {
        join_seq = r;
        join_pos = j;
      }
      break;  // a mismatch means tables that share blocks out of order: keep this one private
    }
  }

  int32_t leaf;
  int32_t first_private;
  if (join_seq < 0) {
    leaf = new_node(-1, s, 0, nb);
    roots_.push_back(leaf);
    first_private = 0;
  } else {
    // The node on join_seq's path that holds position join_pos.
    int32_t n = seq_leaf_[static_cast<size_t>(join_seq)];
    while (nodes_[static_cast<size_t>(n)].block_begin > join_pos) n = nodes_[static_cast<size_t>(n)].parent;
    if (join_pos + 1 < nodes_[static_cast<size_t>(n)].block_end) {
      // Split n after join_pos: the lower part takes n's children and the sequences ending at n.
      const int32_t lower = new_node(n, nodes_[static_cast<size_t>(n)].rep, join_pos + 1,
                                     nodes_[static_cast<size_t>(n)].block_end);
      Node& lo = nodes_[static_cast<size_t>(lower)];
      Node& up = nodes_[static_cast<size_t>(n)];
      lo.first_child = up.first_child;
      lo.last_child = up.last_child;
      for (int32_t c = lo.first_child; c >= 0; c = nodes_[static_cast<size_t>(c)].next_sibling)
        nodes_[static_cast<size_t>(c)].parent = lower;
      lo.first_seq = up.first_seq;
      for (int32_t q = lo.first_seq; q >= 0; q = seq_next_[static_cast<size_t>(q)]) seq_leaf_[static_cast<size_t>(q)] = lower;
      lo.page_begin = up.page_begin + (join_pos + 1 - up.block_begin);
      up.block_end = join_pos + 1;
      up.first_child = up.last_child = -1;
      up.first_seq = -1;
      add_child(n, lower);
    }
    if (join_pos == nb - 1) {
      attach_sequence(n, s);
      return;
    }
    leaf = new_node(n, s, join_pos + 1, nb);
    add_child(n, leaf);
    first_private = join_pos + 1;
  }
  attach_sequence(leaf, s);
  // The private blocks become the new node's pages (a later split keeps both halves contiguous).
  // They are read by the kernels, so every id is range-checked (min and max: one cheap pass).
  int32_t lo = INT32_MAX, hi = INT32_MIN;
  for (int32_t j = first_private; j < nb; ++j) {
    lo = std::min(lo, table[j]);
    hi = std::max(hi, table[j]);
  }
  if (lo < 0 || hi >= options_.num_blocks)
    for (int32_t j = first_private; j < nb; ++j) check_block(j);  // throws, naming the block
  nodes_[static_cast<size_t>(leaf)].page_begin = static_cast<int32_t>(pages.size());
  pages.insert(pages.end(), table + first_private, table + nb);
  if (first_private == 0) {
    // A new root: stamp only its first block, and the rest when a later sequence meets that block
    // (complete_stamps). Without prefix sharing no one ever does, and the stamps are never written.
    nodes_[static_cast<size_t>(leaf)].stamped = false;
    stamp_blocks(sequences, s, 0, 1);
  } else {
    stamp_blocks(sequences, s, first_private, nb);
  }
}

void Planner::stamp_blocks(std::span<const PlannerSequence> sequences, int32_t s, int32_t from, int32_t to) {
  const int32_t* table = sequences[static_cast<size_t>(s)].block_table.data();
  for (int32_t j = from; j < to; ++j) {
    BlockStamp& st = stamps_[static_cast<size_t>(table[j])];
    if (st.epoch == epoch_) continue;  // placed earlier at another position: keep the first
    st = BlockStamp{epoch_, s, j};
  }
}

void Planner::complete_stamps(std::span<const PlannerSequence> sequences, int32_t r) {
  // r's first block is stamped; if r started a root that is still lazy, nobody has joined it yet,
  // so it is exactly r's whole path and r ends there.
  Node& n = nodes_[static_cast<size_t>(seq_leaf_[static_cast<size_t>(r)])];
  if (n.stamped) return;
  CANOPY_ASSERT(n.parent < 0 && n.block_begin == 0);
  n.stamped = true;
  stamp_blocks(sequences, r, 1, n.block_end);
}

void Planner::order_nodes(std::span<const PlannerSequence> sequences) {
  const int32_t bs = options_.block_size;
  preorder_.clear();
  dfs_seqs_.clear();
  dfs_stack_.clear();
  for (auto it = roots_.rbegin(); it != roots_.rend(); ++it) dfs_stack_.push_back(*it);
  // Iterative depth-first walk. A node is pushed once as itself (>= 0) and once, below its
  // children, as ~node, popped when its subtree is done.
  while (!dfs_stack_.empty()) {
    const int32_t entry = dfs_stack_.back();
    dfs_stack_.pop_back();
    if (entry < 0) {
      Node& n = nodes_[static_cast<size_t>(~entry)];
      n.seq_hi = static_cast<int32_t>(dfs_seqs_.size());
      continue;
    }
    Node& n = nodes_[static_cast<size_t>(entry)];
    n.order = static_cast<int32_t>(preorder_.size());
    preorder_.push_back(entry);
    n.seq_lo = static_cast<int32_t>(dfs_seqs_.size());
    // KV extent: whole blocks when a child continues below, else up to the longest sequence here.
    n.kv_end = n.first_child >= 0 ? n.block_end * bs : 0;
    for (int32_t q = n.first_seq; q >= 0; q = seq_next_[static_cast<size_t>(q)]) {
      dfs_seqs_.push_back(q);
      n.kv_end = std::max(n.kv_end, std::min(sequences[static_cast<size_t>(q)].kv_len, n.block_end * bs));
    }
    dfs_stack_.push_back(~entry);
    // Children in reverse so that they pop in insertion order.
    const size_t mark = dfs_stack_.size();
    for (int32_t c = n.first_child; c >= 0; c = nodes_[static_cast<size_t>(c)].next_sibling) dfs_stack_.push_back(c);
    std::reverse(dfs_stack_.begin() + static_cast<ptrdiff_t>(mark), dfs_stack_.end());
  }
}

void Planner::emit_items(std::span<const PlannerSequence> sequences, AttentionPlan& plan) {
  const int32_t bs = options_.block_size;
  const int32_t kv_chunk = options_.max_kv_tokens_per_item;
  const int32_t q_tile = options_.max_q_per_item;
  unsorted_.clear();
  for (const int32_t id : preorder_) {
    const Node& n = nodes_[static_cast<size_t>(id)];
    const int32_t kv_begin = n.block_begin * bs;
    const int32_t kv_end = n.kv_end;
    if (n.seq_hi - n.seq_lo > 1) ++stats_.shared_nodes;

    // Its queries: every step token below it at a position >= the node's first key (earlier
    // tokens of a prefill chunk that crosses into this node cannot see any of its keys).
    const int32_t q_first = static_cast<int32_t>(plan.q_tokens.size());
    for (int32_t i = n.seq_lo; i < n.seq_hi; ++i) {
      const PlannerSequence& seq = sequences[static_cast<size_t>(dfs_seqs_[static_cast<size_t>(i)])];
      const int32_t pos0 = seq.kv_len - seq.q_count;  // position of the sequence's first query
      const int32_t skip = std::max(0, kv_begin - pos0);
      for (int32_t t = seq.q_begin + skip; t < seq.q_begin + seq.q_count; ++t) plan.q_tokens.push_back(t);
    }
    const int32_t q_last = static_cast<int32_t>(plan.q_tokens.size());
    const int32_t tile = q_tile > 0 ? q_tile : std::max(1, q_last - q_first);
    const int32_t chunk = kv_chunk > 0 ? kv_chunk : std::max(1, kv_end - kv_begin);

    for (int32_t qb = q_first; qb < q_last; qb += tile) {
      const int32_t qe = std::min(q_last, qb + tile);
      int32_t min_pos = INT32_MAX, max_pos = INT32_MIN;
      for (int32_t i = qb; i < qe; ++i) {
        const int32_t p = plan.q_positions[static_cast<size_t>(plan.q_tokens[static_cast<size_t>(i)])];
        min_pos = std::min(min_pos, p);
        max_pos = std::max(max_pos, p);
      }
      for (int32_t c0 = kv_begin; c0 < kv_end; c0 += chunk) {
        if (c0 > max_pos) break;  // every key of this and later chunks comes after every query
        const int32_t c1 = std::min(kv_end, c0 + chunk);
        AttentionItem item;
        item.kv_page_begin = n.page_begin + (c0 - kv_begin) / bs;
        item.kv_len = c1 - c0;
        item.kv_pos0 = c0;
        item.q_begin = qb;
        item.q_count = qe - qb;
        item.causal = c1 - 1 > min_pos ? 1 : 0;
        item.node = n.order;
        unsorted_.push_back(item);
      }
    }
  }
}

void Planner::finish_plan(AttentionPlan& plan) {
  // Longest first; ties keep creation order (preorder of nodes, then query tiles, then chunks).
  order_.clear();
  for (size_t i = 0; i < unsorted_.size(); ++i) {
    const AttentionItem& it = unsorted_[i];
    order_.emplace_back(-static_cast<int64_t>(it.kv_len) * it.q_count, static_cast<int32_t>(i));
  }
  // Decode steps usually come out sorted already (shared nodes first, then equal leaves).
  if (!std::is_sorted(order_.begin(), order_.end())) std::sort(order_.begin(), order_.end());
  plan.items.clear();
  int32_t slot = 0;
  for (const auto& [key, index] : order_) {
    AttentionItem it = unsorted_[static_cast<size_t>(index)];
    it.out_begin = slot;
    slot += it.q_count;
    plan.items.push_back(it);
  }
  plan.num_slots = slot;

  // Merge map: count each token's slots, prefix-sum, then fill in item order.
  const size_t T = static_cast<size_t>(plan.num_tokens);
  plan.merge_offsets.assign(T + 1, 0);
  for (const AttentionItem& it : plan.items)
    for (int32_t j = 0; j < it.q_count; ++j) ++plan.merge_offsets[static_cast<size_t>(plan.q_tokens[static_cast<size_t>(it.q_begin + j)]) + 1];
  for (size_t t = 0; t < T; ++t) plan.merge_offsets[t + 1] += plan.merge_offsets[t];
  plan.merge_slots.resize(static_cast<size_t>(slot));
  token_owner_.assign(plan.merge_offsets.begin(), plan.merge_offsets.end() - 1);  // fill cursor per token
  for (const AttentionItem& it : plan.items) {
    for (int32_t j = 0; j < it.q_count; ++j) {
      const size_t t = static_cast<size_t>(plan.q_tokens[static_cast<size_t>(it.q_begin + j)]);
      plan.merge_slots[static_cast<size_t>(token_owner_[t]++)] = it.out_begin + j;
    }
  }
}

void Planner::build(std::span<const PlannerSequence> sequences, int32_t num_tokens, AttentionPlan& plan) {
  const int32_t bs = options_.block_size;
  CANOPY_CHECK(num_tokens >= 0, "attention planner: negative token count {}", num_tokens);
  stats_ = PlannerStats{};
  plan.num_tokens = num_tokens;
  plan.q_positions.assign(static_cast<size_t>(num_tokens), -1);
  plan.items.clear();
  plan.kv_pages.clear();
  plan.q_tokens.clear();
  plan.num_slots = 0;

  // Validate the batch and record each token's position.
  token_owner_.assign(static_cast<size_t>(num_tokens), -1);
  for (size_t s = 0; s < sequences.size(); ++s) {
    const PlannerSequence& seq = sequences[s];
    if (seq.q_count == 0) continue;
    CANOPY_CHECK(seq.q_count > 0 && seq.kv_len >= seq.q_count,
                 "attention planner: sequence {} has {} queries but {} KV tokens", s, seq.q_count, seq.kv_len);
    CANOPY_CHECK(seq.kv_len <= INT32_MAX / 2, "attention planner: sequence {} has {} KV tokens, too many", s,
                 seq.kv_len);
    CANOPY_CHECK(seq.q_begin >= 0 && seq.q_begin <= num_tokens - seq.q_count,
                 "attention planner: sequence {} has step tokens [{}, {}) outside the step's {} tokens", s,
                 seq.q_begin, static_cast<int64_t>(seq.q_begin) + seq.q_count, num_tokens);
    const int64_t blocks_needed = (static_cast<int64_t>(seq.kv_len) + bs - 1) / bs;
    CANOPY_CHECK(static_cast<int64_t>(seq.block_table.size()) >= blocks_needed,
                 "attention planner: sequence {} has {} KV tokens but only {} blocks of {}", s, seq.kv_len,
                 seq.block_table.size(), bs);
    for (int32_t j = 0; j < seq.q_count; ++j) {
      const size_t t = static_cast<size_t>(seq.q_begin + j);
      CANOPY_CHECK(token_owner_[t] < 0, "attention planner: step token {} belongs to sequences {} and {}", t,
                   token_owner_[t], s);
      token_owner_[t] = static_cast<int32_t>(s);
      plan.q_positions[t] = seq.kv_len - seq.q_count + j;
    }
    ++stats_.num_sequences;
    stats_.kv_tokens_logical += seq.kv_len;
  }
  for (size_t t = 0; t < static_cast<size_t>(num_tokens); ++t)
    CANOPY_CHECK(token_owner_[t] >= 0, "attention planner: step token {} belongs to no sequence", t);

  // The step's forest: a compressed trie over block ids.
  if (++epoch_ == 0) {  // the stamps wrapped around (after 2^32 steps): forget them all
    std::fill(stamps_.begin(), stamps_.end(), BlockStamp{});
    epoch_ = 1;
  }
  nodes_.clear();
  roots_.clear();
  seq_leaf_.assign(sequences.size(), -1);
  seq_next_.assign(sequences.size(), -1);
  for (size_t s = 0; s < sequences.size(); ++s) {
    // The tables are usually cold: start loading a later sequence's first and last blocks.
    constexpr size_t kAhead = 4;
    if (s + kAhead < sequences.size() && sequences[s + kAhead].q_count > 0) {
      const auto& next = sequences[s + kAhead];
      const int32_t* first = next.block_table.data();
      const int32_t* last = first + (next.kv_len + bs - 1) / bs - 1;  // the walk starts here, going back
      __builtin_prefetch(first);
      __builtin_prefetch(last);
      if (last - first >= 16) __builtin_prefetch(last - 16);
    }
    if (sequences[s].q_count > 0) insert_sequence(sequences, static_cast<int32_t>(s), plan.kv_pages);
  }

  order_nodes(sequences);
  stats_.num_nodes = static_cast<int32_t>(nodes_.size());
  plan.num_nodes = stats_.num_nodes;
  emit_items(sequences, plan);
  finish_plan(plan);
}

}  // namespace canopy
