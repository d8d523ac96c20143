// Host-side tests of the GPU attention launch plan and the kernels' shared-memory addressing. They
// need no device: they run wherever the CUDA backend builds.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "backend/cuda/forest_launch_plan.h"
#include "core/error.h"
#include "forest_layout.h"
#include "forest_workload.h"
#include "testing/testing.h"

namespace canopy::testing {
namespace {

using cuda::build_forest_launch_plan;
using cuda::ForestLaunchOptions;
using cuda::ForestLaunchPlan;
using kernels::ForestUnit;

AttentionShape shape_of(int hq, int hkv, int d) { return {hq, hkv, d, 0.1f}; }

// Every (item, query, KV head, visible key) is computed by exactly one unit, which writes the
// partial slot that the query's token merges; every unit key is visible to some row or masked.
void expect_units_cover_plan(const AttentionPlan& plan, const AttentionShape& shape, const ForestLaunchPlan& lp) {
  const int g = shape.group();
  ASSERT_EQ(static_cast<int32_t>(lp.merge_offsets.size()), plan.num_tokens + 1);
  // slot -> token it belongs to (launch numbering), from the merge lists
  std::map<int32_t, int32_t> slot_token;
  for (int32_t t = 0; t < plan.num_tokens; ++t)
    for (int32_t i = lp.merge_offsets[static_cast<size_t>(t)]; i < lp.merge_offsets[static_cast<size_t>(t) + 1]; ++i) {
      const int32_t s = lp.merge_slots[static_cast<size_t>(i)];
      EXPECT_TRUE(slot_token.emplace(s, t).second) << "slot " << s << " merged twice";
      EXPECT_LT(s, lp.num_slots);
    }
  // (token, head, absolute key position) -> number of units computing it; (slot, head) -> units
  std::map<std::tuple<int32_t, int, int64_t>, int> computed;
  std::map<std::pair<int32_t, int>, int> slot_writes;
  for (const ForestUnit& u : lp.units) {
    EXPECT_GE(u.q_count, 1);
    const bool narrow = (u.flags & kernels::kUnitNarrow) != 0;
    EXPECT_LE(u.q_count * g, narrow ? 16 : 128);
    EXPECT_EQ(u.kv_begin % 64, 0) << "unit key ranges start at whole tiles";
    for (int32_t j = 0; j < u.q_count; ++j) {
      const int32_t t = lp.q_tokens[static_cast<size_t>(u.q_begin + j)];
      const int32_t slot = u.slot_base + j;
      ASSERT_TRUE(slot_token.count(slot)) << "unit writes slot " << slot << " which no token merges";
      EXPECT_EQ(slot_token[slot], t) << "slot " << slot << " merged by the wrong token";
      ++slot_writes[{slot, u.kv_head}];
      const int32_t qpos = plan.q_positions[static_cast<size_t>(t)];
      for (int32_t k = u.kv_begin; k < u.kv_end; ++k) {
        const int64_t pos = static_cast<int64_t>(u.kv_pos0) + k;
        const bool maskable = k >= u.mask_from;
        if (!maskable) {
          EXPECT_LE(pos, qpos) << "a key before mask_from must be visible to every row";
        }
        if (pos <= qpos || u.mask_from == kernels::kNoMask) ++computed[{t, u.kv_head, pos}];
      }
    }
  }
  for (const auto& [key, n] : slot_writes) EXPECT_EQ(n, 1) << "slot " << key.first << " head " << key.second;
  for (const auto& [slot, t] : slot_token)
    for (int h = 0; h < shape.num_kv_heads; ++h)
      EXPECT_EQ(slot_writes.count({slot, h}), 1u) << "slot " << slot << " of token " << t << " never written";
  // Expected: every visible key of every item, for every query and head.
  std::map<std::tuple<int32_t, int, int64_t>, int> expected;
  for (const AttentionItem& it : plan.items)
    for (int32_t j = 0; j < it.q_count; ++j) {
      const int32_t t = plan.q_tokens[static_cast<size_t>(it.q_begin + j)];
      for (int32_t k = 0; k < it.kv_len; ++k) {
        const int64_t pos = static_cast<int64_t>(it.kv_pos0) + k;
        if (it.causal && pos > plan.q_positions[static_cast<size_t>(t)]) continue;
        for (int h = 0; h < shape.num_kv_heads; ++h) ++expected[{t, h, pos}];
      }
    }
  EXPECT_EQ(computed, expected);
  if (lp.kernel == cuda::ForestKernel::kWgmma) {
    // v2: wide units first (the wide queue), then narrow ones; a persistent grid.
    EXPECT_TRUE(lp.cta_offsets.empty());
    EXPECT_EQ(lp.num_wide_units, lp.wide_units);
    for (size_t i = 0; i < lp.units.size(); ++i)
      EXPECT_EQ((lp.units[i].flags & kernels::kUnitNarrow) == 0, static_cast<int32_t>(i) < lp.num_wide_units) << i;
    EXPECT_GE(lp.grid_ctas, 1);
    if (lp.num_wide_units > 0) {
      EXPECT_GE(lp.num_tensor_ctas, 1);
      EXPECT_LE(lp.num_tensor_ctas, lp.grid_ctas);
    } else {
      EXPECT_EQ(lp.num_tensor_ctas, 0);
    }
    return;
  }
  // CTAs: one wide unit, or 1..4 narrow units.
  ASSERT_FALSE(lp.cta_offsets.empty());
  EXPECT_EQ(lp.grid_ctas + 1, static_cast<int32_t>(lp.cta_offsets.size()));
  EXPECT_EQ(lp.cta_offsets.front(), 0);
  EXPECT_EQ(lp.cta_offsets.back(), static_cast<int32_t>(lp.units.size()));
  for (size_t c = 0; c + 1 < lp.cta_offsets.size(); ++c) {
    const int32_t n = lp.cta_offsets[c + 1] - lp.cta_offsets[c];
    ASSERT_GE(n, 1);
    const bool narrow = (lp.units[static_cast<size_t>(lp.cta_offsets[c])].flags & kernels::kUnitNarrow) != 0;
    EXPECT_LE(n, narrow ? 4 : 1);
    for (int32_t i = lp.cta_offsets[c]; i < lp.cta_offsets[c + 1]; ++i)
      EXPECT_EQ((lp.units[static_cast<size_t>(i)].flags & kernels::kUnitNarrow) != 0, narrow);
  }
}

ForestLaunchOptions v2_options(int sms = 132) {
  ForestLaunchOptions o;
  o.kernel = cuda::ForestKernel::kWgmma;
  o.num_sms = sms;
  o.ctas_per_sm = 1;
  return o;
}

TEST(ForestLaunchPlan, DecodeForestUnits) {
  std::mt19937_64 rng(test_seed());
  const Forest f = three_level_forest(100, 3, 70, 9, 13);
  for (int g : {1, 4, 8}) {
    const ForestDecode fd = build_forest_decode(f, 16, 4, 128, rng());
    const AttentionShape shape = shape_of(4 * g, 4, 128);
    ForestLaunchOptions o;
    o.split_kv = false;
    const ForestLaunchPlan lp = build_forest_launch_plan(fd.plan, shape, fd.layout, o);
    expect_units_cover_plan(fd.plan, shape, lp);
    EXPECT_EQ(lp.split_items, 0);
    EXPECT_EQ(lp.num_slots, fd.plan.num_slots);
    // Leaves (1 query x g rows <= 16) are narrow; the root (27 x g rows) is wide.
    int narrow = 0;
    for (const auto& u : lp.units) narrow += (u.flags & kernels::kUnitNarrow) != 0;
    EXPECT_GE(narrow, 27 * 4);
    EXPECT_GT(lp.wide_units, 0);
  }
}

TEST(ForestLaunchPlan, WideTilesHoldWholeTokens) {
  const Forest f = two_level_forest(64, std::vector<int32_t>(100, 5));
  const ForestDecode fd = build_forest_decode(f, 16, 2, 64, 0);
  const AttentionShape shape = shape_of(10, 2, 64);  // group 5: 25 tokens (125 rows) per wide unit
  const ForestLaunchPlan lp = build_forest_launch_plan(fd.plan, shape, fd.layout);
  expect_units_cover_plan(fd.plan, shape, lp);
  for (const auto& u : lp.units)
    if (!(u.flags & kernels::kUnitNarrow)) {
      EXPECT_LE(u.q_count, 25);
    }
}

TEST(ForestLaunchPlan, CausalRangesAreClampedAndMasked) {
  // One sequence, prefill of its first 200 tokens (causal), split into 64-key pieces.
  AttentionPlan p;
  p.num_tokens = 200;
  for (int32_t t = 0; t < 200; ++t) {
    p.q_tokens.push_back(t);
    p.q_positions.push_back(t);
  }
  for (int32_t b = 0; b < 13; ++b) p.kv_pages.push_back(b);
  p.items.push_back({0, 200, 0, 0, 200, 0, 1, 0});
  p.num_slots = 200;
  for (int32_t t = 0; t <= 200; ++t) p.merge_offsets.push_back(t);
  for (int32_t t = 0; t < 200; ++t) p.merge_slots.push_back(t);
  const AttentionShape shape = shape_of(8, 2, 128);  // group 4: 32 tokens per wide unit
  const KvLayout layout{13, 16, 2, 128};
  for (bool split : {false, true}) {
    ForestLaunchOptions o;
    o.split_kv = split;
    o.min_split_keys = 64;
    o.num_sms = 1000;  // a tiny share of work per unit: split as much as allowed
    const ForestLaunchPlan lp = build_forest_launch_plan(p, shape, layout, o);
    expect_units_cover_plan(p, shape, lp);
    for (const auto& u : lp.units) {
      const int32_t first_q = u.q_begin, last_q = u.q_begin + u.q_count - 1;  // positions == tokens here
      EXPECT_LE(u.kv_end, std::max(u.kv_begin, last_q + 1)) << "keys past the last query are never read";
      if (u.kv_end > u.kv_begin && u.mask_from != kernels::kNoMask) {
        EXPECT_EQ(u.mask_from, first_q + 1);
      }
    }
    if (split) {
      EXPECT_EQ(lp.split_items, 1);
      EXPECT_GT(lp.num_slots, p.num_slots);
    }
  }
}

TEST(ForestLaunchPlan, SplitsLongUnitsIntoWholeTiles) {
  const Forest f = two_level_forest(10000, {3000, 5});
  const ForestDecode fd = build_forest_decode(f, 32, 8, 128, 0);
  const AttentionShape shape = shape_of(32, 8, 128);
  const ForestLaunchPlan lp = build_forest_launch_plan(fd.plan, shape, fd.layout);
  expect_units_cover_plan(fd.plan, shape, lp);
  EXPECT_GE(lp.split_items, 2);
  std::set<int32_t> lengths;
  for (const auto& u : lp.units) {
    const bool last_piece = u.kv_end == 10000 || u.kv_end == 3000 || u.kv_end == 5;
    if (!last_piece) {
      EXPECT_EQ((u.kv_end - u.kv_begin) % 64, 0) << "pieces are whole tiles, but for an item's last";
    }
    lengths.insert(u.kv_end - u.kv_begin);
  }
  EXPECT_LE(*lengths.rbegin(), 2048) << "the longest piece should be a small share of the work";
  // Without splitting, one unit per (node, head).
  ForestLaunchOptions o;
  o.split_kv = false;
  EXPECT_EQ(build_forest_launch_plan(fd.plan, shape, fd.layout, o).units.size(), 3u * 8u);
}

TEST(ForestLaunchPlan, UncoveredTokenGetsAnEmptyUnit) {
  AttentionPlan p;
  p.num_tokens = 2;
  p.q_positions = {3, 7};
  p.q_tokens = {0};
  p.kv_pages = {0};
  p.items.push_back({0, 4, 0, 0, 1, 0, 0, 0});
  p.num_slots = 1;
  p.merge_offsets = {0, 1, 1};
  p.merge_slots = {0};
  const ForestLaunchPlan lp = build_forest_launch_plan(p, shape_of(4, 2, 64), KvLayout{1, 16, 2, 64});
  ASSERT_EQ(lp.q_tokens.size(), 2u);
  EXPECT_EQ(lp.q_tokens[1], 1);
  EXPECT_EQ(lp.merge_offsets[2] - lp.merge_offsets[1], 1);
  int empty = 0;
  for (const auto& u : lp.units)
    if (u.q_begin == 1) {
      ++empty;
      EXPECT_EQ(u.kv_end, u.kv_begin);
    }
  EXPECT_EQ(empty, 2);  // one per KV head
}

TEST(ForestLaunchPlan, MixesWideAndNarrowCtasFromTheStart) {
  std::vector<int32_t> unique(1024, 128);
  const ForestDecode fd = build_forest_decode(two_level_forest(16384, unique), 16, 8, 128, 0);
  ForestLaunchOptions o;  // 132 SMs x 2 CTAs
  const ForestLaunchPlan lp = build_forest_launch_plan(fd.plan, shape_of(32, 8, 128), fd.layout, o);
  ASSERT_EQ(lp.wide_units, 256);
  // The first wave (one CTA per slot) holds one wide CTA per SM and narrow ones beside them.
  const size_t wave = static_cast<size_t>(o.num_sms * o.ctas_per_sm);
  int wide = 0;
  for (size_t c = 0; c < wave; ++c)
    wide += !(lp.units[static_cast<size_t>(lp.cta_offsets[c])].flags & kernels::kUnitNarrow);
  EXPECT_EQ(wide, o.num_sms);
  // The replayed dispatch ends close to its lower bound: the wide work over one wide CTA per SM,
  // or all the work over all slots (no long shared node left alone in the tail).
  const double bound = std::max(lp.wide_cost_ns / o.num_sms, lp.total_cost_ns / static_cast<double>(wave));
  EXPECT_GT(lp.predicted_makespan_ns, 0.0);
  EXPECT_LE(lp.predicted_makespan_ns, 1.5 * bound) << lp.summary();
}

TEST(ForestLaunchPlan, RejectsBadPlans) {
  const ForestDecode fd = build_forest_decode(two_level_forest(40, {3, 4}), 16, 2, 64, 0);
  const AttentionShape shape = shape_of(4, 2, 64);
  auto expect_error = [&](AttentionPlan p, KvLayout layout, AttentionShape s, const std::string& needle) {
    try {
      build_forest_launch_plan(p, s, layout);
      ADD_FAILURE() << "accepted a plan with: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  EXPECT_NO_THROW(build_forest_launch_plan(fd.plan, shape, fd.layout));
  {
    AttentionPlan p = fd.plan;
    p.kv_pages[0] = fd.layout.num_blocks;
    expect_error(p, fd.layout, shape, "kv_pages[0]");
  }
  {
    AttentionPlan p = fd.plan;
    p.merge_slots[1] = p.merge_slots[0];
    expect_error(p, fd.layout, shape, "slot");
  }
  {
    AttentionPlan p = fd.plan;
    p.items[0].kv_len += 64;  // reads past its blocks
    expect_error(p, fd.layout, shape, "past kv_pages");
  }
  {
    AttentionPlan p = fd.plan;
    p.merge_offsets.pop_back();
    expect_error(p, fd.layout, shape, "merge offsets");
  }
  expect_error(fd.plan, fd.layout, shape_of(4, 2, 96), "head_dim 96");
  expect_error(fd.plan, fd.layout, shape_of(6, 4, 64), "grouped");
  KvLayout other = fd.layout;
  other.num_kv_heads = 4;
  expect_error(fd.plan, other, shape, "KV cache has");
}

// ---- v2 (persistent, two queues)

TEST(ForestLaunchPlanV2, CoversPlansWithBothQueues) {
  std::mt19937_64 rng(test_seed() + 7);
  const Forest f = three_level_forest(100, 3, 70, 9, 13);
  for (int g : {1, 4, 8}) {
    const ForestDecode fd = build_forest_decode(f, 16, 4, 128, rng());
    const AttentionShape shape = shape_of(4 * g, 4, 128);
    for (bool split : {false, true}) {
      ForestLaunchOptions o = v2_options(8);
      o.split_kv = split;
      o.min_split_keys = 64;
      const ForestLaunchPlan lp = build_forest_launch_plan(fd.plan, shape, fd.layout, o);
      expect_units_cover_plan(fd.plan, shape, lp);
      EXPECT_GT(lp.num_wide_units, 0);
      EXPECT_GE(lp.narrow_units, 27 * 4);
    }
  }
}

TEST(ForestLaunchPlanV2, TensorCtasFollowTheWork) {
  // Compute-heavy prefix (32/8, 16K shared keys under 1024 sequences): most SMs start on the wide
  // queue; memory-heavy (40/40, short prefix, long leaves): most stream leaves.
  // (Benchmark-sized plans: too big for the exhaustive coverage check, which the tests above run.)
  const ForestDecode heavy = build_forest_decode(two_level_forest(16384, std::vector<int32_t>(1024, 128)), 16, 8, 128, 0);
  const ForestLaunchPlan a = build_forest_launch_plan(heavy.plan, shape_of(32, 8, 128), heavy.layout, v2_options());
  const ForestDecode light = build_forest_decode(two_level_forest(1024, std::vector<int32_t>(512, 2048)), 16, 40, 128, 0);
  const ForestLaunchPlan b = build_forest_launch_plan(light.plan, shape_of(40, 40, 128), light.layout, v2_options());
  std::printf("heavy prefix: %s\nlong leaves: %s\n", a.summary().c_str(), b.summary().c_str());
  EXPECT_GT(a.num_tensor_ctas, 132 / 2);
  EXPECT_LT(b.num_tensor_ctas, 132 / 2);
  // The shared node is cut into several pieces per tensor CTA: no single unit is a long tail.
  EXPECT_GE(a.num_wide_units, 2 * a.num_tensor_ctas);
  // An override is honoured.
  ForestLaunchOptions o = v2_options();
  o.tensor_ctas = 10;
  EXPECT_EQ(build_forest_launch_plan(heavy.plan, shape_of(32, 8, 128), heavy.layout, o).num_tensor_ctas, 10);
}

TEST(ForestLaunchPlanV2, WgmmaVersionPicksThePipelineOnly) {
  // v2 and v3 differ in the wide pipeline only: the same options give the same units and queues;
  // the plan carries the version (the kernel's wide_pipeline); other versions are refused.
  std::mt19937_64 rng(test_seed() + 11);
  const ForestDecode fd = build_forest_decode(three_level_forest(100, 3, 70, 9, 13), 16, 4, 128, rng());
  const AttentionShape shape = shape_of(16, 4, 128);
  ForestLaunchOptions o = v2_options(8);
  o.wgmma_version = 2;
  const ForestLaunchPlan a = build_forest_launch_plan(fd.plan, shape, fd.layout, o);
  o.wgmma_version = 3;
  const ForestLaunchPlan b = build_forest_launch_plan(fd.plan, shape, fd.layout, o);
  EXPECT_EQ(a.wgmma_version, 2);
  EXPECT_EQ(b.wgmma_version, 3);
  EXPECT_EQ(a.summary().substr(0, 3), "v2:");
  EXPECT_EQ(b.summary().substr(0, 3), "v3:");
  ASSERT_EQ(a.units.size(), b.units.size());
  EXPECT_EQ(a.num_wide_units, b.num_wide_units);
  EXPECT_EQ(a.num_tensor_ctas, b.num_tensor_ctas);
  EXPECT_EQ(a.merge_slots, b.merge_slots);
  for (int bad : {0, 1, 4}) {
    o.wgmma_version = bad;
    EXPECT_THROW(build_forest_launch_plan(fd.plan, shape, fd.layout, o), Error);
  }
}

TEST(ForestLaunchPlanV2, LeavesOnlyOrWideOnly) {
  const ForestDecode leaves = build_forest_decode(two_level_forest(0, {5, 90, 33}), 16, 2, 64, 0);
  const ForestLaunchPlan a = build_forest_launch_plan(leaves.plan, shape_of(4, 2, 64), leaves.layout, v2_options(4));
  expect_units_cover_plan(leaves.plan, shape_of(4, 2, 64), a);
  EXPECT_EQ(a.num_wide_units, 0);
  EXPECT_EQ(a.num_tensor_ctas, 0);
  // A long leaf is split (no leaf longer than a quarter of the launch on one warp).
  const ForestDecode long_leaf = build_forest_decode(two_level_forest(0, {20000, 3}), 16, 2, 64, 0);
  const ForestLaunchPlan b = build_forest_launch_plan(long_leaf.plan, shape_of(4, 2, 64), long_leaf.layout, v2_options(4));
  expect_units_cover_plan(long_leaf.plan, shape_of(4, 2, 64), b);
  EXPECT_GT(b.split_items, 0);
}

// ---- shared-memory addressing of the kernels

template <int kD>
void check_swizzle() {
  using C = kernels::ForestConfig<kD>;
  std::set<int> offsets;
  for (int r = 0; r < C::kWideRows; ++r)
    for (int c = 0; c < C::kChunks; ++c) {
      const int off = kernels::swizzled_offset(r, c, kD);
      EXPECT_EQ(off % 8, 0);
      EXPECT_GE(off, r * kD);
      EXPECT_LT(off, (r + 1) * kD);  // stays in its row
      offsets.insert(off);
    }
  EXPECT_EQ(offsets.size(), static_cast<size_t>(C::kWideRows * C::kChunks));
  // 8 consecutive rows at one logical chunk land in 8 distinct 16-byte bank groups.
  for (int r0 = 0; r0 < 64; r0 += 8)
    for (int c = 0; c < C::kChunks; ++c) {
      std::set<int> groups;
      for (int r = r0; r < r0 + 8; ++r) groups.insert((kernels::swizzled_offset(r, c, kD) * 2 / 16) % 8);
      EXPECT_EQ(groups.size(), 8u);
    }
  // The XOR-stepped ldmatrix addresses equal the swizzled offsets of the rows/chunks they mean.
  for (int lane = 0; lane < 32; ++lane)
    for (int base_row = 0; base_row < C::kWideRows; base_row += 16)
      for (int c = 0; c < C::kChunks / 2; ++c) {
        const unsigned a = (static_cast<unsigned>(base_row * 2 * kD) + kernels::ldsm_lane_offset_a(lane, kD)) ^
                           static_cast<unsigned>(c << 5);
        const int row_a = base_row + ((lane >> 3) & 1) * 8 + (lane & 7);
        const int chunk_a = 2 * c + ((lane >> 4) & 1);
        EXPECT_EQ(a, static_cast<unsigned>(2 * kernels::swizzled_offset(row_a, chunk_a, kD)));
        const unsigned b = (static_cast<unsigned>(base_row * 2 * kD) + kernels::ldsm_lane_offset_b(lane, kD)) ^
                           static_cast<unsigned>(c << 5);
        const int row_b = base_row + ((lane >> 4) & 1) * 8 + (lane & 7);
        const int chunk_b = 2 * c + ((lane >> 3) & 1);
        EXPECT_EQ(b, static_cast<unsigned>(2 * kernels::swizzled_offset(row_b, chunk_b, kD)));
      }
}

TEST(ForestKernelLayout, SwizzleAndLdmatrixAddressing) {
  check_swizzle<64>();
  check_swizzle<128>();
}

}  // namespace
}  // namespace canopy::testing
