// The default kernel choice per step (forest_policy.h): host-only, pinned on the benchmark's shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "backend/cuda/forest_attention_runner.h"
#include "backend/cuda/forest_policy.h"

namespace canopy::cuda {
namespace {

// One shared item (B queries over P keys), then B leaves of U keys each (one query each).
AttentionPlan two_level(int B, int P, int U) {
  AttentionPlan plan;
  AttentionItem shared;
  shared.q_count = B;
  shared.kv_len = P;
  plan.items.push_back(shared);
  for (int s = 0; s < B; ++s) {
    AttentionItem leaf;
    leaf.q_count = 1;
    leaf.kv_len = U;
    plan.items.push_back(leaf);
  }
  return plan;
}

const AttentionShape kGqa{32, 8, 128, 0.088f};
const AttentionShape kMha{40, 40, 128, 0.088f};

TEST(ForestPolicy, BalanceCountsWideFlopsAndLeafBytes) {
  const ForestStepBalance b = forest_step_balance(two_level(1024, 4096, 128), kGqa);
  EXPECT_DOUBLE_EQ(b.wide_flops, 4.0 * 1024 * 32 * 4096 * 128);
  EXPECT_DOUBLE_EQ(b.leaf_bytes, 1024.0 * 128 * 8 * 128 * 4);
  EXPECT_NEAR(b.balance, (b.wide_flops / 790e12) / (b.leaf_bytes / 3.0e12), 1e-12);
  // A query token of a GQA group of 4 is 4 rows: 4 tokens (16 rows) still make a narrow item.
  const ForestStepBalance narrow = forest_step_balance(two_level(4, 4096, 128), kGqa);
  EXPECT_EQ(narrow.wide_flops, 0.0);
}

TEST(ForestPolicy, ChoosesTheKernelMeasuredFastest) {
  // 1 for v1, else the wgmma version; the grid's measurements in the comments (H100, 2026-11-26).
  const auto choice = [](const AttentionPlan& plan, const AttentionShape& shape) {
    const ForestChoice c = choose_forest_kernel(forest_step_balance(plan, shape), true);
    return c.kernel == ForestKernel::kMmaSync ? 1 : c.wgmma_version;
  };
  EXPECT_EQ(choice(two_level(256, 1024, 128), kGqa), 3);    // v3u 0.096 ms, v2u 0.096, v1u 0.111
  EXPECT_EQ(choice(two_level(2048, 4096, 128), kGqa), 3);   // v3u 0.741, v1u 0.813, v2u 0.872
  EXPECT_EQ(choice(two_level(1024, 16384, 128), kGqa), 3);  // v3u 1.003, v2u 1.219, v1u 1.306
  EXPECT_EQ(choice(two_level(1024, 4096, 128), kMha), 3);   // v3u 1.058, v2u 1.067, v1u 1.182
  // Nearly plain decode (balance < 0.05) under 1.5 GB: v1.
  EXPECT_NEAR(forest_step_balance(two_level(256, 1024, 128), kMha).balance, 0.03, 0.005);
  EXPECT_EQ(choice(two_level(256, 1024, 128), kMha), 1);    // v1u 0.266, v3u 0.285
  AttentionPlan decode;
  for (int s = 0; s < 64; ++s) decode.items.push_back(AttentionItem{0, 300, 0, s, 1, s, 1, s});
  EXPECT_EQ(forest_step_balance(decode, kGqa).balance, 0.0);
  EXPECT_EQ(choice(decode, kGqa), 1);  // 8B decode: 19 us vs 38 us per layer
  AttentionPlan long_decode;
  for (int s = 0; s < 1024; ++s) long_decode.items.push_back(AttentionItem{0, 8192, 0, s, 1, s, 1, s});
  EXPECT_GT(forest_step_balance(long_decode, kGqa).leaf_bytes, kV1PlainDecodeBytes);
  EXPECT_EQ(choice(long_decode, kGqa), 3);
  // Prefill alone (no leaf).
  AttentionPlan prefill;
  prefill.items.push_back(AttentionItem{0, 512, 0, 0, 512, 0, 1, 0});
  EXPECT_TRUE(std::isinf(forest_step_balance(prefill, kGqa).balance));
  EXPECT_EQ(choice(prefill, kGqa), 3);
}

TEST(ForestPolicy, V1WithoutTheWgmmaKernelAndAlwaysUnfused) {
  for (const AttentionPlan& plan : {two_level(256, 1024, 128), two_level(1024, 4096, 128)}) {
    const ForestChoice without = choose_forest_kernel(forest_step_balance(plan, kGqa), false);
    EXPECT_EQ(without.kernel, ForestKernel::kMmaSync);
    EXPECT_EQ(without.mode, kernels::ForestOutputMode::kPartials);
    EXPECT_EQ(choose_forest_kernel(forest_step_balance(plan, kGqa), true).mode, kernels::ForestOutputMode::kPartials);
  }
}


// The tensor-CTA model rate: v3 400 and v2 270 TFLOP/s by default, CANOPY_FOREST_WGMMA_TFLOPS
// overrides it (calibration on another GPU) and is validated.
TEST(ForestPolicy, TensorRateDefaultsAndValidatedOverride) {
  ForestLaunchOptions o;
  o.num_sms = 132;
  unsetenv("CANOPY_FOREST_WGMMA_TFLOPS");
  set_wgmma_version(o, 3);
  EXPECT_DOUBLE_EQ(o.wgmma_sm_flops_per_ns, 400e12 / 132 / 1e9);
  set_wgmma_version(o, 2);
  EXPECT_DOUBLE_EQ(o.wgmma_sm_flops_per_ns, 270e12 / 132 / 1e9);
  setenv("CANOPY_FOREST_WGMMA_TFLOPS", "600", 1);
  set_wgmma_version(o, 3);
  EXPECT_DOUBLE_EQ(o.wgmma_sm_flops_per_ns, 600e12 / 132 / 1e9);
  for (const char* bad : {"", "fast", "600x", "0", "1e9"}) {
    setenv("CANOPY_FOREST_WGMMA_TFLOPS", bad, 1);
    EXPECT_ANY_THROW(set_wgmma_version(o, 3)) << "'" << bad << "'";
  }
  unsetenv("CANOPY_FOREST_WGMMA_TFLOPS");
}

}  // namespace
}  // namespace canopy::cuda
