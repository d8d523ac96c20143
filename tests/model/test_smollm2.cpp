// The real default model, SmolLM2-135M-Instruct (Q4_1 GGUF): canopy's greedy continuations of
// fixed prompts equal those of transformers loading the same file (tools/make_smollm2_goldens.py).
// Skips when the model has not been fetched (scripts/fetch_model.sh).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "model/llama.h"
#include "model/step_runner.h"

namespace canopy {
namespace {

// Measured: the chosen token's logit differs from transformers' by at most 2.7e-5 over the 128
// steps (logits of magnitude ~10-30; both dequantize the weights identically, what remains is f32
// summation order over 30 layers). The bound is ~40x that.
constexpr float kLogitTolerance = 1e-3f;

TEST(SmolLM2, GreedyContinuationsMatchTransformers) {
  const std::string path = testing::default_model_path();
  if (path.empty()) GTEST_SKIP() << "SmolLM2-135M-Instruct not found: run scripts/fetch_model.sh (or set CANOPY_MODEL)";
  std::ifstream file(testing::source_dir() + "/tests/data/smollm2_golden.json");
  const nlohmann::json golden = nlohmann::json::parse(file);

  // One thread: ctest runs test processes side by side, and OpenMP teams that spin at barriers
  // slow down badly when they oversubscribe the cores. Results do not depend on the thread count.
  const auto backend = make_cpu_backend(1);
  const auto model = LlamaModel::load(path, *backend, StepCapacity{256, 256});
  EXPECT_EQ(model->config().architecture, "LlamaForCausalLM");
  EXPECT_EQ(model->config().num_layers, 30);
  EXPECT_TRUE(model->config().tie_word_embeddings);

  float worst = 0.0f;
  for (const auto& c : golden.at("cases")) {
    const auto prompt = c.at("prompt").get<std::vector<int32_t>>();
    const auto greedy = c.at("greedy").get<std::vector<int32_t>>();
    const auto greedy_logits = c.at("greedy_logits").get<std::vector<float>>();
    const auto margins = c.at("greedy_margins").get<std::vector<float>>();
    testing::StepRunner runner(*model, 1, static_cast<int>(prompt.size() + greedy.size()));
    std::vector<float> logits = runner.step({{0, prompt}}).back();
    for (size_t s = 0; s < greedy.size(); ++s) {
      const int32_t next = testing::argmax_of(logits);
      ASSERT_EQ(next, greedy[s]) << "prompt '" << c.at("text").get<std::string>() << "' step " << s
                                 << " (transformers' margin there: " << margins[s] << ")";
      const float err = std::abs(logits[static_cast<size_t>(next)] - greedy_logits[s]);
      worst = std::max(worst, err);
      EXPECT_LE(err, kLogitTolerance) << "step " << s;
      if (s + 1 < greedy.size()) logits = runner.step({{0, {next}}})[0];
    }
  }
  std::printf("[ measured ] SmolLM2-135M: max |chosen logit - transformers| = %.3g\n", worst);
}

}  // namespace
}  // namespace canopy
