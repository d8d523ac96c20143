// The engine's callbacks and per-request checks: a token callback that returns false finishes its
// sample at once (FinishReason::Stop) while the others go on, the finish callback reports every
// sample exactly once with its reason, void callbacks still work, and check_request() throws what
// generate() would throw for that request alone, without running anything.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "canopy/engine.h"
#include "core/error.h"
#include "testing/testing.h"

namespace canopy {
namespace {

std::string tiny_llama() { return testing::source_dir() + "/tests/data/models/tiny-llama"; }

std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> golden_cases() {
  std::ifstream f(tiny_llama() + "/golden.json");
  const auto golden = nlohmann::json::parse(f);
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> out;
  for (const auto& c : golden.at("cases"))
    out.emplace_back(c.at("prompt").get<std::vector<int32_t>>(), c.at("greedy").get<std::vector<int32_t>>());
  return out;
}

EngineOptions small_options(bool sharing) {
  EngineOptions o;
  o.model_path = tiny_llama();
  o.prefix_sharing = sharing;
  o.kv_cache_bytes = 8 << 20;
  o.max_step_tokens = 64;
  o.max_step_sequences = 32;
  return o;
}

GenerateRequest greedy(const std::vector<int32_t>& prompt, int32_t n, int32_t max_tokens) {
  GenerateRequest r{prompt, {}};
  r.params.n = n;
  r.params.max_tokens = max_tokens;
  r.params.temperature = 0.0f;
  r.params.ignore_eos = true;
  return r;
}

TEST(EngineCallbacks, ReturningFalseStopsThatSampleOnly) {
  const auto cases = golden_cases();
  for (bool sharing : {true, false}) {
    const auto engine = Engine::create(small_options(sharing));
    // Request 0 sample 1 stops after its 3rd token, request 1 after its 5th; the rest run to 20.
    const std::vector<GenerateRequest> requests = {greedy(cases[0].first, 2, 20), greedy(cases[1].first, 1, 20)};
    std::map<std::pair<size_t, int32_t>, int32_t> seen;
    std::map<std::pair<size_t, int32_t>, FinishReason> finished;
    const TokenCallback on_token = [&](size_t r, int32_t s, int32_t) {
      const int32_t count = ++seen[{r, s}];
      return !((r == 0 && s == 1 && count == 3) || (r == 1 && count == 5));
    };
    const FinishCallback on_finish = [&](size_t r, int32_t s, FinishReason why) {
      EXPECT_TRUE(finished.emplace(std::make_pair(r, s), why).second) << "sample finished twice";
      EXPECT_EQ((seen[{r, s}]), (r == 0 && s == 1) ? 3 : r == 1 ? 5 : 20) << "finish before the last token";
    };
    const auto results = engine->generate(requests, on_token, on_finish);
    const auto prefix = [&](size_t c, size_t k) {
      return std::vector<int32_t>(cases[c].second.begin(), cases[c].second.begin() + static_cast<ptrdiff_t>(k));
    };
    EXPECT_EQ(results[0].samples[0].tokens, prefix(0, 20));
    EXPECT_EQ(results[0].samples[0].finish, FinishReason::Length);
    EXPECT_EQ(results[0].samples[1].tokens, prefix(0, 3));
    EXPECT_EQ(results[0].samples[1].finish, FinishReason::Stop);
    EXPECT_EQ(results[1].samples[0].tokens, prefix(1, 5));
    EXPECT_EQ(results[1].samples[0].finish, FinishReason::Stop);
    ASSERT_EQ(finished.size(), 3u);
    EXPECT_EQ((finished[{0, 0}]), FinishReason::Length);
    EXPECT_EQ((finished[{0, 1}]), FinishReason::Stop);
    EXPECT_EQ((finished[{1, 0}]), FinishReason::Stop);
    EXPECT_EQ(engine->stats().generated_tokens, 20 + 3 + 5);
  }
}

TEST(EngineCallbacks, FinishReportsEndOfSequence) {
  // tiny-llama-gguf's third golden continuation reaches its EOS token (id 2) at step 5; the first
  // runs to max_tokens.
  std::ifstream f(testing::source_dir() + "/tests/data/models/tiny-llama-gguf/golden.json");
  const auto golden = nlohmann::json::parse(f).at("cases");
  auto o = small_options(true);
  o.model_path = testing::source_dir() + "/tests/data/models/tiny-llama-gguf/model.gguf";
  const auto engine = Engine::create(o);
  std::vector<GenerateRequest> requests = {greedy(golden.at(0).at("prompt").get<std::vector<int32_t>>(), 1, 9),
                                           greedy(golden.at(2).at("prompt").get<std::vector<int32_t>>(), 1, 9)};
  for (auto& r : requests) r.params.ignore_eos = false;
  std::vector<std::vector<FinishReason>> reasons(requests.size());
  std::vector<int> tokens(requests.size(), 0);
  const auto results = engine->generate(
      requests, [&](size_t r, int32_t, int32_t) { tokens[r] += 1; },
      [&](size_t r, int32_t, FinishReason why) { reasons[r].push_back(why); });
  EXPECT_EQ(reasons[0], std::vector<FinishReason>{FinishReason::Length});
  EXPECT_EQ(reasons[1], std::vector<FinishReason>{FinishReason::Stop});
  EXPECT_EQ(tokens[0], 9);
  EXPECT_EQ(tokens[1], 5);  // the EOS token itself is not reported: it is not part of the output
  EXPECT_EQ(results[1].samples[0].tokens.size(), 5u);
}

TEST(EngineCallbacks, VoidCallbacksStillWork) {
  const auto cases = golden_cases();
  const auto engine = Engine::create(small_options(true));
  int tokens = 0;
  TokenCallback on_token;
  EXPECT_FALSE(on_token);
  on_token = [&](size_t, int32_t, int32_t) { ++tokens; };
  EXPECT_TRUE(on_token);
  const auto results = engine->generate({greedy(cases[0].first, 1, 7)}, on_token);
  EXPECT_EQ(tokens, 7);
  EXPECT_EQ(results[0].samples[0].tokens.size(), 7u);
}

TEST(EngineCallbacks, CheckRequestThrowsWhatGenerateWould) {
  auto o = small_options(true);
  o.block_size = 4;
  o.kv_cache_bytes = 20 * 2 * 2 * 2 * 64 * 4 * 4;  // 20 blocks of 4 tokens (2 layers, 2 KV heads, dim 64)
  const auto engine = Engine::create(o);
  const auto cases = golden_cases();
  const auto kind = [&](const GenerateRequest& r) -> std::string {
    try {
      engine->check_request(r);
    } catch (const CapacityError& e) {
      return std::string("capacity: ") + e.what();
    } catch (const Error& e) {
      return std::string("error: ") + e.what();
    }
    return "ok";
  };
  EXPECT_EQ(kind(greedy(cases[0].first, 1, 40)), "ok");
  EXPECT_EQ(kind(greedy({}, 1, 4)), "error: the prompt is empty");
  EXPECT_EQ(kind(greedy({1, 512}, 1, 4)), "error: token id 512 is outside the vocabulary [0, 512)");
  GenerateRequest bad = greedy({1, 2}, 1, 4);
  bad.params.top_p = 2.0f;
  EXPECT_EQ(kind(bad), "error: top_p = 2 is out of range (0, 1]");
  EXPECT_EQ(kind(greedy(std::vector<int32_t>(512, 7), 1, 4)),
            "capacity: the prompt has 512 tokens, the model's context is 512");
  const std::string kv = kind(greedy(cases[0].first, 8, 40));  // 8 x 47 tokens cannot fit 80 slots
  EXPECT_EQ(kv.rfind("capacity: its 8 samples of up to 40 tokens after a 7-token prompt need up to", 0), 0u) << kv;
  // generate() names the request in its messages.
  try {
    engine->generate({greedy(cases[0].first, 1, 4), greedy({1, 512}, 1, 4)});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "request 1: token id 512 is outside the vocabulary [0, 512)");
  }
}

}  // namespace
}  // namespace canopy
