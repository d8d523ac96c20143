// Identities of the planned, decomposed attention (DESIGN.md section 5), on random batches with
// recorded seeds: decomposed == flat; multi-level == two-level == no sharing; GQA groups 1/4/8;
// block sizes 1/16/32; empty leaves; prime lengths; prefill chunks that cross node boundaries;
// split-KV and query tiles on and off; fully masked (LSE = -inf) parts.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "attention/cpu_attention.h"
#include "attention/planner.h"
#include "random_batch.h"
#include "testing/testing.h"

namespace canopy {
namespace {

using canopy::testing::BatchConfig;
using canopy::testing::Sharing;

constexpr double kTolerance = 2e-5;  // f32 kernel vs f64 reference, |values| <= 1

struct Split {
  int32_t max_kv_blocks;  // 0 = no split
  int32_t max_q;          // 0 = no limit
};

void expect_matches_reference(const canopy::testing::PlanOutput& got, const canopy::testing::Reference& ref,
                              const std::string& what) {
  double max_out = 0.0, max_lse = 0.0;
  for (size_t i = 0; i < ref.out.size(); ++i) max_out = std::max(max_out, std::abs(got.out[i] - ref.out[i]));
  for (size_t i = 0; i < ref.lse.size(); ++i) max_lse = std::max(max_lse, std::abs(got.lse[i] - ref.lse[i]));
  EXPECT_LT(max_out, kTolerance) << what << "\nplan: " << got.plan.summary();
  EXPECT_LT(max_lse, kTolerance) << what << "\nplan: " << got.plan.summary();
}

// Structural checks every plan must pass.
void expect_well_formed(const AttentionPlan& plan, const std::vector<PlannerSequence>& seqs, int32_t block_size) {
  int64_t prev_key = INT64_MAX;
  int32_t slots = 0;
  for (const AttentionItem& it : plan.items) {
    const int64_t key = static_cast<int64_t>(it.kv_len) * it.q_count;
    EXPECT_LE(key, prev_key) << "items must be sorted longest first";
    prev_key = key;
    EXPECT_EQ(it.kv_pos0 % block_size, 0) << "segments start at a block boundary";
    EXPECT_GT(it.kv_len, 0);
    EXPECT_GT(it.q_count, 0);
    EXPECT_EQ(it.out_begin, slots);
    slots += it.q_count;
    EXPECT_GE(it.node, 0);
    EXPECT_LT(it.node, plan.num_nodes);
    // causal = 1 iff some key comes after some query of the item.
    int32_t min_pos = INT32_MAX;
    for (int32_t j = 0; j < it.q_count; ++j)
      min_pos = std::min(min_pos, plan.q_positions[static_cast<size_t>(plan.q_tokens[static_cast<size_t>(it.q_begin + j)])]);
    EXPECT_EQ(it.causal, it.kv_pos0 + it.kv_len - 1 > min_pos ? 1 : 0);
  }
  EXPECT_EQ(plan.num_slots, slots);
  EXPECT_EQ(plan.merge_offsets.back(), slots);
  std::vector<int> seen(static_cast<size_t>(slots), 0);
  for (int32_t s : plan.merge_slots) ++seen[static_cast<size_t>(s)];
  for (int c : seen) EXPECT_EQ(c, 1) << "every partial slot is merged exactly once";
  for (const auto& s : seqs)
    for (int32_t j = 0; j < s.q_count; ++j) {
      const size_t t = static_cast<size_t>(s.q_begin + j);
      EXPECT_EQ(plan.q_positions[t], s.kv_len - s.q_count + j);
      EXPECT_GT(plan.merge_offsets[t + 1], plan.merge_offsets[t]) << "every token attends to something";
    }
}

TEST(PlannerIdentities, DecomposedEqualsFlatAttention) {
  const uint64_t seed = canopy::testing::test_seed();
  std::mt19937_64 rng(seed);
  int checked = 0, crossing = 0, causal_shared = 0, empty_rows = 0;
  for (int bs : {1, 16, 32}) {
    for (int hkv : {8, 2, 1}) {  // GQA groups 1, 4, 8
      for (Split split : {Split{0, 0}, Split{2, 3}, Split{1, 1}}) {
        for (int trial = 0; trial < 3; ++trial) {
          BatchConfig cfg;
          cfg.block_size = bs;
          cfg.shape = AttentionShape{8, hkv, 16, 0.25f};
          cfg.max_node_len = bs == 1 ? 12 : 2 * bs + 7;
          const auto forest = canopy::testing::random_forest(rng, cfg);
          const auto batch = canopy::testing::layout_batch(forest, cfg, Sharing::Deep, rng(), rng());
          const auto ref = canopy::testing::reference_attention(forest, cfg, batch);
          // These tables share whole prefixes, as the KV cache manager's do, so trusting them
          // (no memcmp) must give the same plan.
          const bool verify = trial != 1;
          const auto got = canopy::testing::run_plan(cfg, batch, split.max_kv_blocks * bs, split.max_q, verify);
          expect_matches_reference(got, ref,
                                   fmt::format("seed {} bs {} Hkv {} split ({}, {}) trial {}", seed, bs, hkv,
                                               split.max_kv_blocks, split.max_q, trial));
          expect_well_formed(got.plan, batch.seqs, bs);
          ++checked;
          // Count what the batches exercised, so that the test cannot silently go easy.
          for (size_t s = 0; s < batch.seqs.size(); ++s) {
            const auto& ps = batch.seqs[s];
            const int first_q = ps.kv_len - ps.q_count;
            const auto& path = forest.paths[s];
            if (path.size() > 1 && first_q < forest.nodes[static_cast<size_t>(path.back())].start) ++crossing;
          }
          for (const auto& it : got.plan.items) {
            for (int32_t j = 0; j < it.q_count; ++j)  // rows that see no key of their item: LSE = -inf parts
              empty_rows += got.plan.q_positions[static_cast<size_t>(got.plan.q_tokens[static_cast<size_t>(it.q_begin + j)])] < it.kv_pos0;
            int32_t readers = 0;
            for (const auto& other : got.plan.items)
              if (other.node == it.node && other.kv_pos0 == it.kv_pos0) readers += other.q_count;
            if (it.causal && readers > 1) ++causal_shared;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 81);
  EXPECT_GT(crossing, 10) << "prefill chunks should cross node boundaries";
  EXPECT_GT(causal_shared, 10) << "some shared nodes should need the causal mask";
  EXPECT_GT(empty_rows, 10) << "some rows should see no key of an item (LSE = -inf parts)";
}

TEST(PlannerIdentities, MultiLevelEqualsTwoLevelEqualsNoSharing) {
  const uint64_t seed = canopy::testing::test_seed();
  std::mt19937_64 rng(seed + 1);
  int deeper = 0;
  for (int bs : {1, 16, 32}) {
    for (int hkv : {8, 2, 1}) {
      for (int trial = 0; trial < 3; ++trial) {
        BatchConfig cfg;
        cfg.block_size = bs;
        cfg.shape = AttentionShape{8, hkv, 16, 0.25f};
        cfg.max_node_len = bs == 1 ? 12 : 2 * bs + 7;
        cfg.max_depth = 4;
        cfg.prefill_probability = 0.2;
        const auto forest = canopy::testing::random_forest(rng, cfg);
        const uint64_t layout_seed = rng(), query_seed = rng();
        const auto deep = canopy::testing::layout_batch(forest, cfg, Sharing::Deep, layout_seed, query_seed);
        const auto two = canopy::testing::layout_batch(forest, cfg, Sharing::TwoLevel, layout_seed, query_seed);
        const auto none = canopy::testing::layout_batch(forest, cfg, Sharing::None, layout_seed, query_seed);
        ASSERT_EQ(deep.q, two.q);
        const int32_t max_kv = trial == 2 ? bs : 0;
        const auto a = canopy::testing::run_plan(cfg, deep, max_kv, 0);
        const auto b = canopy::testing::run_plan(cfg, two, max_kv, 0);
        const auto c = canopy::testing::run_plan(cfg, none, max_kv, 0);
        const std::string what = fmt::format("seed {} bs {} Hkv {} trial {}", seed, bs, hkv, trial);
        for (size_t i = 0; i < a.out.size(); ++i) {
          ASSERT_NEAR(a.out[i], b.out[i], 1e-5) << what;
          ASSERT_NEAR(a.out[i], c.out[i], 1e-5) << what;
        }
        for (size_t i = 0; i < a.lse.size(); ++i) {
          ASSERT_NEAR(a.lse[i], b.lse[i], 1e-5) << what;
          ASSERT_NEAR(a.lse[i], c.lse[i], 1e-5) << what;
        }
        // Sharing reads less: deep <= two-level <= none == the sum of the sequences' lengths.
        EXPECT_LE(a.plan.kv_tokens_read(), b.plan.kv_tokens_read()) << what;
        EXPECT_LE(b.plan.kv_tokens_read(), c.plan.kv_tokens_read()) << what;
        int64_t total = 0;
        for (const auto& s : none.seqs) total += s.kv_len;
        EXPECT_EQ(c.plan.kv_tokens_read(), total) << what;
        EXPECT_EQ(c.plan.num_nodes, static_cast<int32_t>(none.seqs.size())) << what;
        if (a.plan.kv_tokens_read() < b.plan.kv_tokens_read()) ++deeper;
        expect_well_formed(a.plan, deep.seqs, bs);
        expect_well_formed(b.plan, two.seqs, bs);
        expect_well_formed(c.plan, none.seqs, bs);
      }
    }
  }
  EXPECT_GT(deeper, 5) << "multi-level sharing should read less than two-level sharing on some batches";
}

// Without query tiles, a plan reads every distinct block of the step exactly once.
TEST(PlannerIdentities, EveryDistinctBlockIsReadOnce) {
  std::mt19937_64 rng(canopy::testing::test_seed() + 2);
  for (int bs : {1, 16, 32}) {
    for (int trial = 0; trial < 6; ++trial) {
      BatchConfig cfg;
      cfg.block_size = bs;
      cfg.max_node_len = bs == 1 ? 12 : 2 * bs + 7;
      const auto forest = canopy::testing::random_forest(rng, cfg);
      const auto batch = canopy::testing::layout_batch(forest, cfg, Sharing::Deep, rng(), rng());
      for (int32_t max_kv : {0, bs, 3 * bs}) {
        AttentionPlan plan;
        Planner planner({bs, batch.layout.num_blocks, max_kv, 0});
        planner.build(batch.seqs, batch.num_tokens, plan);
        std::multiset<int32_t> read;
        for (const auto& it : plan.items)
          for (int32_t i = 0; i < (it.kv_len + bs - 1) / bs; ++i)
            read.insert(plan.kv_pages[static_cast<size_t>(it.kv_page_begin + i)]);
        std::set<int32_t> used;
        for (const auto& s : batch.seqs)
          for (int32_t i = 0; i < (s.kv_len + bs - 1) / bs; ++i) used.insert(s.block_table[static_cast<size_t>(i)]);
        EXPECT_EQ(read.size(), used.size()) << "bs " << bs << " trial " << trial << " max_kv " << max_kv;
        EXPECT_EQ(std::set<int32_t>(read.begin(), read.end()), used);
        if (max_kv > 0) {
          for (const auto& it : plan.items) EXPECT_LE(it.kv_len, max_kv);
        }
      }
    }
  }
}

}  // namespace
}  // namespace canopy
