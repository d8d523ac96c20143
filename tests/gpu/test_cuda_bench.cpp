// Whole decode steps of a real-size model with random weights (LlamaModel::load_random on
// tools/configs/llama-3-8b.json), op by op and as CUDA graphs. A measurement, not a check: it runs
// only with CANOPY_GPU_BENCH=1 (about a minute, ~25 GB of GPU memory) and prints its numbers.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>

#include "cuda_test_support.h"
#include "decode_driver.h"
#include "model/llama.h"

namespace canopy::testing {
namespace {

TEST(CudaBench, RandomLlama3_8BDecodeSteps) {
  CANOPY_SKIP_WITHOUT_GPU();
  if (std::getenv("CANOPY_GPU_BENCH") == nullptr) GTEST_SKIP() << "a benchmark: set CANOPY_GPU_BENCH=1 to run it";
  const std::string config = source_dir() + "/tools/configs/llama-3-8b.json";
  const int context = 128;
  for (const bool graphs : {false, true}) {
    const auto backend = cuda_backend(graphs);
    const auto t0 = std::chrono::steady_clock::now();
    const auto model = LlamaModel::load_random(config, *backend, StepCapacity{512, 256}, 1);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ measured ] random Llama-3-8B made on the GPU in %.2f s\n", load_s);
    for (const int B : {1, 8, 64, 256}) {
      DecodeDriver d(*model, B, context + 64);
      for (int s0 = 0; s0 < B; s0 += 4) {  // prefill: 4 sequences (512 tokens) per step
        std::vector<DecodeDriver::Chunk> c;
        for (int s = s0; s < std::min(B, s0 + 4); ++s) c.push_back({s, std::vector<int32_t>(context, 1000 + s)});
        d.step(c);
      }
      std::vector<DecodeDriver::Chunk> c;
      for (int s = 0; s < B; ++s) c.push_back({s, {17}});
      for (int w = 0; w < 3; ++w) d.step(c);
      d.synchronize();
      const int steps = 20;
      const auto t1 = std::chrono::steady_clock::now();
      for (int k = 0; k < steps; ++k) d.step(c);
      d.synchronize();  // not logits(): copying B x 128K floats to the host is not part of a step
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count() / steps;
      std::printf("[ measured ] Llama-3-8B (random), %s, decode step of %3d sequences at context ~%d: %.3f ms "
                  "(%.0f tokens/s; %lld steps replayed, %lld eager so far)\n",
                  graphs ? "CUDA graphs" : "op by op  ", B, context, ms, B * 1000.0 / ms,
                  static_cast<long long>(model->graph_stats().replays),
                  static_cast<long long>(model->graph_stats().eager_steps));
    }
    if (graphs) {
      EXPECT_GT(model->graph_stats().replays, 0);
    }
  }
}

}  // namespace
}  // namespace canopy::testing
