// The global prefix forest: structure, statistics, orders; and, run through the KV cache manager,
// the count of prefilled tokens equals the forest's optimum up to block rounding.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "core/error.h"
#include "kv/kv_cache_manager.h"
#include "sched/prefix_forest.h"
#include "testing/testing.h"

namespace canopy {
namespace {

std::vector<int32_t> run(int32_t first, int32_t n) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = first + i;
  return t;
}

std::vector<int32_t> cat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(PrefixForest, BuildsMaximalSharedRunsInPreorder) {
  const std::vector<std::vector<int32_t>> prompts = {
      cat({run(100, 5), run(200, 3)}),  // 0
      cat({run(100, 5), run(300, 2)}),  // 1
      run(100, 5),                      // 2: a prefix of 0 and 1, ends at the inner node
      cat({run(100, 3), {7}}),          // 3: leaves the first run after 3 tokens
      run(50, 4),                       // 4: its own root, first by token order
  };
  std::vector<ForestRequest> reqs;
  for (size_t i = 0; i < prompts.size(); ++i) reqs.push_back({prompts[i], static_cast<int32_t>(i) + 1, 10});
  const PrefixForest f = PrefixForest::build(reqs);
  const auto& n = f.nodes();
  // Preorder: [50..53], [100..102] -> {[7], [103,104] -> {[200..], [300..]}}
  ASSERT_EQ(n.size(), 6u);
  EXPECT_EQ(f.roots().size(), 2u);
  EXPECT_EQ(n[0].num_tokens, 4);
  EXPECT_EQ(n[1].num_tokens, 3);
  EXPECT_EQ(n[1].first_token, 0);
  EXPECT_EQ(n[2].parent, 1);  // [7] sorts before [103, 104]
  EXPECT_EQ(n[2].num_tokens, 1);
  EXPECT_EQ(n[3].parent, 1);
  EXPECT_EQ(n[3].first_token, 3);
  EXPECT_EQ(n[3].num_tokens, 2);
  EXPECT_EQ(n[4].parent, 3);
  EXPECT_EQ(n[5].parent, 3);
  EXPECT_EQ(f.leaf_of(2), 3);
  EXPECT_EQ(f.leaf_of(0), 4);
  EXPECT_EQ(f.leaf_of(1), 5);
  EXPECT_EQ(f.leaf_of(3), 2);
  EXPECT_EQ(f.leaf_of(4), 0);
  for (size_t i = 0; i < n.size(); ++i) EXPECT_LT(n[i].parent, static_cast<int32_t>(i)) << "parents come first";
  EXPECT_EQ(n[1].subtree_end, 6);
  EXPECT_EQ(f.path(5), (std::vector<int32_t>{1, 3, 5}));
  EXPECT_EQ(std::vector<int32_t>(f.children(3).begin(), f.children(3).end()), (std::vector<int32_t>{4, 5}));
  // Depth-first request order: a request at an inner node before those below it.
  EXPECT_EQ(f.request_order(), (std::vector<int32_t>{4, 3, 2, 0, 1}));

  const auto& s = f.stats();
  EXPECT_EQ(s.num_requests, 5);
  EXPECT_EQ(s.num_samples, 1 + 2 + 3 + 4 + 5);
  EXPECT_EQ(s.logical_prompt_tokens, 8 * 1 + 7 * 2 + 5 * 3 + 4 * 4 + 4 * 5);
  EXPECT_EQ(s.unique_prompt_tokens, 4 + 3 + 1 + 2 + 3 + 2);
  EXPECT_NEAR(s.saving_ratio(), 1.0 - 15.0 / 73.0, 1e-12);
  EXPECT_EQ(s.max_depth, 3);
  EXPECT_EQ(n[1].samples, 1 + 2 + 3 + 4);
  EXPECT_EQ(n[1].decode_tokens, 10 * (1 + 2 + 3 + 4));

  ASSERT_EQ(f.groups().size(), 2u);
  EXPECT_EQ(f.groups()[1].prefill_tokens, 11);
  EXPECT_EQ(f.groups()[1].logical_prompt_tokens, 73 - 20);
  EXPECT_EQ(f.group_order(GroupOrder::Forest), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(f.group_order(GroupOrder::DecodeHeavyFirst), (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(f.schedule(GroupOrder::DecodeHeavyFirst), (std::vector<int32_t>{3, 2, 0, 1, 4}));
  // By decode per prefill token: group 0 has 50 / 4, group 1 has 100 / 11.
  EXPECT_EQ(f.group_order(GroupOrder::DecodeToPrefillRatio), (std::vector<int32_t>{0, 1}));
}

TEST(PrefixForest, IdenticalPromptsShareEverything) {
  const auto p = run(1, 9);
  const std::vector<ForestRequest> reqs = {{p, 4, 0}, {p, 4, 0}};
  const PrefixForest f = PrefixForest::build(reqs);
  EXPECT_EQ(f.nodes().size(), 1u);
  EXPECT_EQ(f.stats().unique_prompt_tokens, 9);
  EXPECT_EQ(f.stats().logical_prompt_tokens, 72);
  EXPECT_DOUBLE_EQ(f.stats().sharing_factor(), 8.0);
}

TEST(PrefixForest, RejectsBadRequests) {
  const auto p = run(1, 3);
  EXPECT_THROW(PrefixForest::build(std::vector<ForestRequest>{{{}, 1, 0}}), Error);
  EXPECT_THROW(PrefixForest::build(std::vector<ForestRequest>{{p, 0, 0}}), Error);
  EXPECT_THROW(PrefixForest::build(std::vector<ForestRequest>{{p, 1, -1}}), Error);
  const PrefixForest empty = PrefixForest::build({});
  EXPECT_EQ(empty.stats().num_nodes, 0);
  EXPECT_EQ(empty.stats().saving_ratio(), 0.0);
}

// A batch with a 3-level tree: system prompts -> documents -> questions, n samples each.
struct ThreeLevelBatch {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<ForestRequest> requests;
  int64_t expected_unique = 0;

  explicit ThreeLevelBatch(std::mt19937_64& rng) {
    int32_t next_token = 1;
    auto fresh = [&](int32_t n) {
      auto r = run(next_token, n);
      next_token += n;
      return r;
    };
    auto len = [&](int lo, int hi) { return lo + static_cast<int32_t>(rng() % static_cast<uint64_t>(hi - lo + 1)); };
    for (int s = 0; s < 3; ++s) {
      const auto system = fresh(len(20, 70));
      expected_unique += static_cast<int64_t>(system.size());
      for (int d = 0, docs = len(1, 3); d < docs; ++d) {
        const auto doc = fresh(len(5, 50));
        expected_unique += static_cast<int64_t>(doc.size());
        for (int q = 0, qs = len(1, 4); q < qs; ++q) {
          const auto question = fresh(len(1, 13));
          expected_unique += static_cast<int64_t>(question.size());
          prompts.push_back(cat({system, doc, question}));
        }
      }
    }
    std::shuffle(prompts.begin(), prompts.end(), rng);
    for (const auto& p : prompts) requests.push_back({p, len(1, 4), len(0, 64)});
  }
};

struct PrefillCount {
  int64_t prefilled = 0;
  int64_t expected_rounding = 0;  // tokens recomputed because a shared run ends inside a block
};

// The offline flow: requests in the given order; each takes its cached prefix, prefills the rest,
// caches its full prompt blocks, forks its n samples (which prefill nothing), and finishes.
PrefillCount run_offline(const PrefixForest& forest, const std::vector<ForestRequest>& requests,
                         const std::vector<int32_t>& order, int32_t block_size, int32_t num_blocks) {
  KvCacheManager kv({num_blocks, block_size, true});
  PrefillCount c;
  std::set<int32_t> entered;  // forest nodes some earlier request went through
  std::vector<int32_t> slots;
  std::vector<BlockCopy> copies;
  for (int32_t r : order) {
    const auto prompt = requests[static_cast<size_t>(r)].prompt;
    const SeqId seq = kv.create(prompt);
    const int32_t todo = static_cast<int32_t>(prompt.size()) - kv.length(seq);
    c.prefilled += todo;
    kv.append(seq, todo, slots, copies);
    kv.cache_prefix(seq, prompt);
    std::vector<SeqId> samples{seq};
    for (int i = 1; i < requests[static_cast<size_t>(r)].num_samples; ++i) samples.push_back(kv.fork(seq));
    for (SeqId s : samples) kv.append(s, 1, slots, copies);  // a first decode step
    for (SeqId s : samples) kv.free(s);
    // The first node of this request's path that no earlier request entered: prefill starts there,
    // rounded down to a block boundary (the block holding the boundary is the parent's, but holds
    // other tokens after it, so it is not in the cache).
    bool first_new = true;
    for (int32_t node : forest.path(forest.leaf_of(r))) {
      if (entered.insert(node).second && first_new) {
        c.expected_rounding += forest.nodes()[static_cast<size_t>(node)].first_token % block_size;
        first_new = false;
      }
    }
  }
  return c;
}

TEST(PrefixForest, PrefilledTokensEqualTheOptimumUpToBlockRounding) {
  std::mt19937_64 rng(canopy::testing::test_seed());
  for (int trial = 0; trial < 4; ++trial) {
    const ThreeLevelBatch batch(rng);
    const PrefixForest forest = PrefixForest::build(batch.requests);
    EXPECT_EQ(forest.stats().max_depth, 3);
    EXPECT_EQ(forest.stats().unique_prompt_tokens, batch.expected_unique);
    int64_t logical = 0;
    for (const auto& r : batch.requests) logical += static_cast<int64_t>(r.prompt.size()) * r.num_samples;
    EXPECT_EQ(forest.stats().logical_prompt_tokens, logical);
    EXPECT_GT(forest.stats().saving_ratio(), 0.5);

    for (int32_t bs : {1, 4, 16}) {
      const auto c = run_offline(forest, batch.requests, forest.schedule(GroupOrder::DecodeHeavyFirst), bs, 4096);
      EXPECT_EQ(c.prefilled, forest.stats().unique_prompt_tokens + c.expected_rounding)
          << "trial " << trial << " block size " << bs << ": " << forest.stats().str();
      if (bs == 1) {
        EXPECT_EQ(c.prefilled, forest.stats().unique_prompt_tokens);
      }
      EXPECT_LE(c.expected_rounding, static_cast<int64_t>(bs - 1) * (forest.stats().num_nodes - forest.stats().num_groups));
    }
  }
}

// With a cache that holds about one group's prefix, the forest's depth-first order keeps each
// prefix until its last user; interleaving the groups evicts prefixes before their reuse.
TEST(PrefixForest, DepthFirstOrderKeepsPrefixesUntilReuse) {
  std::vector<std::vector<int32_t>> prompts;
  for (int g = 0; g < 2; ++g)
    for (int q = 0; q < 4; ++q) prompts.push_back(cat({run(1000 * (g + 1), 64), run(1000 * (g + 1) + 100 + 10 * q, 8)}));
  std::vector<ForestRequest> reqs;
  for (const auto& p : prompts) reqs.push_back({p, 1, 0});
  const PrefixForest forest = PrefixForest::build(reqs);
  const int32_t bs = 4, blocks = 24;  // one system prompt (16 blocks) plus a few questions
  const auto dfs = run_offline(forest, reqs, forest.schedule(GroupOrder::Forest), bs, blocks);
  EXPECT_EQ(dfs.prefilled, forest.stats().unique_prompt_tokens);
  const std::vector<int32_t> interleaved = {0, 4, 1, 5, 2, 6, 3, 7};
  const auto bad = run_offline(forest, reqs, interleaved, bs, blocks);
  EXPECT_GT(bad.prefilled, dfs.prefilled + 4 * 64) << "interleaving should recompute evicted system prompts";
}

}  // namespace
}  // namespace canopy
