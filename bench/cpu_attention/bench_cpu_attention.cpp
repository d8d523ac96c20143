// One layer of decode attention on the CPU reference kernels (the CPU backend's attention):
// B sequences under a shared prefix of P tokens with U unique tokens each, SmolLM2-135M's heads
// (Hq 9, Hkv 3, D 64), f32. Shared: the prefix's blocks are shared and read once per query tile;
// private: every sequence holds its own copy (--no-prefix-sharing). Reports the KV bytes the plan
// reads per step and the rate at which it reads them.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "attention/cpu_attention.h"
#include "attention/planner.h"

namespace canopy {
namespace {

constexpr int32_t kBlockSize = 16;
constexpr int32_t kUnique = 64;
const AttentionShape kShape{9, 3, 64, 0.125f};

void decode_layer(benchmark::State& state, bool shared) {
  const int32_t B = static_cast<int32_t>(state.range(0));
  const int32_t P = static_cast<int32_t>(state.range(1));
  const int32_t prefix_blocks = P / kBlockSize, own_blocks = kUnique / kBlockSize;
  int32_t next = 0;
  std::vector<int32_t> prefix(static_cast<size_t>(prefix_blocks));
  for (auto& b : prefix) b = next++;
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(B));
  for (auto& t : tables) {
    if (shared) {
      t = prefix;
    } else {
      for (int32_t i = 0; i < prefix_blocks; ++i) t.push_back(next++);
    }
    for (int32_t i = 0; i < own_blocks; ++i) t.push_back(next++);
  }
  std::vector<PlannerSequence> seqs;
  for (int32_t s = 0; s < B; ++s) seqs.push_back({tables[static_cast<size_t>(s)], P + kUnique, s, 1});

  const KvLayout layout{next, kBlockSize, kShape.num_kv_heads, kShape.head_dim};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> k(layout.layer_elems()), v(layout.layer_elems());
  std::vector<float> q(static_cast<size_t>(B) * kShape.num_q_heads * kShape.head_dim);
  for (auto* vec : {&k, &v, &q})
    for (auto& x : *vec) x = dist(rng);
  std::vector<float> out(q.size());

  Planner planner({kBlockSize, next, 2048, 64, false});
  AttentionPlan plan;
  planner.build(seqs, B, plan);
  AttentionPartials partials;
  for (auto _ : state) {
    run_attention_plan_cpu(plan, kShape, layout, q.data(), k.data(), v.data(), partials, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  const double kv_bytes = static_cast<double>(plan.kv_tokens_read()) * 2.0 * kShape.num_kv_heads * kShape.head_dim * 4.0;
  state.counters["kv_MB_per_step"] = kv_bytes / 1e6;
  state.counters["kv_read_rate"] = benchmark::Counter(kv_bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["items"] = static_cast<double>(plan.items.size());
}

void BM_CpuDecodeShared(benchmark::State& state) { decode_layer(state, true); }
void BM_CpuDecodePrivate(benchmark::State& state) { decode_layer(state, false); }

void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t B : {16, 64}) b->Args({B, 1024});
  b->ArgNames({"B", "P"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_CpuDecodeShared)->Apply(sizes);
BENCHMARK(BM_CpuDecodePrivate)->Apply(sizes);

}  // namespace
}  // namespace canopy

BENCHMARK_MAIN();
