// The decomposition identity on the CPU kernels: attention split over blocks and merged with the
// log-sum-exp rule equals flat attention over the concatenated keys (lse.h, plan.h).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attention/cpu_attention.h"
#include "attention/lse.h"
#include "testing/testing.h"

namespace canopy {
namespace {

// One sequence of n tokens in consecutive blocks; queries: its last `nq` tokens (causal).
TEST(CpuAttention, SplitAndMergeEqualsFlat) {
  std::mt19937_64 rng(canopy::testing::test_seed());
  const AttentionShape shape{8, 2, 16, 0.25f};
  KvLayout layout{8, 4, shape.num_kv_heads, shape.head_dim};
  const int n = 23, nq = 3;
  auto k = canopy::testing::random_floats(rng, layout.layer_elems());
  auto v = canopy::testing::random_floats(rng, layout.layer_elems());
  auto q = canopy::testing::random_floats(rng, static_cast<size_t>(nq) * shape.num_q_heads * shape.head_dim);

  AttentionPlan plan;
  plan.num_tokens = nq;
  for (int t = 0; t < nq; ++t) plan.q_positions.push_back(n - nq + t);
  plan.kv_pages = {5, 1, 7, 0, 3, 2};  // 6 blocks of 4 hold 23 tokens
  // Two items: blocks 0-2 (12 tokens, all before the queries) and blocks 3-5 (11 tokens, causal).
  for (int t = 0; t < nq; ++t) plan.q_tokens.push_back(t);
  plan.items.push_back({0, 12, 0, 0, nq, 0, 0, 0});
  plan.items.push_back({3, 11, 12, 0, nq, nq, 1, 1});
  plan.num_slots = 2 * nq;
  plan.merge_offsets = {0, 2, 4, 6};
  plan.merge_slots = {0, 3, 1, 4, 2, 5};

  AttentionPartials partials;
  std::vector<float> out(q.size()), lse(static_cast<size_t>(nq) * shape.num_q_heads);
  run_attention_plan_cpu(plan, shape, layout, q.data(), k.data(), v.data(), partials, out.data(), lse.data());

  for (int t = 0; t < nq; ++t) {
    const int visible = n - nq + t + 1;
    for (int h = 0; h < shape.num_q_heads; ++h) {
      std::vector<float> keys, values;
      for (int i = 0; i < visible; ++i) {
        const int32_t block = plan.kv_pages[static_cast<size_t>(i / layout.block_size)];
        const float* kp = k.data() + layout.offset(block, h / shape.group(), i % layout.block_size);
        const float* vp = v.data() + layout.offset(block, h / shape.group(), i % layout.block_size);
        keys.insert(keys.end(), kp, kp + shape.head_dim);
        values.insert(values.end(), vp, vp + shape.head_dim);
      }
      std::vector<double> ref(static_cast<size_t>(shape.head_dim));
      const float* qv = q.data() + (static_cast<size_t>(t) * shape.num_q_heads + h) * shape.head_dim;
      const double ref_lse = flat_attention_reference(qv, keys.data(), values.data(), visible,
                                                      shape.head_dim, shape.scale, ref.data());
      for (int d = 0; d < shape.head_dim; ++d)
        EXPECT_NEAR(out[(static_cast<size_t>(t) * shape.num_q_heads + h) * shape.head_dim + d], ref[d], 1e-5);
      EXPECT_NEAR(lse[static_cast<size_t>(t) * shape.num_q_heads + h], ref_lse, 1e-5);
    }
  }
}

// A causal item whose keys all come after a query is an empty part for that query: LSE = -inf and
// O = 0, and merging it changes nothing (lse.h). Rows of the same item that do see keys are exact.
TEST(CpuAttention, FullyMaskedRowsAreEmptyParts) {
  std::mt19937_64 rng(canopy::testing::test_seed());
  const AttentionShape shape{4, 1, 8, 0.3f};
  KvLayout layout{4, 2, shape.num_kv_heads, shape.head_dim};
  auto k = canopy::testing::random_floats(rng, layout.layer_elems());
  auto v = canopy::testing::random_floats(rng, layout.layer_elems());
  auto q = canopy::testing::random_floats(rng, 2 * static_cast<size_t>(shape.num_q_heads * shape.head_dim));

  AttentionPlan plan;
  plan.num_tokens = 2;
  plan.q_positions = {1, 4};  // token 0 precedes every key of the item below, token 1 sees two
  plan.kv_pages = {2, 3, 0};
  plan.q_tokens = {0, 1, 1};
  // Item 0: keys at positions 2..4 (blocks 3, 0), causal, both tokens. Item 1: keys 0..1, token 1.
  plan.items.push_back({1, 3, 2, 0, 2, 0, 1, 0});
  plan.items.push_back({0, 2, 0, 2, 1, 2, 0, 1});
  plan.num_slots = 3;
  plan.merge_offsets = {0, 1, 3};
  plan.merge_slots = {0, 1, 2};

  AttentionPartials partials;
  std::vector<float> out(q.size()), lse(static_cast<size_t>(2 * shape.num_q_heads));
  run_attention_plan_cpu(plan, shape, layout, q.data(), k.data(), v.data(), partials, out.data(), lse.data());
  for (int h = 0; h < shape.num_q_heads; ++h) {
    EXPECT_EQ(partials.lse[static_cast<size_t>(h)], kNegInf);
    EXPECT_EQ(lse[static_cast<size_t>(h)], kNegInf) << "token 0 has no key at all: merged LSE stays -inf";
    for (int d = 0; d < shape.head_dim; ++d) {
      EXPECT_EQ(out[static_cast<size_t>(h * shape.head_dim + d)], 0.0f);
      EXPECT_FALSE(std::isnan(out[static_cast<size_t>(h * shape.head_dim + d)]));
    }
    // Token 1 (position 4) sees positions 0, 1 (block 2), 2, 3 (block 3) and 4 (block 0's first slot).
    std::vector<float> keys, values;
    for (auto [block, slot] : {std::pair{2, 0}, {2, 1}, {3, 0}, {3, 1}, {0, 0}}) {
      const size_t off = layout.offset(block, 0, slot);
      keys.insert(keys.end(), k.begin() + static_cast<ptrdiff_t>(off), k.begin() + static_cast<ptrdiff_t>(off) + shape.head_dim);
      values.insert(values.end(), v.begin() + static_cast<ptrdiff_t>(off), v.begin() + static_cast<ptrdiff_t>(off) + shape.head_dim);
    }
    std::vector<double> ref(static_cast<size_t>(shape.head_dim));
    const size_t row = static_cast<size_t>(shape.num_q_heads + h);
    const double ref_lse = flat_attention_reference(q.data() + row * shape.head_dim, keys.data(), values.data(), 5,
                                                    shape.head_dim, shape.scale, ref.data());
    for (int d = 0; d < shape.head_dim; ++d) EXPECT_NEAR(out[row * shape.head_dim + d], ref[static_cast<size_t>(d)], 1e-5);
    EXPECT_NEAR(lse[row], ref_lse, 1e-5);
  }
}

TEST(CpuAttention, MergeWithEmptyPartIsTheOtherPart) {
  float o[3] = {0, 0, 0};
  float lse = kNegInf;
  const float b[3] = {1, 2, 3};
  lse_merge_into(o, lse, b, kNegInf, 3);  // both empty: stays empty, no NaN
  EXPECT_EQ(lse, kNegInf);
  EXPECT_EQ(o[0], 0.0f);
  lse_merge_into(o, lse, b, 1.5f, 3);
  EXPECT_EQ(lse, 1.5f);
  EXPECT_EQ(o[2], 3.0f);
  lse_merge_into(o, lse, b, kNegInf, 3);
  EXPECT_EQ(lse, 1.5f);
  EXPECT_EQ(o[1], 2.0f);
}

}  // namespace
}  // namespace canopy
