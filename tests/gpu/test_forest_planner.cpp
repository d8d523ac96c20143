// The host planner's plans (attention/planner.h) executed by the GPU kernels: a mixed step of
// decode tokens and prefill chunks over block tables that share prefixes, with the planner's own
// query tiles and KV splits, checked against the CPU reference. The emulated variant runs on any
// machine; the GPU variant skips without a device.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "attention/planner.h"
#include "attention_check.h"
#include "testing/testing.h"

namespace canopy::testing {
namespace {

using kernels::ForestOutputMode;

// Sequences 0..n-1: the first `shared_blocks` blocks of every table are the same ids (a shared
// prefix); the rest are private. Some sequences decode one token, some prefill a chunk.
struct PlannedStep {
  AttentionCase c;
  std::vector<std::vector<int32_t>> tables;
};

PlannedStep planned_step(const std::string& label, const AttentionShape& shape, int bs, int32_t shared_blocks,
                         int seqs, PlannerOptions options, std::mt19937_64& rng) {
  PlannedStep st;
  int32_t next_block = shared_blocks;
  std::vector<PlannerSequence> batch;
  int32_t tokens = 0;
  std::uniform_int_distribution<int32_t> extra(1, 90), chunk(2, 40);
  for (int s = 0; s < seqs; ++s) {
    const int32_t kv_len = shared_blocks * bs + extra(rng);
    const int32_t q_count = (s % 3 == 2) ? std::min(kv_len, chunk(rng)) : 1;  // every third: a prefill chunk
    std::vector<int32_t> table;
    for (int32_t b = 0; b < shared_blocks; ++b) table.push_back(b);
    while (static_cast<int32_t>(table.size()) * bs < kv_len) table.push_back(next_block++);
    st.tables.push_back(table);
    batch.push_back({{}, kv_len, tokens, q_count});
    tokens += q_count;
  }
  for (size_t s = 0; s < batch.size(); ++s) batch[s].block_table = st.tables[s];
  options.block_size = bs;
  options.num_blocks = next_block;
  Planner planner(options);
  st.c.label = label;
  st.c.shape = shape;
  st.c.layout = KvLayout{next_block, bs, shape.num_kv_heads, shape.head_dim};
  planner.build(batch, tokens, st.c.plan);
  fill_random(st.c, rng);
  return st;
}

AttentionShape make_shape(int hq, int hkv, int d) { return {hq, hkv, d, 1.0f / std::sqrt(static_cast<float>(d))}; }

TEST(ForestAttentionPlanner, PlannerStepEmulated) {
  std::mt19937_64 rng(test_seed() + 201);
  PlannerOptions o;
  o.max_q_per_item = 8;            // query tiles
  o.max_kv_tokens_per_item = 64;   // KV splits
  const PlannedStep st = planned_step("planner emu D64 g4", make_shape(8, 2, 64), 16, 5, 7, o, rng);
  const Reference ref = compute_reference(st.c);
  cuda::ForestLaunchOptions v2;
  v2.kernel = cuda::ForestKernel::kWgmma;
  v2.num_sms = 4;
  v2.ctas_per_sm = 1;
  for (auto mode : {ForestOutputMode::kFusedMerge, ForestOutputMode::kPartials}) {
    check_result(st.c, ref, mode,
                 run_plan_emulated(st.c.plan, st.c.shape, st.c.layout, st.c.q, st.c.k, st.c.v, mode, {}), "emulated v1");
    check_result(st.c, ref, mode,
                 run_plan_emulated(st.c.plan, st.c.shape, st.c.layout, st.c.q, st.c.k, st.c.v, mode, v2, 4),
                 "emulated v2");
  }
}

TEST(ForestAttentionPlanner, PlannerStepsOnGpu) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed() + 202);
  struct Config {
    int d, hq, hkv, bs, shared_blocks, seqs, max_q, max_kv;
  };
  for (const Config& k : {Config{128, 32, 8, 16, 40, 30, 0, 0}, Config{128, 32, 8, 16, 40, 30, 16, 256},
                          Config{64, 9, 3, 32, 12, 20, 64, 0}, Config{128, 8, 8, 16, 20, 25, 0, 128}}) {
    PlannerOptions o;
    o.max_q_per_item = k.max_q;
    o.max_kv_tokens_per_item = k.max_kv;
    const std::string label = "planner D" + std::to_string(k.d) + " g" + std::to_string(k.hq / k.hkv) + " maxq" +
                              std::to_string(k.max_q) + " maxkv" + std::to_string(k.max_kv);
    const PlannedStep st = planned_step(label, make_shape(k.hq, k.hkv, k.d), k.bs, k.shared_blocks, k.seqs, o, rng);
    const Reference ref = compute_reference(st.c);
    check_case(st.c, ref, ForestOutputMode::kFusedMerge);
    check_case(st.c, ref, ForestOutputMode::kPartials);
  }
}

}  // namespace
}  // namespace canopy::testing
