// The planner on hand-made batches: decode under a shared prefix, query tiles, a prefill chunk
// that crosses into a shared node, tables that share blocks out of order, reuse across steps, and
// clear errors for malformed batches.
#include <gtest/gtest.h>

#include <random>

#include "attention/cpu_attention.h"
#include "attention/planner.h"
#include "core/error.h"
#include "kv/kv_cache_manager.h"
#include "testing/testing.h"

namespace canopy {
namespace {

// A step over explicit block tables with random KV, checked against flat attention that gathers
// each query's keys straight from its block table.
struct TableBatch {
  AttentionShape shape{4, 2, 8, 0.35f};
  KvLayout layout;
  std::vector<float> k, v, q;
  std::vector<std::vector<int32_t>> tables;
  std::vector<PlannerSequence> seqs;
  int32_t num_tokens = 0;

  TableBatch(int32_t num_blocks, int32_t block_size, uint64_t seed) {
    std::mt19937_64 rng(seed);
    layout = KvLayout{num_blocks, block_size, shape.num_kv_heads, shape.head_dim};
    k = canopy::testing::random_floats(rng, layout.layer_elems());
    v = canopy::testing::random_floats(rng, layout.layer_elems());
    q = canopy::testing::random_floats(rng, 4096);
  }
  void add(std::vector<int32_t> table, int32_t kv_len, int32_t q_count) {
    tables.push_back(std::move(table));
    seqs.push_back({{}, kv_len, num_tokens, q_count});
    num_tokens += q_count;
    for (size_t i = 0; i < seqs.size(); ++i) seqs[i].block_table = tables[i];
  }
  AttentionPlan plan(int32_t max_kv = 0, int32_t max_q = 0) const {
    AttentionPlan p;
    Planner planner({layout.block_size, layout.num_blocks, max_kv, max_q});
    planner.build(seqs, num_tokens, p);
    return p;
  }
  void expect_exact(const AttentionPlan& plan) const {
    const int Hq = shape.num_q_heads, D = shape.head_dim, bs = layout.block_size;
    AttentionPartials partials;
    std::vector<float> out(static_cast<size_t>(num_tokens * Hq * D)), lse(static_cast<size_t>(num_tokens * Hq));
    run_attention_plan_cpu(plan, shape, layout, q.data(), k.data(), v.data(), partials, out.data(), lse.data());
    for (const auto& s : seqs) {
      for (int32_t j = 0; j < s.q_count; ++j) {
        const int32_t t = s.q_begin + j, qpos = s.kv_len - s.q_count + j;
        for (int h = 0; h < Hq; ++h) {
          std::vector<float> keys, values;
          for (int32_t p = 0; p <= qpos; ++p) {
            const size_t off = layout.offset(s.block_table[static_cast<size_t>(p / bs)], h / shape.group(), p % bs);
            keys.insert(keys.end(), k.begin() + static_cast<ptrdiff_t>(off), k.begin() + static_cast<ptrdiff_t>(off) + D);
            values.insert(values.end(), v.begin() + static_cast<ptrdiff_t>(off), v.begin() + static_cast<ptrdiff_t>(off) + D);
          }
          std::vector<double> ref(static_cast<size_t>(D));
          const size_t row = static_cast<size_t>(t * Hq + h);
          const double ref_lse = flat_attention_reference(q.data() + row * static_cast<size_t>(D), keys.data(),
                                                          values.data(), qpos + 1, D, shape.scale, ref.data());
          for (int d = 0; d < D; ++d) EXPECT_NEAR(out[row * static_cast<size_t>(D) + static_cast<size_t>(d)], ref[static_cast<size_t>(d)], 2e-5);
          EXPECT_NEAR(lse[row], ref_lse, 2e-5);
        }
      }
    }
  }
};

TEST(Planner, DecodeUnderASharedPrefixReadsThePrefixOnce) {
  // n samples of one prompt, as the engine makes them: prefill, fork, then one decode step.
  const int32_t bs = 16, P = 37, B = 6;
  KvCacheManager kv({64, bs, true});
  std::vector<int32_t> slots;
  std::vector<BlockCopy> copies;
  const SeqId root = kv.create();
  kv.append(root, P, slots, copies);
  std::vector<SeqId> samples{root};
  for (int i = 1; i < B; ++i) samples.push_back(kv.fork(root));
  for (SeqId s : samples) kv.append(s, 1, slots, copies);
  EXPECT_EQ(copies.size(), static_cast<size_t>(B - 1));  // the shared partial block, copied for all but one

  TableBatch batch(64, bs, canopy::testing::test_seed());
  for (SeqId s : samples) batch.add(std::vector<int32_t>(kv.block_table(s).begin(), kv.block_table(s).end()), P + 1, 1);
  const AttentionPlan plan = batch.plan();
  EXPECT_EQ(plan.num_nodes, B + 1);
  ASSERT_EQ(plan.items.size(), static_cast<size_t>(B + 1));
  const AttentionItem& shared = plan.items[0];  // longest first
  EXPECT_EQ(shared.q_count, B);
  EXPECT_EQ(shared.kv_len, 32);
  EXPECT_EQ(shared.kv_pos0, 0);
  EXPECT_EQ(shared.node, 0);
  for (const auto& it : plan.items) EXPECT_EQ(it.causal, 0) << "decode queries come after all their keys";
  for (size_t i = 1; i < plan.items.size(); ++i) {
    EXPECT_EQ(plan.items[i].q_count, 1);
    EXPECT_EQ(plan.items[i].kv_len, P + 1 - 32);
  }
  EXPECT_EQ(plan.kv_tokens_read(), 32 + B * (P + 1 - 32));
  batch.expect_exact(plan);

  // Query tiles split the shared item; split-KV splits it along the keys.
  const AttentionPlan tiled = batch.plan(bs, 4);
  int32_t shared_items = 0;
  for (const auto& it : tiled.items) {
    EXPECT_LE(it.q_count, 4);
    EXPECT_LE(it.kv_len, bs);
    if (it.node == 0) ++shared_items;
  }
  EXPECT_EQ(shared_items, 2 * 2);  // 2 query tiles x 2 KV chunks
  batch.expect_exact(tiled);
  for (SeqId s : samples) kv.free(s);
}

TEST(Planner, PrefillChunkCrossingIntoASharedNodeIsCausalThere) {
  // Two requests with the same 20-token system prompt arrive together: R prefills everything,
  // S (forked from R after the system prompt) prefills only its own 9 tokens, in the same step.
  const int32_t bs = 4;
  TableBatch batch(32, bs, canopy::testing::test_seed() + 1);
  batch.add({0, 1, 2, 3, 4, 5, 6}, 27, 27);  // R: 5 system blocks + 7 own tokens
  batch.add({0, 1, 2, 3, 4, 9, 10, 11}, 29, 9);  // S: same 5 blocks + 9 own tokens
  const AttentionPlan plan = batch.plan();
  EXPECT_EQ(plan.num_nodes, 3);
  bool found = false;
  for (const auto& it : plan.items) {
    if (it.node != 0) continue;
    found = true;
    EXPECT_EQ(it.kv_len, 20);
    EXPECT_EQ(it.q_count, 27 + 9);
    EXPECT_EQ(it.causal, 1);
  }
  EXPECT_TRUE(found);
  batch.expect_exact(plan);
  batch.expect_exact(batch.plan(2 * bs, 5));
}

TEST(Planner, TablesSharingBlocksOutOfOrderStayExact) {
  // The same block at position 1 but different blocks at position 0: not a shared prefix.
  TableBatch batch(16, 2, canopy::testing::test_seed() + 2);
  batch.add({5, 6, 7}, 6, 1);
  batch.add({8, 6, 3}, 5, 2);
  batch.add({5, 6, 7}, 5, 1);  // a true prefix of the first (shares blocks 5, 6 and 7's first token)
  batch.add({5, 9, 7}, 6, 3);  // meets block 7 at the same position, but after a different block
  const AttentionPlan plan = batch.plan();
  // Block 7 is read twice: once for the sequences that share the path [5, 6, 7], once for [5, 9, 7].
  int32_t reads_of_7 = 0;
  for (const auto& it : plan.items)
    for (int32_t i = 0; i < (it.kv_len + 1) / 2; ++i) reads_of_7 += plan.kv_pages[static_cast<size_t>(it.kv_page_begin + i)] == 7;
  EXPECT_EQ(reads_of_7, 2);
  batch.expect_exact(plan);
  batch.expect_exact(batch.plan(2, 1));
}

TEST(Planner, EmptyLeavesAndSequencesWithoutQueries) {
  TableBatch batch(16, 4, canopy::testing::test_seed() + 3);
  batch.add({1, 2}, 8, 1);
  batch.add({1, 2}, 8, 1);   // identical path: an empty leaf below the shared node
  batch.add({1, 3}, 6, 0);   // not in this step
  batch.add({1, 4}, 5, 2);
  const AttentionPlan plan = batch.plan();
  EXPECT_EQ(plan.num_nodes, 3);  // [1] shared by all, then [2] (two sequences), then [4]
  batch.expect_exact(plan);
}

TEST(Planner, ReusedPlannerGivesTheSamePlanAsAFreshOne) {
  TableBatch first(64, 4, canopy::testing::test_seed() + 4);
  for (int i = 0; i < 5; ++i) first.add({0, 1, 2, 10 + i}, 14, 1 + i);
  TableBatch second(64, 4, canopy::testing::test_seed() + 5);
  second.add({3, 4}, 7, 7);
  second.add({3, 5, 6}, 12, 1);

  Planner reused({4, 64, 8, 2});
  AttentionPlan plan;
  reused.build(first.seqs, first.num_tokens, plan);
  reused.build(second.seqs, second.num_tokens, plan);
  const AttentionPlan fresh = second.plan(8, 2);
  EXPECT_EQ(plan.num_tokens, fresh.num_tokens);
  EXPECT_EQ(plan.num_nodes, fresh.num_nodes);
  EXPECT_EQ(plan.q_positions, fresh.q_positions);
  EXPECT_EQ(plan.kv_pages, fresh.kv_pages);
  EXPECT_EQ(plan.q_tokens, fresh.q_tokens);
  EXPECT_EQ(plan.num_slots, fresh.num_slots);
  EXPECT_EQ(plan.merge_offsets, fresh.merge_offsets);
  EXPECT_EQ(plan.merge_slots, fresh.merge_slots);
  ASSERT_EQ(plan.items.size(), fresh.items.size());
  for (size_t i = 0; i < plan.items.size(); ++i) {
    EXPECT_EQ(plan.items[i].kv_page_begin, fresh.items[i].kv_page_begin);
    EXPECT_EQ(plan.items[i].kv_len, fresh.items[i].kv_len);
    EXPECT_EQ(plan.items[i].q_begin, fresh.items[i].q_begin);
    EXPECT_EQ(plan.items[i].out_begin, fresh.items[i].out_begin);
    EXPECT_EQ(plan.items[i].causal, fresh.items[i].causal);
  }
  second.expect_exact(plan);
}

TEST(Planner, EmptyStep) {
  Planner planner({16, 8, 0, 0});
  AttentionPlan plan;
  planner.build({}, 0, plan);
  EXPECT_TRUE(plan.items.empty());
  EXPECT_EQ(plan.merge_offsets, std::vector<int32_t>{0});
  EXPECT_EQ(plan.num_slots, 0);
}

TEST(Planner, MalformedBatchesAreClearErrors) {
  auto expect_error = [](std::vector<std::vector<int32_t>> tables, std::vector<PlannerSequence> seqs, int32_t T,
                         const std::string& needle) {
    for (size_t i = 0; i < seqs.size(); ++i) seqs[i].block_table = tables[i];
    Planner planner({4, 16, 0, 0});
    AttentionPlan plan;
    try {
      planner.build(seqs, T, plan);
      ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error({{0, 1}}, {{{}, 8, 0, 1}}, 2, "belongs to no sequence");
  expect_error({{0, 1}, {2}}, {{{}, 8, 0, 2}, {{}, 3, 1, 1}}, 3, "belongs to sequences 0 and 1");
  expect_error({{0}}, {{{}, 8, 0, 1}}, 1, "only 1 blocks");
  expect_error({{0, 99}}, {{{}, 8, 0, 1}}, 1, "block id 99");
  expect_error({{0}}, {{{}, 2, 0, 3}}, 3, "3 queries but 2 KV tokens");
  expect_error({{0}}, {{{}, 2, 1, 1}}, 1, "outside the step's 1 tokens");
  EXPECT_THROW(Planner({16, 8, 24, 0}), Error);  // split not a multiple of the block size
  EXPECT_THROW(Planner({0, 8, 0, 0}), Error);
}

}  // namespace
}  // namespace canopy
