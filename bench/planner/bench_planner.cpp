// Host cost of planning one decode step: B sequences under a shared prefix of P tokens, each with
// U unique tokens (the shape of DESIGN.md's attention anchor). The planner runs once per step on
// the host, so it must stay well under a millisecond at B = 4096.
//
//   bench_planner                      all cases
//   bench_planner --benchmark_filter=Shared
//
// Cases: shared (the prefix's blocks shared, as with prefix sharing), private (every sequence
// holds its own copy, as with --no-prefix-sharing); max_q = 0 (one item per node) or 64 (query
// tiles, as a GPU backend would ask for); verify = 1 (memcmp of shared table prefixes, the
// default) or 0 (trusting the KV cache manager's tables).
#include <benchmark/benchmark.h>

#include <vector>

#include "attention/planner.h"

namespace canopy {
namespace {

constexpr int32_t kBlockSize = 16;
constexpr int32_t kPrefix = 4096;
constexpr int32_t kUnique = 128;

struct DecodeBatch {
  std::vector<std::vector<int32_t>> tables;
  std::vector<PlannerSequence> seqs;
  int32_t num_blocks = 0;
};

DecodeBatch make_batch(int32_t B, bool shared) {
  DecodeBatch b;
  const int32_t prefix_blocks = kPrefix / kBlockSize;
  const int32_t own_blocks = (kUnique + kBlockSize - 1) / kBlockSize;
  std::vector<int32_t> prefix(static_cast<size_t>(prefix_blocks));
  for (int32_t i = 0; i < prefix_blocks; ++i) prefix[static_cast<size_t>(i)] = b.num_blocks++;
  b.tables.resize(static_cast<size_t>(B));
  for (int32_t s = 0; s < B; ++s) {
    auto& t = b.tables[static_cast<size_t>(s)];
    if (shared) {
      t = prefix;
    } else {
      for (int32_t i = 0; i < prefix_blocks; ++i) t.push_back(b.num_blocks++);
    }
    for (int32_t i = 0; i < own_blocks; ++i) t.push_back(b.num_blocks++);
  }
  for (int32_t s = 0; s < B; ++s) b.seqs.push_back({b.tables[static_cast<size_t>(s)], kPrefix + kUnique, s, 1});
  return b;
}

void plan_decode(benchmark::State& state, bool shared) {
  const int32_t B = static_cast<int32_t>(state.range(0));
  const int32_t max_q = static_cast<int32_t>(state.range(1));
  const bool verify = state.range(2) != 0;
  const DecodeBatch batch = make_batch(B, shared);
  Planner planner({kBlockSize, batch.num_blocks, 0, max_q, verify});
  AttentionPlan plan;
  planner.build(batch.seqs, B, plan);  // warm: buffers reach their steady-state capacity
  for (auto _ : state) {
    planner.build(batch.seqs, B, plan);
    benchmark::DoNotOptimize(plan.items.data());
  }
  state.counters["items"] = static_cast<double>(plan.items.size());
  state.counters["nodes"] = static_cast<double>(plan.num_nodes);
  state.counters["kv_read_Mtok"] = static_cast<double>(plan.kv_tokens_read()) / 1e6;
}

void BM_PlanDecodeShared(benchmark::State& state) { plan_decode(state, true); }
void BM_PlanDecodePrivate(benchmark::State& state) { plan_decode(state, false); }

void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t verify : {1, 0})
    for (int64_t max_q : {0, 64})
      for (int64_t B : {256, 1024, 4096}) b->Args({B, max_q, verify});
  b->ArgNames({"B", "max_q", "verify"})->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_PlanDecodeShared)->Apply(sizes);
BENCHMARK(BM_PlanDecodePrivate)->Apply(sizes);

}  // namespace
}  // namespace canopy

BENCHMARK_MAIN();
