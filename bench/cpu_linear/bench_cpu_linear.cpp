// The CPU backend's linear layer, y [T, N] = x [T, K] @ w [N, K]^T in f32, on SmolLM2-135M's shapes
// (hidden 576, intermediate 1536): T = 1 is a decode step of one sequence (weight-bandwidth bound),
// T = 64 and 512 are prefill chunks (compute bound). Reports GFLOP/s (2 T N K per call).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "backend/cpu/cpu_kernels.h"

namespace canopy {
namespace {

void linear(benchmark::State& state) {
  const int64_t T = state.range(0), N = state.range(1), K = state.range(2);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(T * K)), w(static_cast<size_t>(N * K)), y(static_cast<size_t>(T * N));
  for (float& v : x) v = u(rng);
  for (float& v : w) v = u(rng);
  for (auto _ : state) {
    cpu::linear_f32(x.data(), w.data(), nullptr, y.data(), T, N, K);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(T * N * K), benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

BENCHMARK(linear)
    ->ArgNames({"T", "N", "K"})
    ->Args({1, 3072, 576})
    ->Args({64, 3072, 576})
    ->Args({512, 3072, 576})
    ->Args({512, 576, 1536})
    ->Args({512, 49152, 576})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace canopy
