// The fused forest attention kernels on the GPU against the host references (f32 CPU kernels and a
// plain-bf16 emulation), and the identities of DESIGN.md section 5. Every test draws fresh random
// inputs from the test seed, poisons outputs and partials with NaN before each launch, and prints
// its measured errors. Without a CUDA device every test skips.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "attention_check.h"
#include "forest_workload.h"
#include "gpu_harness.h"
#include "testing/testing.h"

namespace canopy::testing {
namespace {

using kernels::ForestOutputMode;

AttentionShape make_shape(int hq, int hkv, int d) { return {hq, hkv, d, 1.0f / std::sqrt(static_cast<float>(d))}; }

std::vector<int32_t> random_lengths(std::mt19937_64& rng, int n, int32_t lo, int32_t hi) {
  std::uniform_int_distribution<int32_t> dist(lo, hi);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

AttentionCase decode_case(const std::string& label, const Forest& forest, const AttentionShape& shape, int block_size,
                          uint64_t shuffle_seed, std::mt19937_64& rng, float q_scale = 1.0f) {
  ForestDecode fd = build_forest_decode(forest, block_size, shape.num_kv_heads, shape.head_dim, shuffle_seed);
  AttentionCase c{label, fd.plan, shape, fd.layout, {}, {}, {}};
  fill_random(c, rng, q_scale);
  return c;
}

// Chunked prefill: `seqs` sequences share a prefix of `prefix` tokens; each has `own` tokens of its
// own, the last `chunk` of which are this step's queries. Items: the prefix (all queries, no
// mask) and each sequence's own part (its queries, causal).
AttentionCase prefill_case(const std::string& label, int seqs, int32_t prefix, int32_t own, int32_t chunk,
                           const AttentionShape& shape, int bs, std::mt19937_64& rng) {
  AttentionCase c;
  c.label = label;
  c.shape = shape;
  AttentionPlan& p = c.plan;
  const int32_t T = seqs * chunk;
  p.num_tokens = T;
  p.num_nodes = 1 + seqs;
  int32_t next_block = 0;
  auto add_blocks = [&](int32_t tokens) {
    const int32_t begin = static_cast<int32_t>(p.kv_pages.size());
    for (int32_t b = 0; b < (tokens + bs - 1) / bs; ++b) p.kv_pages.push_back(next_block++);
    return begin;
  };
  for (int32_t t = 0; t < T; ++t) {
    p.q_tokens.push_back(t);
    p.q_positions.push_back(prefix + own - chunk + t % chunk);
  }
  if (prefix > 0) {
    AttentionItem it{add_blocks(prefix), prefix, 0, 0, T, 0, 0, 0};
    p.items.push_back(it);
    p.num_slots = T;
  }
  for (int s = 0; s < seqs; ++s) {
    AttentionItem it{add_blocks(own), own, prefix, s * chunk, chunk, p.num_slots, 1, 1 + s};
    p.items.push_back(it);
    p.num_slots += chunk;
  }
  p.merge_offsets.push_back(0);
  for (int32_t t = 0; t < T; ++t) {
    if (prefix > 0) p.merge_slots.push_back(t);
    p.merge_slots.push_back((prefix > 0 ? T : 0) + t);
    p.merge_offsets.push_back(static_cast<int32_t>(p.merge_slots.size()));
  }
  c.layout = KvLayout{std::max(next_block, 1), bs, shape.num_kv_heads, shape.head_dim};
  fill_random(c, rng);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Decode over a two-level forest (shared prefix + ragged unique leaves): the headline shape.

struct DecodeParam {
  int head_dim, hq, hkv, block_size;
  ForestOutputMode mode;
};

std::string decode_param_name(const ::testing::TestParamInfo<DecodeParam>& info) {
  const DecodeParam& p = info.param;
  return "D" + std::to_string(p.head_dim) + "_Hq" + std::to_string(p.hq) + "_Hkv" + std::to_string(p.hkv) + "_bs" +
         std::to_string(p.block_size) + (p.mode == ForestOutputMode::kFusedMerge ? "_fused" : "_partials");
}

class ForestDecode2Level : public ::testing::TestWithParam<DecodeParam> {};

TEST_P(ForestDecode2Level, MatchesReference) {
  CANOPY_SKIP_WITHOUT_GPU();
  const DecodeParam& prm = GetParam();
  std::mt19937_64 rng(test_seed() + static_cast<uint64_t>(prm.head_dim * 1000 + prm.hq * 10 + prm.block_size));
  // 37 sequences (rows not a multiple of any tile), prime prefix, ragged leaves 1..97 tokens.
  const Forest forest = two_level_forest(301, random_lengths(rng, 37, 1, 97));
  const AttentionCase c = decode_case(decode_param_name({GetParam(), 0}), forest,
                                      make_shape(prm.hq, prm.hkv, prm.head_dim), prm.block_size, rng(), rng);
  check_case(c, compute_reference(c), prm.mode);
}

INSTANTIATE_TEST_SUITE_P(
    Grid, ForestDecode2Level,
    ::testing::Values(
        // head_dim 128, GQA 1 / 4 / 5 / 8, block sizes 16 and 32 (fast copy path), both output modes
        DecodeParam{128, 8, 8, 16, ForestOutputMode::kFusedMerge}, DecodeParam{128, 8, 8, 16, ForestOutputMode::kPartials},
        DecodeParam{128, 16, 4, 16, ForestOutputMode::kFusedMerge}, DecodeParam{128, 16, 4, 32, ForestOutputMode::kPartials},
        DecodeParam{128, 20, 4, 32, ForestOutputMode::kFusedMerge}, DecodeParam{128, 20, 4, 16, ForestOutputMode::kPartials},
        DecodeParam{128, 32, 4, 16, ForestOutputMode::kFusedMerge}, DecodeParam{128, 32, 4, 16, ForestOutputMode::kPartials},
        // block sizes 1 and 7 (per-row block lookup)
        DecodeParam{128, 16, 4, 1, ForestOutputMode::kFusedMerge}, DecodeParam{128, 32, 4, 7, ForestOutputMode::kPartials},
        // head_dim 64 (the default model's), GQA 1 / 3 / 32 (MQA: a leaf of 32 rows is a wide unit)
        DecodeParam{64, 9, 3, 16, ForestOutputMode::kFusedMerge}, DecodeParam{64, 9, 3, 32, ForestOutputMode::kPartials},
        DecodeParam{64, 8, 8, 32, ForestOutputMode::kFusedMerge}, DecodeParam{64, 32, 1, 16, ForestOutputMode::kFusedMerge},
        DecodeParam{64, 32, 1, 16, ForestOutputMode::kPartials}, DecodeParam{64, 16, 4, 7, ForestOutputMode::kFusedMerge},
        DecodeParam{64, 16, 4, 1, ForestOutputMode::kPartials}),
    decode_param_name);

// ---------------------------------------------------------------------------------------------
// Other shapes of work.

TEST(ForestAttention, ThreeLevelTree) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 11);
  // root 200 -> 5 documents of 130 -> 7 questions of 33: doc items have 7 x g rows.
  const Forest forest = three_level_forest(200, 5, 130, 7, 33);
  for (int g : {1, 2, 4}) {
    const AttentionCase c = decode_case("tree g" + std::to_string(g), forest, make_shape(8 * g, 8, 128), 16, rng(), rng);
    const Reference ref = compute_reference(c);
    check_case(c, ref, ForestOutputMode::kFusedMerge);
    check_case(c, ref, ForestOutputMode::kPartials);
  }
}

TEST(ForestAttention, PeakySoftmax) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 12);
  const Forest forest = two_level_forest(257, random_lengths(rng, 20, 1, 64));
  // Queries 8x larger: scores spread over many units of log2, one key dominates most rows.
  const AttentionCase c = decode_case("peaky", forest, make_shape(16, 4, 128), 16, rng(), rng, 8.0f);
  const Reference ref = compute_reference(c);
  check_case(c, ref, ForestOutputMode::kFusedMerge);
  check_case(c, ref, ForestOutputMode::kPartials);
}

