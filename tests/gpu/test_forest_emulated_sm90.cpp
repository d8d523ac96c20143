// The v2 (sm_90a) forest kernel's own source on the host SIMT emulator: wgmma computed from its
// shared-memory descriptors (PTX ISA canonical layouts), mbarrier phases, named barriers, the
// generic->async proxy fence checked. Same references and tolerances as on the GPU. These check
// the kernel's protocols (queues, producer/consumer barriers, leaf ring across leaves, the fused
// merge) before GPU time is spent; the layouts' agreement with the hardware is checked on the GPU
// (test_wgmma_layout.cu).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attention_check.h"
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

// A small persistent grid: 3 CTAs (all resident), the model's split of tensor and leaf CTAs.
cuda::ForestLaunchOptions v2_options(int ctas = 3, int tensor_ctas = -1) {
  cuda::ForestLaunchOptions o;
  o.kernel = cuda::ForestKernel::kWgmma;
  o.num_sms = ctas;
  o.ctas_per_sm = 1;
  o.tensor_ctas = tensor_ctas;
  return o;
}

// Both wide-mode pipelines of the kernel (v2 and v3): same units, queues and expected results.
void check_v2(const AttentionCase& c, const Reference& ref, ForestOutputMode mode, const cuda::ForestLaunchOptions& o,
              int repeats = 1) {
  for (int version : {2, 3}) {
    cuda::ForestLaunchOptions ov = o;
    ov.wgmma_version = version;
    const GpuAttentionResult r =
        run_plan_emulated(c.plan, c.shape, c.layout, c.q, c.k, c.v, mode, ov, ov.num_sms, repeats);
    EXPECT_EQ(r.launch_plan.kernel, cuda::ForestKernel::kWgmma);
    EXPECT_EQ(r.launch_plan.wgmma_version, version);
    check_result(c, ref, mode, r, version == 3 ? "emulated v3" : "emulated v2");
  }
}

void check_both_modes(const AttentionCase& c, const cuda::ForestLaunchOptions& o = v2_options()) {
  const Reference ref = compute_reference(c);
  for (auto mode : {ForestOutputMode::kFusedMerge, ForestOutputMode::kPartials}) check_v2(c, ref, mode, o);
}

TEST(ForestAttentionEmulatedV2, DecodeWideAndNarrowUnits) {
  std::mt19937_64 rng(test_seed() + 201);
  // 5 sequences x group 8 = 40 rows: a wide prefix unit (one consumer warpgroup idle), leaves.
  const Forest forest = two_level_forest(70, {1, 17, 40, 64, 65});
  check_both_modes(decode_case("emu v2 decode D128 g8 bs16", forest, make_shape(16, 2, 128), 16, rng));
  check_both_modes(decode_case("emu v2 decode D64 g4 bs7", forest, make_shape(8, 2, 64), 7, rng));
}

TEST(ForestAttentionEmulatedV2, BothConsumerWarpgroupsAndManyTiles) {
  std::mt19937_64 rng(test_seed() + 202);
  // 20 sequences x group 5 = 100 rows (tokens straddle the two warpgroups' 64-row halves), a
  // 700-key prefix (11 tiles through 4 stages, Q buffers alternating between units).
  const Forest forest = two_level_forest(700, {3, 50, 1, 20, 9, 33, 64, 2, 17, 5, 80, 12, 7, 1, 40, 16, 15, 3, 9, 70});
  check_both_modes(decode_case("emu v2 prefix 700 D128 g5", forest, make_shape(10, 2, 128), 16, rng));
  cuda::ForestLaunchOptions split = v2_options();
  split.min_split_keys = 64;  // pieces of the prefix: several wide units per (head, row tile)
  check_both_modes(decode_case("emu v2 prefix 700 split D64 g5", forest, make_shape(10, 2, 64), 32, rng), split);
}

TEST(ForestAttentionEmulatedV2, TreeAndSeveralTokensPerLeaf) {
  std::mt19937_64 rng(test_seed() + 203);
  // Group 1: documents with 6 questions are narrow units of 6 rows (6 tokens); the root is wide.
  const Forest forest = three_level_forest(33, 3, 20, 6, 9);
  check_both_modes(decode_case("emu v2 tree D64 g1 bs16", forest, make_shape(2, 2, 64), 16, rng));
}

TEST(ForestAttentionEmulatedV2, CausalPrefillWithSplitsAndEmptyUnits) {
  std::mt19937_64 rng(test_seed() + 204);
  // One sequence, prefill of its first 150 tokens (causal), cut into 64-key pieces: query tiles
  // whose pieces lie past their last query are empty units (O = 0, LSE = -inf through the path).
  AttentionCase c;
  c.label = "emu v2 prefill D64 g2 split";
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
  cuda::ForestLaunchOptions split = v2_options();
  split.min_split_keys = 64;
  split.wide_pieces_per_cta = 64;
  const Reference ref = compute_reference(c);
  check_v2(c, ref, ForestOutputMode::kFusedMerge, split);
  check_v2(c, ref, ForestOutputMode::kPartials, split);
  check_v2(c, ref, ForestOutputMode::kFusedMerge, v2_options());
}

TEST(ForestAttentionEmulatedV2, EmptyPartsAndRepeatedLaunches) {
  std::mt19937_64 rng(test_seed() + 205);
  AttentionCase c = decode_case("emu v2 empty parts", two_level_forest(0, {5, 1, 30}), make_shape(4, 2, 128), 16, rng);
  const Reference ref = compute_reference(c);
  // Three launches in a row: the queues and merge counters must come back to zero each time.
  check_v2(c, ref, ForestOutputMode::kFusedMerge, v2_options(), 3);
}

