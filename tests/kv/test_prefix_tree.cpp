// The prefix tree over full blocks: match, insert (with canonical blocks), refcounts, LRU eviction.
#include <gtest/gtest.h>

#include <numeric>

#include "kv/prefix_tree.h"

namespace canopy {
namespace {

constexpr int32_t kBs = 4;

std::vector<int32_t> tokens(std::initializer_list<int32_t> block_starts) {
  // One block per value v: tokens v, v+1, v+2, v+3.
  std::vector<int32_t> t;
  for (int32_t v : block_starts)
    for (int32_t i = 0; i < kBs; ++i) t.push_back(v + i);
  return t;
}

// Allocates blocks for `toks` (whole blocks), inserts them at the root, drops the caller's references
// (as a finished sequence would) and returns the blocks.
std::vector<int32_t> cache(BlockPool& pool, PrefixTree& tree, const std::vector<int32_t>& toks) {
  std::vector<int32_t> blocks(toks.size() / kBs);
  for (auto& b : blocks) b = pool.allocate();
  std::vector<int32_t> canonical;
  const auto r = tree.insert(PrefixTree::kRoot, toks, blocks, canonical);
  EXPECT_EQ(r.num_blocks, static_cast<int32_t>(blocks.size()));
  for (int32_t b : blocks) pool.release(b);
  return canonical;
}

TEST(PrefixTree, MatchesTheLongestCachedBlockPrefix) {
  BlockPool pool(16);
  PrefixTree tree(pool, kBs);
  const auto cached = cache(pool, tree, tokens({100, 200, 300}));
  EXPECT_EQ(tree.num_cached_blocks(), 3);
  EXPECT_EQ(pool.num_in_use(), 3);
  EXPECT_EQ(tree.num_evictable(), 3);

  // Same first two blocks, then different tokens, then a partial block: two blocks match.
  auto prompt = tokens({100, 200, 999});
  prompt.push_back(7);
  std::vector<int32_t> got;
  const auto m = tree.match(prompt, got);
  EXPECT_EQ(m.num_blocks, 2);
  EXPECT_EQ(got, (std::vector<int32_t>{cached[0], cached[1]}));
  EXPECT_EQ(pool.refcount(cached[0]), 2);  // the tree's and the caller's
  EXPECT_EQ(tree.num_evictable(), 1);      // only the third block is unreferenced now
  EXPECT_EQ(tree.node_block(m.node), cached[1]);

  // A partial block never matches, nor does a first block that differs by one token.
  got.clear();
  auto partial = tokens({100});
  partial.pop_back();
  EXPECT_EQ(tree.match(partial, got).num_blocks, 0);
  auto off_by_one = tokens({100});
  off_by_one[3] = 0;
  EXPECT_EQ(tree.match(off_by_one, got).num_blocks, 0);
  EXPECT_TRUE(got.empty());
  for (int32_t b : std::vector<int32_t>{cached[0], cached[1]}) pool.release(b);
}

TEST(PrefixTree, InsertingAKnownPrefixReturnsTheTreesBlocks) {
  BlockPool pool(16);
  PrefixTree tree(pool, kBs);
  const auto first = cache(pool, tree, tokens({1, 2}));
  // A second sequence computed the same two blocks plus one more in its own blocks.
  std::vector<int32_t> mine = {pool.allocate(), pool.allocate(), pool.allocate()};
  std::vector<int32_t> canonical;
  const auto r = tree.insert(PrefixTree::kRoot, tokens({1, 2, 3}), mine, canonical);
  EXPECT_EQ(r.num_blocks, 3);
  EXPECT_EQ(canonical, (std::vector<int32_t>{first[0], first[1], mine[2]}));
  EXPECT_EQ(tree.num_cached_blocks(), 3);
  EXPECT_EQ(pool.refcount(mine[0]), 1);  // not cached: the duplicate stays the caller's alone
  EXPECT_EQ(pool.refcount(mine[2]), 2);
  // Inserting below a node continues that node's path.
  std::vector<int32_t> more = {pool.allocate()};
  canonical.clear();
  const auto r2 = tree.insert(r.node, tokens({4}), more, canonical);
  EXPECT_EQ(r2.num_blocks, 1);
  EXPECT_EQ(tree.node_parent(r2.node), r.node);
  for (int32_t b : mine) pool.release(b);
  pool.release(more[0]);
  EXPECT_EQ(tree.evict_all(), 4);
  EXPECT_EQ(pool.num_in_use(), 0);
}

TEST(PrefixTree, EvictsLeastRecentlyUsedLeavesFirst) {
  BlockPool pool(16);
  PrefixTree tree(pool, kBs);
  const auto a = cache(pool, tree, tokens({10, 11}));  // oldest
  const auto b = cache(pool, tree, tokens({20, 21}));
  const auto c = cache(pool, tree, tokens({30, 31}));
  std::vector<int32_t> got;
  tree.match(tokens({10, 11}), got);  // a becomes the most recent
  for (int32_t x : got) pool.release(x);

  auto evict_one = [&] {
    const int32_t before = pool.num_free();
    EXPECT_EQ(tree.evict(1), 1);
    EXPECT_EQ(pool.num_free(), before + 1);
  };
  // Leaves go before their parents; among leaves, the least recently used first.
  std::vector<int32_t> expected = {b[1], b[0], c[1], c[0], a[1], a[0]};
  for (int32_t block : expected) {
    ASSERT_EQ(pool.refcount(block), 1);
    evict_one();
    EXPECT_EQ(pool.refcount(block), 0) << "expected block " << block << " to be evicted next";
  }
  EXPECT_EQ(tree.num_cached_blocks(), 0);
  EXPECT_EQ(tree.evict(1), 0);
}

TEST(PrefixTree, NeverEvictsABlockASequenceUses) {
  BlockPool pool(8);
  PrefixTree tree(pool, kBs);
  const auto blocks = cache(pool, tree, tokens({1, 2, 3}));
  std::vector<int32_t> held;
  tree.match(tokens({1, 2}), held);  // a live sequence holds the first two blocks
  EXPECT_EQ(tree.evict(10), 1);      // only the unreferenced leaf goes
  EXPECT_EQ(pool.refcount(blocks[2]), 0);
  EXPECT_EQ(tree.num_cached_blocks(), 2);
  pool.release(held[1]);  // the sequence ends (in any order)
  pool.release(held[0]);
  EXPECT_EQ(tree.num_evictable(), 2);
  EXPECT_EQ(tree.evict_all(), 2);
  EXPECT_EQ(pool.num_in_use(), 0);
  const auto s = tree.stats();
  EXPECT_EQ(s.evicted_blocks, 3);
  EXPECT_EQ(s.hit_blocks, 2);
}

TEST(PrefixTree, BranchesShareTheirCommonBlocks) {
  BlockPool pool(16);
  PrefixTree tree(pool, kBs);
  cache(pool, tree, tokens({1, 2, 3}));
  cache(pool, tree, tokens({1, 2, 4}));
  cache(pool, tree, tokens({1, 5}));
  EXPECT_EQ(tree.num_cached_blocks(), 5);  // 1, 2, 3, 4 under 2, and 5 under 1
  std::vector<int32_t> got;
  EXPECT_EQ(tree.match(tokens({1, 2, 4, 9}), got).num_blocks, 3);
  for (int32_t x : got) pool.release(x);
}

}  // namespace
}  // namespace canopy