TEST(ForestAttention, ChunkedPrefillWithSharedPrefix) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 13);
  struct P { int d, hq, hkv, bs; };
  for (const P& p : {P{128, 16, 4, 16}, P{128, 8, 8, 7}, P{64, 16, 4, 32}, P{64, 8, 8, 16}}) {
    const std::string label = "prefill D" + std::to_string(p.d) + " g" + std::to_string(p.hq / p.hkv) + " bs" +
                              std::to_string(p.bs);
    // Continuing chunk: 3 sequences, prefix 97, own 150 tokens of which the last 70 are queries.
    const AttentionCase c = prefill_case(label, 3, 97, 150, 70, make_shape(p.hq, p.hkv, p.d), p.bs, rng);
    const Reference ref = compute_reference(c);
    check_case(c, ref, ForestOutputMode::kFusedMerge);
    check_case(c, ref, ForestOutputMode::kPartials);
    // First chunk: every query sees only the own keys up to itself.
    const AttentionCase f = prefill_case(label + " first", 2, 0, 93, 93, make_shape(p.hq, p.hkv, p.d), p.bs, rng);
    check_case(f, compute_reference(f), ForestOutputMode::kFusedMerge);
  }
}

TEST(ForestAttention, LongCausalPrefillWithSplitKv) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 14);
  const AttentionCase c = prefill_case("long prefill", 1, 0, 701, 701, make_shape(16, 4, 128), 16, rng);
  const Reference ref = compute_reference(c);
  // Pieces of 64 keys: most query tiles see only some pieces; the others are empty units.
  cuda::ForestLaunchOptions split = device_options(128);
  split.min_split_keys = 64;
  split.num_sms = 512;            // v1: a tiny share of work per CTA
  split.wide_pieces_per_cta = 64;  // v2: many pieces per tensor CTA
  const GpuAttentionResult a = check_case(c, ref, ForestOutputMode::kFusedMerge, &split);
  EXPECT_GT(a.launch_plan.split_items, 0) << "the split path was not exercised";
  check_case(c, ref, ForestOutputMode::kPartials, &split);
  cuda::ForestLaunchOptions whole = device_options(128);
  whole.split_kv = false;
  const GpuAttentionResult b = check_case(c, ref, ForestOutputMode::kFusedMerge, &whole);
  expect_outputs_agree("split == unsplit (causal)", a.out, b.out, ref);
}

