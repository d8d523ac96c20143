// canopy's forward pass against Hugging Face transformers on tiny random-weight models
// (tools/make_tiny_models.py): logits at every position within a measured f32 tolerance, and
// greedy tokens equal for 40 steps. Also: the same logits whatever the batch and chunking.
#include <gtest/gtest.h>

#include <cstdio>

#include "backend/cpu/cpu_backend.h"
#include "model/llama.h"
#include "model/step_runner.h"

namespace canopy {
namespace {

using testing::GoldenCase;
using testing::StepRunner;

// Measured: the largest |canopy - transformers| over all logits of the four tiny models is
// 1.1e-5 (logits of magnitude up to ~10). The bound is ~10x that, and still catches real errors:
// dropping llama3 rope scaling alone moves the logits by 1.5e-2 to 1e-1.
constexpr float kLogitTolerance = 1e-4f;

struct ModelCase {
  const char* folder;  // under tests/data/models
  const char* file;    // the path to load inside it ("" for the folder itself)
};

class GoldenTest : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override {
    const std::string dir = testing::source_dir() + "/tests/data/models/" + GetParam().folder;
    const std::string path = std::string(GetParam().file).empty() ? dir : dir + "/" + GetParam().file;
    backend_ = make_cpu_backend();
    model_ = LlamaModel::load(path, *backend_, StepCapacity{128, 128});
    cases_ = testing::load_goldens(dir);
    ASSERT_FALSE(cases_.empty());
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<LlamaModel> model_;
  std::vector<GoldenCase> cases_;
};

// Prefill of the prompt, then 40 greedy decode steps, one sequence at a time.
TEST_P(GoldenTest, PrefillAndGreedyDecodeMatchTransformers) {
  float worst = 0.0f;
  for (const GoldenCase& g : cases_) {
    StepRunner runner(*model_, 1, 128);
    auto logits = runner.step({{0, g.prompt}});
    ASSERT_EQ(logits.size(), g.prompt.size());
    for (size_t p = 0; p < g.prompt.size(); ++p) {
      const float err = testing::max_abs_diff(logits[p], g.logits[p]);
      worst = std::max(worst, err);
      EXPECT_LE(err, kLogitTolerance) << "prompt position " << p;
    }
    int32_t next = testing::argmax_of(logits.back());
    for (size_t s = 0; s < g.greedy.size(); ++s) {
      ASSERT_EQ(next, g.greedy[s]) << "greedy step " << s;
      logits = runner.step({{0, {next}}});
      if (s + 1 == g.greedy.size()) break;
      const float err = testing::max_abs_diff(logits[0], g.logits[g.prompt.size() + s]);
      worst = std::max(worst, err);
      EXPECT_LE(err, kLogitTolerance) << "decode step " << s;
      next = testing::argmax_of(logits[0]);
    }
  }
  std::printf("[ measured ] %s: max |logit - transformers| = %.3g\n", GetParam().folder, worst);
  ::testing::Test::RecordProperty("max_logit_error", std::to_string(worst));
}

// Every prompt in one step, then decode steps mixing all sequences, and one prompt fed in
// uneven chunks alongside: the logits equal the golden ones (batch composition changes nothing).
TEST_P(GoldenTest, BatchedAndChunkedStepsMatchTransformers) {
  const int n = static_cast<int>(cases_.size());
  StepRunner runner(*model_, n + 1, 128);
  std::vector<StepRunner::Chunk> chunks;
  for (int i = 0; i < n; ++i) chunks.push_back({i, cases_[static_cast<size_t>(i)].prompt});
  auto logits = runner.step(chunks);
  size_t row = 0;
  for (int i = 0; i < n; ++i)
    for (size_t p = 0; p < cases_[static_cast<size_t>(i)].prompt.size(); ++p, ++row)
      EXPECT_LE(testing::max_abs_diff(logits[row], cases_[static_cast<size_t>(i)].logits[p]), kLogitTolerance);

  // Sequence n replays case 0 in chunks of 3 tokens while the others decode their goldens.
  const GoldenCase& chunked = cases_[0];
  std::vector<int32_t> replay = chunked.prompt;
  replay.insert(replay.end(), chunked.greedy.begin(), chunked.greedy.end() - 1);
  size_t replayed = 0;
  for (size_t s = 0; s + 1 < chunked.greedy.size(); ++s) {
    chunks.clear();
    for (int i = 0; i < n; ++i) chunks.push_back({i, {cases_[static_cast<size_t>(i)].greedy[s]}});
    const size_t take = std::min<size_t>(3, replay.size() - replayed);
    if (take > 0)
      chunks.push_back({n, std::vector<int32_t>(replay.begin() + static_cast<ptrdiff_t>(replayed),
                                                replay.begin() + static_cast<ptrdiff_t>(replayed + take))});
    logits = runner.step(chunks);
    for (int i = 0; i < n; ++i) {
      const GoldenCase& g = cases_[static_cast<size_t>(i)];
      EXPECT_LE(testing::max_abs_diff(logits[static_cast<size_t>(i)], g.logits[g.prompt.size() + s]), kLogitTolerance)
          << "sequence " << i << " step " << s;
    }
    for (size_t j = 0; j < take; ++j)
      EXPECT_LE(testing::max_abs_diff(logits[static_cast<size_t>(n) + j], chunked.logits[replayed + j]),
                kLogitTolerance)
          << "chunked position " << replayed + j;
    replayed += take;
  }
  EXPECT_EQ(replayed, replay.size());
}

INSTANTIATE_TEST_SUITE_P(TinyModels, GoldenTest,
                         ::testing::Values(ModelCase{"tiny-llama", ""}, ModelCase{"tiny-qwen2", ""},
                                           ModelCase{"tiny-llama-gguf", "model.gguf"},
                                           ModelCase{"tiny-qwen2-gguf", "model.gguf"}),
                         [](const auto& param_info) {
                           std::string name = param_info.param.folder;
                           for (char& ch : name)
                             if (ch == '-') ch = '_';
                           return name;
                         });

}  // namespace
}  // namespace canopy
