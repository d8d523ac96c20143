// Random decode/prefill batches over random prefix forests, for the planner identity tests.
//
// A batch is a random forest of token runs (nodes with random lengths: zero, primes, across block
// boundaries); each leaf is a sequence whose KV is the concatenation of its path's runs. Every
// node has its own random K/V, so the ground truth of a query is plain attention over its path.
// The same batch can be laid out in paged blocks three ways: Deep (every full block shared by all
// sequences through the node that holds its last token: multi-level sharing), TwoLevel (only
// blocks inside a root are shared; everything below is a private copy) and None (every sequence
// has private copies, as with --no-prefix-sharing). Each sequence queries its last q_count
// positions: one (decode) or a prefill chunk that may reach back across node boundaries.
#pragma once

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "attention/cpu_attention.h"
#include "attention/planner.h"
#include "kv/kv_layout.h"
#include "testing/testing.h"

namespace canopy::testing {

enum class Sharing { Deep, TwoLevel, None };

struct ForestSpec {
  struct Node {
    int parent = -1;
    int depth = 0;
    int start = 0;  // position of the node's first token
    int len = 0;
    std::vector<float> k, v;  // [len, Hkv, D]
  };
  std::vector<Node> nodes;
  std::vector<std::vector<int>> paths;  // per sequence: node ids, root first
  std::vector<int> lengths;             // per sequence: KV tokens
};

struct BatchConfig {
  int block_size = 16;
  AttentionShape shape{8, 2, 16, 0.25f};
  int max_roots = 2;
  int max_children = 3;
  int max_depth = 3;
  int max_node_len = 40;
  int max_sequences = 12;
  double prefill_probability = 0.3;  // else decode (one query)
};

inline int random_length(std::mt19937_64& rng, int max_len) {
  static const int kPrimes[] = {1, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67};
  switch (rng() % 4) {
    case 0: return 0;
    case 1: {
      int p = kPrimes[rng() % (sizeof(kPrimes) / sizeof(int))];
      return std::min(p, max_len);
    }
    default: return static_cast<int>(rng() % static_cast<uint64_t>(max_len + 1));
  }
}

inline ForestSpec random_forest(std::mt19937_64& rng, const BatchConfig& cfg) {
  ForestSpec f;
  const size_t hd = static_cast<size_t>(cfg.shape.num_kv_heads * cfg.shape.head_dim);
  auto add = [&](int parent, int len) {
    ForestSpec::Node n;
    n.parent = parent;
    n.depth = parent < 0 ? 0 : f.nodes[static_cast<size_t>(parent)].depth + 1;
    n.start = parent < 0 ? 0 : f.nodes[static_cast<size_t>(parent)].start + f.nodes[static_cast<size_t>(parent)].len;
    n.len = len;
    n.k = random_floats(rng, static_cast<size_t>(len) * hd);
    n.v = random_floats(rng, static_cast<size_t>(len) * hd);
    f.nodes.push_back(std::move(n));
    return static_cast<int>(f.nodes.size()) - 1;
  };
  // Grow breadth-first; a node without children is a leaf, i.e. a sequence.
  std::vector<int> frontier;
  const int roots = 1 + static_cast<int>(rng() % static_cast<uint64_t>(cfg.max_roots));
  for (int r = 0; r < roots; ++r) frontier.push_back(add(-1, 1 + random_length(rng, cfg.max_node_len)));
  std::vector<int> leaves;
  for (size_t i = 0; i < frontier.size(); ++i) {
    const int id = frontier[i];
    const int depth = f.nodes[static_cast<size_t>(id)].depth;
    int kids = depth + 1 >= cfg.max_depth ? 0 : static_cast<int>(rng() % static_cast<uint64_t>(cfg.max_children + 1));
    if (static_cast<int>(frontier.size() + leaves.size()) + kids > cfg.max_sequences * 2) kids = 0;
    if (kids == 0) {
      leaves.push_back(id);
      continue;
    }
    for (int c = 0; c < kids; ++c) frontier.push_back(add(id, random_length(rng, cfg.max_node_len)));
  }
  if (static_cast<int>(leaves.size()) > cfg.max_sequences) leaves.resize(static_cast<size_t>(cfg.max_sequences));
  for (int leaf : leaves) {
    std::vector<int> path;
    for (int n = leaf; n >= 0; n = f.nodes[static_cast<size_t>(n)].parent) path.push_back(n);
    std::reverse(path.begin(), path.end());
    const auto& last = f.nodes[static_cast<size_t>(leaf)];
    f.paths.push_back(path);
    f.lengths.push_back(last.start + last.len);
  }
  return f;
}

// The node of a sequence's path that holds position p.
inline int node_at(const ForestSpec& f, int seq, int p) {
  for (int n : f.paths[static_cast<size_t>(seq)]) {
    const auto& node = f.nodes[static_cast<size_t>(n)];
    if (p >= node.start && p < node.start + node.len) return n;
  }
  return -1;
}

struct PagedBatch {
  KvLayout layout;
  std::vector<float> k_cache, v_cache;          // [num_blocks, Hkv, bs, D]
  std::vector<std::vector<int32_t>> tables;     // per sequence
  std::vector<PlannerSequence> seqs;
  int32_t num_tokens = 0;
  std::vector<float> q;                         // [T, Hq, D]
};

// Lays out the forest's KV in paged blocks with the given sharing, and draws the step's queries.
// `query_rng_seed` fixes the queries, so the same batch under different sharing has equal queries.
inline PagedBatch layout_batch(const ForestSpec& f, const BatchConfig& cfg, Sharing sharing,
                               uint64_t layout_seed, uint64_t query_seed) {
  std::mt19937_64 rng(layout_seed);
  const int bs = cfg.block_size;
  const int S = static_cast<int>(f.paths.size());
  // Key of block b of sequence s: a forest node for a shared full block, else a private key.
  std::map<std::pair<int, int>, int32_t> block_of_key;  // (node or -1 - seq, block index) -> block id
  std::vector<std::vector<std::pair<int, int>>> keys(static_cast<size_t>(S));
  for (int s = 0; s < S; ++s) {
    const int len = f.lengths[static_cast<size_t>(s)];
    for (int b = 0; b * bs < len; ++b) {
      std::pair<int, int> key{-1 - s, b};
      if ((b + 1) * bs <= len && sharing != Sharing::None) {
        const int n = node_at(f, s, (b + 1) * bs - 1);
        if (sharing == Sharing::Deep || f.nodes[static_cast<size_t>(n)].depth == 0) key = {n, b};
      }
      keys[static_cast<size_t>(s)].push_back(key);
      block_of_key.emplace(key, 0);
    }
  }
  // Scatter block ids over a pool with some unused blocks.
  const int32_t num_blocks = static_cast<int32_t>(block_of_key.size()) + 5;
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  size_t next = 0;
  for (auto& [key, id] : block_of_key) id = ids[next++];

  PagedBatch pb;
  pb.layout = KvLayout{num_blocks, bs, cfg.shape.num_kv_heads, cfg.shape.head_dim};
  pb.k_cache = random_floats(rng, pb.layout.layer_elems());  // unused slots hold garbage
  pb.v_cache = random_floats(rng, pb.layout.layer_elems());
  const int Hkv = cfg.shape.num_kv_heads, D = cfg.shape.head_dim;
  pb.tables.resize(static_cast<size_t>(S));
  for (int s = 0; s < S; ++s) {
    auto& table = pb.tables[static_cast<size_t>(s)];
    for (const auto& key : keys[static_cast<size_t>(s)]) table.push_back(block_of_key.at(key));
    for (int p = 0; p < f.lengths[static_cast<size_t>(s)]; ++p) {
      const auto& node = f.nodes[static_cast<size_t>(node_at(f, s, p))];
      for (int h = 0; h < Hkv; ++h) {
        const size_t src = (static_cast<size_t>(p - node.start) * static_cast<size_t>(Hkv) + static_cast<size_t>(h)) * static_cast<size_t>(D);
        const size_t dst = pb.layout.offset(table[static_cast<size_t>(p / bs)], h, p % bs);
        std::copy_n(node.k.begin() + static_cast<ptrdiff_t>(src), D, pb.k_cache.begin() + static_cast<ptrdiff_t>(dst));
        std::copy_n(node.v.begin() + static_cast<ptrdiff_t>(src), D, pb.v_cache.begin() + static_cast<ptrdiff_t>(dst));
      }
    }
  }

  // The step: queries per sequence, sequences' token ranges in a random order.
  std::mt19937_64 qrng(query_seed);
  std::vector<int32_t> q_counts(static_cast<size_t>(S));
  for (int s = 0; s < S; ++s) {
    const int len = f.lengths[static_cast<size_t>(s)];
    const bool prefill = std::uniform_real_distribution<double>(0, 1)(qrng) < cfg.prefill_probability;
    q_counts[static_cast<size_t>(s)] = prefill ? 1 + static_cast<int32_t>(qrng() % static_cast<uint64_t>(len)) : 1;
  }
  std::vector<int> order(static_cast<size_t>(S));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), qrng);
  pb.seqs.resize(static_cast<size_t>(S));
  for (int s : order) {
    PlannerSequence& ps = pb.seqs[static_cast<size_t>(s)];
    ps.block_table = pb.tables[static_cast<size_t>(s)];
    ps.kv_len = f.lengths[static_cast<size_t>(s)];
    ps.q_count = q_counts[static_cast<size_t>(s)];
    ps.q_begin = pb.num_tokens;
    pb.num_tokens += ps.q_count;
  }
  pb.q = random_floats(qrng, static_cast<size_t>(pb.num_tokens) * static_cast<size_t>(cfg.shape.num_q_heads * D));
  return pb;
}