TEST(ForestAttention, LongDecodeSplitKv) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 15);
  // Two sequences, 4000 shared + 1000 / 3 own tokens: few units, so the launch splits the keys.
  const Forest forest = two_level_forest(4000, {1000, 3});
  const AttentionCase c = decode_case("long decode", forest, make_shape(32, 4, 128), 16, 0, rng);
  const Reference ref = compute_reference(c);
  const GpuAttentionResult a = check_case(c, ref, ForestOutputMode::kFusedMerge);
  EXPECT_GT(a.launch_plan.split_items, 0) << "the split path was not exercised";
  cuda::ForestLaunchOptions whole = device_options(128);
  whole.split_kv = false;
  const GpuAttentionResult b = check_case(c, ref, ForestOutputMode::kFusedMerge, &whole);
  EXPECT_EQ(b.launch_plan.split_items, 0);
  expect_outputs_agree("split == unsplit (decode)", a.out, b.out, ref);
}

TEST(ForestAttention, EmptyItemsAndUncoveredTokens) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 16);
  const Forest forest = two_level_forest(64, random_lengths(rng, 9, 1, 40));
  AttentionCase c = decode_case("empty parts", forest, make_shape(16, 4, 64), 16, rng(), rng);
  AttentionPlan& p = c.plan;
  const int32_t T = p.num_tokens;
  // An empty segment merged into every token, an item without queries, and one extra token that
  // no item covers (its output must be 0, its LSE -inf).
  AttentionItem empty{0, 0, 0, 0, T, p.num_slots, 0, p.num_nodes};
  AttentionItem no_queries{0, 16, 0, 0, 0, p.num_slots + T, 0, p.num_nodes + 1};
  p.num_nodes += 2;
  p.items.push_back(empty);
  p.items.push_back(no_queries);
  std::vector<int32_t> offsets{0}, slots;
  for (int32_t t = 0; t < T; ++t) {
    for (int32_t i = p.merge_offsets[static_cast<size_t>(t)]; i < p.merge_offsets[static_cast<size_t>(t) + 1]; ++i)
      slots.push_back(p.merge_slots[static_cast<size_t>(i)]);
    slots.push_back(p.num_slots + t);
    offsets.push_back(static_cast<int32_t>(slots.size()));
  }
  p.num_slots += T;
  p.num_tokens = T + 1;
  p.q_positions.push_back(5);
  offsets.push_back(static_cast<int32_t>(slots.size()));
  p.merge_offsets = offsets;
  p.merge_slots = slots;
  fill_random(c, rng);
  const Reference ref = compute_reference(c);
  for (auto mode : {ForestOutputMode::kFusedMerge, ForestOutputMode::kPartials}) {
    const GpuAttentionResult r = check_case(c, ref, mode);
    const size_t row = static_cast<size_t>(T) * c.shape.num_q_heads;
    for (int h = 0; h < c.shape.num_q_heads; ++h) {
      EXPECT_TRUE(std::isinf(r.lse[row + h]) && r.lse[row + h] < 0) << "uncovered token, head " << h;
      for (int d = 0; d < c.shape.head_dim; ++d) EXPECT_EQ(r.out[(row + h) * c.shape.head_dim + d], 0.0f);
    }
  }
}

