// The forest attention kernels' own source, run on the host SIMT emulator (kernel_emulator.h, emulated_forest_kernel.h), against the
// same references as on the GPU. These run everywhere the CUDA backend builds (no device
// needed): they check the kernels' indexing, fragment layouts, masks, pipeline waits and merge
// protocol before any GPU time is spent. Small shapes: the emulator is slow.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "attention_check.h"
#include "core/dtype.h"
#include "forest_workload.h"
#include "testing/testing.h"

namespace canopy::testing {
namespace {

using kernels::ForestOutputMode;

AttentionShape make_shape(int hq, int hkv, int d) { return {hq, hkv, d, 1.0f / std::sqrt(static_cast<float>(d))}; }

AttentionCase decode_case(const std::string& label, const Forest& forest, const AttentionShape& shape, int bs,
                          std::mt19937_64& rng) {
  ForestDecode fd = build_forest_decode(forest, bs, shape.num_kv_heads, shape.head_dim, rng());
  AttentionCase c{label, fd.plan, shape, fd.layout, {}, {}, {}};
  fill_random(c, rng);
  return c;
}

void check_both_modes(const AttentionCase& c, const cuda::ForestLaunchOptions& options = {}) {
  const Reference ref = compute_reference(c);
  for (auto mode : {ForestOutputMode::kFusedMerge, ForestOutputMode::kPartials})
    check_result(c, ref, mode, run_plan_emulated(c.plan, c.shape, c.layout, c.q, c.k, c.v, mode, options), "emulated");
}

TEST(ForestAttentionEmulated, DecodeWideAndNarrowUnits) {
  std::mt19937_64 rng(test_seed() + 101);
  // 5 sequences x group 8 = 40 rows: a wide prefix unit (2 tiles of keys), narrow leaves.
  const Forest forest = two_level_forest(70, {1, 17, 40, 64, 65});
  check_both_modes(decode_case("emu decode D128 g8 bs16", forest, make_shape(16, 2, 128), 16, rng));
  check_both_modes(decode_case("emu decode D64 g4 bs7", forest, make_shape(8, 2, 64), 7, rng));
}

TEST(ForestAttentionEmulated, NarrowUnitsWithSeveralTokens) {
  std::mt19937_64 rng(test_seed() + 102);
  // Group 1: documents with 6 questions are narrow units of 6 rows; the root is wide.
  const Forest forest = three_level_forest(33, 3, 20, 6, 9);
  check_both_modes(decode_case("emu tree D64 g1 bs16", forest, make_shape(2, 2, 64), 16, rng));
}

TEST(ForestAttentionEmulated, CausalPrefillAndSplits) {
  std::mt19937_64 rng(test_seed() + 103);
  // One sequence, prefill of its first 150 tokens (causal), cut into 64-key pieces.
  AttentionCase c;
  c.label = "emu prefill D64 g2 split";
  c.shape = make_shape(4, 2, 64);
  AttentionPlan& p = c.plan;
  p.num_tokens = 150;
  for (int32_t t = 0; t < 150; ++t) {
    p.q_tokens.push_back(t);
    p.q_positions.push_back(t);
  }
  for (int32_t b = 0; b < 10; ++b) p.kv_pages.push_back(9 - b);
  p.items.push_back({0, 150, 0, 0, 150, 0, 1, 0});
  p.num_slots = 150;
  for (int32_t t = 0; t <= 150; ++t) p.merge_offsets.push_back(t);
  for (int32_t t = 0; t < 150; ++t) p.merge_slots.push_back(t);
  c.layout = KvLayout{10, 16, 2, 64};
  fill_random(c, rng);
  cuda::ForestLaunchOptions split;
  split.min_split_keys = 64;
  split.num_sms = 1000;
  const Reference ref = compute_reference(c);
  check_result(c, ref, ForestOutputMode::kFusedMerge, run_plan_emulated(c.plan, c.shape, c.layout, c.q, c.k, c.v, ForestOutputMode::kFusedMerge, split), "emulated");
  check_result(c, ref, ForestOutputMode::kFusedMerge, run_plan_emulated(c.plan, c.shape, c.layout, c.q, c.k, c.v, ForestOutputMode::kFusedMerge, {}), "emulated");
}

TEST(ForestAttentionEmulated, EmptyPartsAndRepeatedLaunches) {
  std::mt19937_64 rng(test_seed() + 104);
  AttentionCase c = decode_case("emu empty parts", two_level_forest(0, {5, 1, 30}), make_shape(4, 2, 128), 16, rng);
  const Reference ref = compute_reference(c);
  const GpuAttentionResult r = run_plan_emulated(c.plan, c.shape, c.layout, c.q, c.k, c.v, ForestOutputMode::kFusedMerge, {}, 3, 3);
  check_result(c, ref, ForestOutputMode::kFusedMerge, r, "emulated x3");
}

TEST(ForestAttentionEmulated, NarrowCausalChunksAndLongLeaves) {
  std::mt19937_64 rng(test_seed() + 105);
  // Two sequences with their own 300 keys; chunks of 3 queries each (3 x group 4 = 12 rows: narrow
  // causal units); and a 700-key leaf (44 tiles through the 3-stage ring), block size 1.
  AttentionCase c;
  c.label = "emu narrow causal D128 g4";
  c.shape = make_shape(8, 2, 128);
  AttentionPlan& p = c.plan;
  p.num_tokens = 6;
  for (int32_t t = 0; t < 6; ++t) {
    p.q_tokens.push_back(t);
    p.q_positions.push_back(297 + t % 3);
  }
  for (int32_t b = 0; b < 38; ++b) p.kv_pages.push_back(37 - b);
  p.items.push_back({0, 300, 0, 0, 3, 0, 1, 0});
  p.items.push_back({19, 300, 0, 3, 3, 3, 1, 1});
  p.num_slots = 6;
  for (int32_t t = 0; t <= 6; ++t) p.merge_offsets.push_back(t);
  for (int32_t t = 0; t < 6; ++t) p.merge_slots.push_back(t);
  c.layout = KvLayout{38, 16, 2, 128};
  fill_random(c, rng);
  check_both_modes(c);
  check_both_modes(decode_case("emu long leaf D64 bs1", two_level_forest(0, {700, 33}), make_shape(8, 2, 64), 1, rng));
}

TEST(ForestAttentionEmulated, RandomSmallForests) {
  std::mt19937_64 rng(test_seed() + 106);
  struct Heads { int hq, hkv; };
  const Heads heads[] = {{4, 4}, {8, 2}, {10, 2}, {16, 2}, {32, 1}};
  const int block_sizes[] = {1, 5, 16, 32, 48};
  for (int trial = 0; trial < 10; ++trial) {
    const int d = (rng() & 1) ? 128 : 64;
    const Heads h = heads[rng() % 5];
    const int bs = block_sizes[rng() % 5];
    std::vector<int32_t> unique;
    for (int i = 0; i < 1 + static_cast<int>(rng() % 9); ++i) unique.push_back(1 + static_cast<int32_t>(rng() % 90));
    const Forest f = two_level_forest(static_cast<int32_t>(rng() % 200), unique);
    const std::string label = "emu random " + std::to_string(trial) + " D" + std::to_string(d) + " Hq" +
                              std::to_string(h.hq) + "/" + std::to_string(h.hkv) + " bs" + std::to_string(bs);
    const AttentionCase c = decode_case(label, f, make_shape(h.hq, h.hkv, d), bs, rng);
    const Reference ref = compute_reference(c);
    const auto mode = (trial & 1) ? ForestOutputMode::kPartials : ForestOutputMode::kFusedMerge;
    check_result(c, ref, mode, run_plan_emulated(c.plan, c.shape, c.layout, c.q, c.k, c.v, mode, {}, 1 + static_cast<int>(rng() % 4)), "emulated");
  }
}

}  // namespace
}  // namespace canopy::testing