// Ground truth: plain double-precision attention of every (token, head) over its path, causal.
struct Reference {
  std::vector<double> out;  // [T, Hq, D]
  std::vector<double> lse;  // [T, Hq]
};

inline Reference reference_attention(const ForestSpec& f, const BatchConfig& cfg, const PagedBatch& pb) {
  const int Hq = cfg.shape.num_q_heads, Hkv = cfg.shape.num_kv_heads, D = cfg.shape.head_dim, g = cfg.shape.group();
  Reference ref;
  ref.out.assign(static_cast<size_t>(pb.num_tokens) * static_cast<size_t>(Hq * D), 0.0);
  ref.lse.assign(static_cast<size_t>(pb.num_tokens) * static_cast<size_t>(Hq), 0.0);
  std::vector<float> keys, values;
  for (size_t s = 0; s < pb.seqs.size(); ++s) {
    const PlannerSequence& ps = pb.seqs[s];
    for (int h = 0; h < Hq; ++h) {
      keys.clear();
      values.clear();
      for (int p = 0; p < ps.kv_len; ++p) {
        const auto& node = f.nodes[static_cast<size_t>(node_at(f, static_cast<int>(s), p))];
        const size_t src = (static_cast<size_t>(p - node.start) * static_cast<size_t>(Hkv) + static_cast<size_t>(h / g)) * static_cast<size_t>(D);
        keys.insert(keys.end(), node.k.begin() + static_cast<ptrdiff_t>(src), node.k.begin() + static_cast<ptrdiff_t>(src) + D);
        values.insert(values.end(), node.v.begin() + static_cast<ptrdiff_t>(src), node.v.begin() + static_cast<ptrdiff_t>(src) + D);
      }
      for (int j = 0; j < ps.q_count; ++j) {
        const int t = ps.q_begin + j;
        const int qpos = ps.kv_len - ps.q_count + j;
        const size_t row = static_cast<size_t>(t) * static_cast<size_t>(Hq) + static_cast<size_t>(h);
        ref.lse[row] = flat_attention_reference(pb.q.data() + row * static_cast<size_t>(D), keys.data(), values.data(),
                                                qpos + 1, D, cfg.shape.scale, ref.out.data() + row * static_cast<size_t>(D));
      }
    }
  }
  return ref;
}

struct PlanOutput {
  AttentionPlan plan;
  std::vector<float> out, lse;
};

inline PlanOutput run_plan(const BatchConfig& cfg, const PagedBatch& pb, int32_t max_kv, int32_t max_q,
                           bool verify_shared_prefixes = true) {
  PlanOutput r;
  Planner planner({cfg.block_size, pb.layout.num_blocks, max_kv, max_q, verify_shared_prefixes});
  planner.build(pb.seqs, pb.num_tokens, r.plan);
  AttentionPartials partials;
  r.out.assign(pb.q.size(), 0.0f);
  r.lse.assign(static_cast<size_t>(pb.num_tokens) * static_cast<size_t>(cfg.shape.num_q_heads), 0.0f);
  run_attention_plan_cpu(r.plan, cfg.shape, pb.layout, pb.q.data(), pb.k_cache.data(), pb.v_cache.data(), partials,
                         r.out.data(), r.lse.data());
  return r;
}

}  // namespace canopy::testing