TEST(ForestAttention, RepeatedLaunchesLeaveCountersZero) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 17);
  const Forest forest = three_level_forest(64, 3, 48, 5, 17);
  const AttentionCase c = decode_case("repeated", forest, make_shape(32, 8, 128), 16, rng(), rng);
  check_case(c, compute_reference(c), ForestOutputMode::kFusedMerge, nullptr, 4);
}

// ---------------------------------------------------------------------------------------------
// Identities (DESIGN.md section 5) on the GPU.

TEST(ForestAttentionIdentity, DecomposedEqualsFlat) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 21);
  for (int bs : {16, 5}) {
    const Forest forest = three_level_forest(150, 3, 77, 6, 21);
    const AttentionShape shape = make_shape(32, 8, 128);
    const ForestDecode fd = build_forest_decode(forest, bs, shape.num_kv_heads, shape.head_dim, rng());
    AttentionCase tree{"tree bs" + std::to_string(bs), fd.plan, shape, fd.layout, {}, {}, {}};
    fill_random(tree, rng);
    const FlatDecode fl = build_flat_decode(fd, bs);
    AttentionCase flat{"own copies bs" + std::to_string(bs), fl.plan, shape, fl.layout, tree.q, {}, {}};
    copy_forest_to_flat(fd, fl, tree.k, flat.k);
    copy_forest_to_flat(fd, fl, tree.v, flat.v);
    const Reference ref = compute_reference(tree);
    const GpuAttentionResult a = check_case(tree, ref, ForestOutputMode::kFusedMerge);
    const GpuAttentionResult b = check_case(flat, compute_reference(flat), ForestOutputMode::kFusedMerge);
    expect_outputs_agree("decomposed == flat", a.out, b.out, ref);
    const ErrorStats lse = compare(a.lse.data(), b.lse.data(), a.lse.size());
    EXPECT_LE(lse.max_abs, 2 * kLseTol) << lse.str();
  }
}

TEST(ForestAttentionIdentity, MultiLevelEqualsTwoLevel) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 22);
  const int bs = 16;
  const Forest forest = three_level_forest(4 * bs, 4, 90, 5, 30);  // root: whole blocks
  AttentionCase three = decode_case("three levels", forest, make_shape(16, 4, 128), bs, rng(), rng);
  // Two levels: each document item also reads the root's blocks (one segment: root + document).
  AttentionCase two = three;
  two.label = "two levels";
  AttentionPlan& p = two.plan;
  const AttentionItem* root = nullptr;
  for (const auto& it : three.plan.items)
    if (it.node == 0) root = &it;
  ASSERT_NE(root, nullptr);
  std::vector<AttentionItem> items;
  std::vector<int32_t> pages;
  for (const auto& it : three.plan.items) {
    if (it.node == 0) continue;
    AttentionItem n = it;
    n.kv_page_begin = static_cast<int32_t>(pages.size());
    if (it.q_count > 1) {  // a document: prepend the root's blocks
      for (int32_t b = 0; b < root->kv_len / bs; ++b)
        pages.push_back(three.plan.kv_pages[static_cast<size_t>(root->kv_page_begin + b)]);
      n.kv_len += root->kv_len;
      n.kv_pos0 = 0;
    }
    for (int32_t b = 0; b < (it.kv_len + bs - 1) / bs; ++b)
      pages.push_back(three.plan.kv_pages[static_cast<size_t>(it.kv_page_begin + b)]);
    items.push_back(n);
  }
  p.items = items;
  p.kv_pages = pages;
  std::vector<int32_t> offsets{0}, slots;
  for (int32_t t = 0; t < p.num_tokens; ++t) {
    for (int32_t i = three.plan.merge_offsets[static_cast<size_t>(t)]; i < three.plan.merge_offsets[static_cast<size_t>(t) + 1]; ++i) {
      const int32_t s = three.plan.merge_slots[static_cast<size_t>(i)];
      if (s < root->out_begin || s >= root->out_begin + root->q_count) slots.push_back(s);
    }
    offsets.push_back(static_cast<int32_t>(slots.size()));
  }
  p.merge_offsets = offsets;
  p.merge_slots = slots;
  const Reference ref = compute_reference(three);
  const GpuAttentionResult a = check_case(three, ref, ForestOutputMode::kFusedMerge);
  const GpuAttentionResult b = check_case(two, compute_reference(two), ForestOutputMode::kFusedMerge);
  expect_outputs_agree("three levels == two levels", a.out, b.out, ref);
}