TEST(ForestAttentionEmulatedV2, LeafRingAcrossLeavesAndCausalChunks) {
  std::mt19937_64 rng(test_seed() + 206);
  // Two sequences with their own 300 keys; chunks of 3 queries each (3 x group 4 = 12 rows: narrow
  // causal units). One leaf CTA: its warps stream many leaves each through one ring.
  AttentionCase c;
  c.label = "emu v2 narrow causal D128 g4";
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
  check_both_modes(c, v2_options(1));
  // 40 leaves of 1..40 keys (1-3 tiles) over 2 CTAs x 8 warps: every warp's ring crosses leaves,
  // some of one tile; block size 1 (a lookup per row).
  std::vector<int32_t> leaves;
  for (int i = 0; i < 40; ++i) leaves.push_back(1 + (i * 7) % 40);
  check_both_modes(decode_case("emu v2 many leaves D64 bs1", two_level_forest(0, leaves), make_shape(8, 2, 64), 1, rng),
                   v2_options(2));
}

TEST(ForestAttentionEmulatedV2, TensorCtaSplits) {
  std::mt19937_64 rng(test_seed() + 207);
  const Forest forest = two_level_forest(200, {10, 30, 1, 64, 2, 90, 5, 16});
  const AttentionCase c = decode_case("emu v2 tensor split D128 g4", forest, make_shape(8, 2, 128), 16, rng);
  const Reference ref = compute_reference(c);
  // Every CTA starts on wide units (then helps with leaves); one does.
  check_v2(c, ref, ForestOutputMode::kFusedMerge, v2_options(3, 3));
  check_v2(c, ref, ForestOutputMode::kFusedMerge, v2_options(3, 1));
  // The benchmark's per-CTA timeline: start <= end of the wide units (tensor CTAs only) <= end.
  const GpuAttentionResult r =
      run_plan_emulated(c.plan, c.shape, c.layout, c.q, c.k, c.v, ForestOutputMode::kFusedMerge, v2_options(3, 1), 3);
  ASSERT_EQ(r.timeline.size(), 9u);
  for (int cta = 0; cta < 3; ++cta) {
    const int64_t* t = r.timeline.data() + 3 * cta;
    EXPECT_GT(t[0], 0) << "CTA " << cta;
    if (cta < r.launch_plan.num_tensor_ctas) {
      EXPECT_LE(t[0], t[1]) << "CTA " << cta;
      EXPECT_LE(t[1], t[2]) << "CTA " << cta;
    } else {
      EXPECT_EQ(t[1], 0) << "CTA " << cta;
      EXPECT_LE(t[0], t[2]) << "CTA " << cta;
    }
  }
}

TEST(ForestAttentionEmulatedV2, LeafPrefetchWindows) {
  // v3's leaf prefetch warp: none, one unit ahead of the leaf queue (it waits for the queue most
  // of the time), and a window past the last leaf; the results and the queue state left behind
  // (work_state[3] included) must not depend on it. Many leaves of several blocks each.
  std::mt19937_64 rng(test_seed() + 209);
  std::vector<int32_t> unique;
  for (int i = 0; i < 24; ++i) unique.push_back(1 + static_cast<int32_t>(rng() % 70));
  const AttentionCase c = decode_case("emu v3 leaf prefetch", two_level_forest(90, unique), make_shape(8, 2, 64), 16, rng);
  const Reference ref = compute_reference(c);
  for (int window : {0, 1, 100000}) {
    cuda::ForestLaunchOptions o = v2_options(3);
    o.wgmma_version = 3;
    o.leaf_prefetch_window = window;
    const GpuAttentionResult r =
        run_plan_emulated(c.plan, c.shape, c.layout, c.q, c.k, c.v, ForestOutputMode::kFusedMerge, o, o.num_sms, 2);
    EXPECT_EQ(r.launch_plan.leaf_prefetch_window, window);
    check_result(c, ref, ForestOutputMode::kFusedMerge, r, ("emulated v3, prefetch window " + std::to_string(window)).c_str());
  }
}

TEST(ForestAttentionEmulatedV2, RandomSmallForests) {
  std::mt19937_64 rng(test_seed() + 208);
  struct Heads { int hq, hkv; };
  const Heads heads[] = {{4, 4}, {8, 2}, {10, 2}, {16, 2}, {32, 1}};
  const int block_sizes[] = {1, 5, 16, 32, 48};
  for (int trial = 0; trial < 6; ++trial) {
    const int d = (rng() & 1) ? 128 : 64;
    const Heads h = heads[rng() % 5];
    const int bs = block_sizes[rng() % 5];
    std::vector<int32_t> unique;
    for (int i = 0; i < 1 + static_cast<int>(rng() % 9); ++i) unique.push_back(1 + static_cast<int32_t>(rng() % 90));
    const Forest f = two_level_forest(static_cast<int32_t>(rng() % 200), unique);
    const std::string label = "emu v2 random " + std::to_string(trial) + " D" + std::to_string(d) + " Hq" +
                              std::to_string(h.hq) + "/" + std::to_string(h.hkv) + " bs" + std::to_string(bs);
    const AttentionCase c = decode_case(label, f, make_shape(h.hq, h.hkv, d), bs, rng);
    const Reference ref = compute_reference(c);
    const auto mode = (trial & 1) ? ForestOutputMode::kPartials : ForestOutputMode::kFusedMerge;
    check_v2(c, ref, mode, v2_options(1 + static_cast<int>(rng() % 3)));
  }
}

}  // namespace
}  // namespace canopy::testing