TEST(ForestAttentionIdentity, MergeWithEmptyPartIsTheOtherPart) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 23);
  const Forest forest = two_level_forest(130, random_lengths(rng, 12, 1, 50));
  const AttentionCase base = decode_case("without", forest, make_shape(16, 4, 128), 16, rng(), rng);
  AttentionCase with = base;
  with.label = "with an empty part";
  AttentionPlan& p = with.plan;
  const int32_t T = p.num_tokens;
  p.items.push_back(AttentionItem{0, 0, 0, 0, T, p.num_slots, 0, p.num_nodes});
  ++p.num_nodes;
  std::vector<int32_t> offsets{0}, slots;
  for (int32_t t = 0; t < T; ++t) {
    slots.push_back(p.num_slots + t);  // the empty part first: the merge must not be disturbed
    for (int32_t i = base.plan.merge_offsets[static_cast<size_t>(t)]; i < base.plan.merge_offsets[static_cast<size_t>(t) + 1]; ++i)
      slots.push_back(base.plan.merge_slots[static_cast<size_t>(i)]);
    offsets.push_back(static_cast<int32_t>(slots.size()));
  }
  p.num_slots += T;
  p.merge_offsets = offsets;
  p.merge_slots = slots;
  const Reference ref = compute_reference(base);
  for (auto mode : {ForestOutputMode::kFusedMerge, ForestOutputMode::kPartials}) {
    const GpuAttentionResult a = check_case(base, ref, mode);
    const GpuAttentionResult b = check_case(with, compute_reference(with), mode);
    expect_outputs_agree("with empty part == without", a.out, b.out, ref);
  }
}

// ---------------------------------------------------------------------------------------------
// Fresh random forests: shapes, depths, block sizes and output modes drawn from the seed.

TEST(ForestAttention, RandomForests) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 31);
  struct Heads { int hq, hkv; };
  const Heads heads[] = {{8, 8}, {16, 4}, {32, 8}, {24, 3}, {16, 1}};
  const int block_sizes[] = {1, 3, 8, 16, 32};
  for (int trial = 0; trial < 8; ++trial) {
    const int d = (rng() & 1) ? 128 : 64;
    const Heads h = heads[rng() % 5];
    const int bs = block_sizes[rng() % 5];
    Forest f;
    if (rng() & 1) {
      f = two_level_forest(static_cast<int32_t>(rng() % 600), random_lengths(rng, 1 + static_cast<int>(rng() % 60), 0, 120));
    } else {
      f = three_level_forest(static_cast<int32_t>(rng() % 300), 1 + static_cast<int>(rng() % 5),
                             static_cast<int32_t>(rng() % 200), 1 + static_cast<int>(rng() % 12),
                             static_cast<int32_t>(1 + rng() % 80));
    }
    const std::string label = "random " + std::to_string(trial) + " D" + std::to_string(d) + " Hq" +
                              std::to_string(h.hq) + "/" + std::to_string(h.hkv) + " bs" + std::to_string(bs);
    const AttentionCase c = decode_case(label, f, make_shape(h.hq, h.hkv, d), bs, rng(), rng);
    check_case(c, compute_reference(c), (trial & 1) ? ForestOutputMode::kPartials : ForestOutputMode::kFusedMerge);
  }
}

// ---------------------------------------------------------------------------------------------
// Small cases for compute-sanitizer (memcheck, racecheck): every code path, tiny sizes.

TEST(ForestAttentionSanitize, SmallDecodeAndPrefill) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 41);
  for (int d : {64, 128}) {
    for (int bs : {16, 7}) {
      const Forest forest = two_level_forest(40, {3, 17, 1, 20, 9});
      const AttentionCase c = decode_case("small D" + std::to_string(d) + " bs" + std::to_string(bs), forest,
                                          make_shape(32, 4, d), bs, rng(), rng);  // 40 rows: a wide prefix unit
      const Reference ref = compute_reference(c);
      check_case(c, ref, ForestOutputMode::kFusedMerge);
      check_case(c, ref, ForestOutputMode::kPartials);
    }
    const AttentionCase p = prefill_case("small prefill D" + std::to_string(d), 2, 20, 40, 30, make_shape(8, 2, d), 16, rng);
    check_case(p, compute_reference(p), ForestOutputMode::kFusedMerge);
  }
}

}  // namespace
}  // namespace canopy::testing
