// The engine's step loop on tiny models: greedy output equals transformers' goldens, sharing on
// and off give identical samples, EOS and max_tokens stop, a small KV cache still completes, and
// bad requests give clear errors.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "canopy/engine.h"
#include "core/error.h"
#include "testing/testing.h"

namespace canopy {
namespace {

std::string model_dir(const char* name) { return testing::source_dir() + "/tests/data/models/" + name; }

struct Golden {
  std::vector<int32_t> prompt, greedy;
};

std::vector<Golden> goldens(const char* name) {
  std::ifstream f(model_dir(name) + "/golden.json");
  const auto j = nlohmann::json::parse(f);
  std::vector<Golden> out;
  for (const auto& c : j.at("cases"))
    out.push_back({c.at("prompt").get<std::vector<int32_t>>(), c.at("greedy").get<std::vector<int32_t>>()});
  return out;
}

EngineOptions options_for(const std::string& path, bool sharing = true) {
  EngineOptions o;
  o.model_path = path;
  o.prefix_sharing = sharing;
  o.kv_cache_bytes = 8 << 20;
  o.max_step_tokens = 64;
  o.max_step_sequences = 32;
  return o;
}

TEST(Engine, GreedyBatchEqualsTransformers) {
  const auto engine = Engine::create(options_for(model_dir("tiny-llama")));
  const auto cases = goldens("tiny-llama");
  std::vector<GenerateRequest> requests;
  for (const auto& g : cases) {
    GenerateRequest r{g.prompt, {}};
    r.params.temperature = 0.0f;
    r.params.max_tokens = static_cast<int32_t>(g.greedy.size());
    r.params.ignore_eos = true;
    requests.push_back(r);
  }
  const auto results = engine->generate(requests);
  ASSERT_EQ(results.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_EQ(results[i].samples.size(), 1u);
    EXPECT_EQ(results[i].samples[0].tokens, cases[i].greedy) << "request " << i;
    EXPECT_EQ(results[i].samples[0].finish, FinishReason::Length);
    for (float lp : results[i].samples[0].logprobs) EXPECT_LE(lp, 0.0f);
  }
  EXPECT_EQ(engine->stats().generated_tokens, 3 * 40);
}

TEST(Engine, StopsAtEndOfSequence) {
  // tiny-llama-gguf's third golden continuation reaches its EOS token (id 2) at step 5.
  const auto engine = Engine::create(options_for(model_dir("tiny-llama-gguf") + "/model.gguf"));
  const Golden g = goldens("tiny-llama-gguf").at(2);
  ASSERT_EQ(g.greedy.at(5), 2);
  GenerateRequest r{g.prompt, {}};
  r.params.temperature = 0.0f;
  r.params.max_tokens = 30;
  const auto result = engine->generate({r}).at(0).samples.at(0);
  EXPECT_EQ(result.finish, FinishReason::Stop);
  EXPECT_EQ(result.tokens, std::vector<int32_t>(g.greedy.begin(), g.greedy.begin() + 5));
}

// n samples of prompts that share a long prefix: identical tokens with prefix sharing on (forks,
// cached prefix blocks, shared attention) and off (private copies), and sharing computes fewer
// prefill tokens.
TEST(Engine, PrefixSharingOnAndOffGiveIdenticalSamples) {
  std::mt19937_64 rng(testing::test_seed());
  std::uniform_int_distribution<int32_t> token(6, 511);
  std::vector<int32_t> system(37);
  for (auto& t : system) t = token(rng);
  std::vector<GenerateRequest> requests;
  for (int i = 0; i < 3; ++i) {
    GenerateRequest r{system, {}};
    for (int j = 0; j < 3 + 4 * i; ++j) r.prompt.push_back(token(rng));
    r.params.n = 4;
    r.params.max_tokens = 12;
    r.params.temperature = 0.9f;
    r.params.top_p = 0.95f;
    r.params.top_k = 50;
    r.params.seed = 7 + static_cast<uint64_t>(i);
    r.params.ignore_eos = true;
    requests.push_back(r);
  }
  const auto shared_engine = Engine::create(options_for(model_dir("tiny-qwen2"), true));
  const auto private_engine = Engine::create(options_for(model_dir("tiny-qwen2"), false));
  const auto shared = shared_engine->generate(requests);
  const auto separate = private_engine->generate(requests);
  bool samples_differ = false;
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_EQ(shared[i].samples.size(), 4u);
    for (size_t s = 0; s < 4; ++s) {
      EXPECT_EQ(shared[i].samples[s].tokens, separate[i].samples[s].tokens) << "request " << i << " sample " << s;
      EXPECT_EQ(shared[i].samples[s].tokens.size(), 12u);
      samples_differ |= shared[i].samples[s].tokens != shared[i].samples[0].tokens;
    }
  }
  EXPECT_TRUE(samples_differ) << "n samples at temperature 0.9 should not all be equal";
  EXPECT_LT(shared_engine->stats().prefill_tokens_computed, private_engine->stats().prefill_tokens_computed);
  EXPECT_EQ(private_engine->stats().prefill_tokens_computed, shared_engine->stats().prompt_tokens);

  // The same call again gives the same samples (seeded), whatever ran before.
  const auto again = shared_engine->generate(requests);
  for (size_t i = 0; i < requests.size(); ++i)
    for (size_t s = 0; s < 4; ++s) EXPECT_EQ(again[i].samples[s].tokens, shared[i].samples[s].tokens);
}

// A KV cache that holds one request at a time: requests wait for admission and still complete.
TEST(Engine, SmallKvCacheServesRequestsInTurn) {
  auto o = options_for(model_dir("tiny-llama"));
  o.block_size = 4;
  o.kv_cache_bytes = 20 * 2 * 2 * 2 * 64 * 4 * 4;  // 20 blocks of 4 tokens (2 layers, 2 KV heads, dim 64)
  const auto engine = Engine::create(o);
  const auto cases = goldens("tiny-llama");
  std::vector<GenerateRequest> requests;
  for (const auto& g : cases) {
    GenerateRequest r{g.prompt, {}};
    r.params.temperature = 0.0f;
    r.params.max_tokens = 40;
    r.params.ignore_eos = true;
    requests.push_back(r);
  }
  const auto results = engine->generate(requests);
  for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(results[i].samples[0].tokens, cases[i].greedy);

  requests[0].params.n = 8;  // 8 x 53 tokens cannot fit 80 slots
  EXPECT_THROW(engine->generate({requests[0]}), Error);
  EXPECT_EQ(engine->generate({requests[1]}).at(0).samples.at(0).tokens, cases[1].greedy);  // still usable
}

TEST(Engine, RejectsBadRequestsWithClearErrors) {
  const auto engine = Engine::create(options_for(model_dir("tiny-qwen2")));
  const auto message = [&](GenerateRequest r) {
    try {
      engine->generate({r});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{}, {}}).find("prompt is empty"), std::string::npos);
  EXPECT_NE(message({{1, 512}, {}}).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(message({std::vector<int32_t>(1024, 7), {}}).find("context"), std::string::npos);
  GenerateRequest bad{{1, 2}, {}};
  bad.params.top_p = 0.0f;
  EXPECT_NE(message(bad).find("top_p"), std::string::npos);
  bad.params = {};
  bad.params.temperature = -1.0f;
  EXPECT_NE(message(bad).find("temperature"), std::string::npos);
}

TEST(Engine, BadModelPathsAndDevices) {
  const auto message = [](EngineOptions o) {
    try {
      Engine::create(o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(options_for("/nonexistent/model")).find("does not exist"), std::string::npos);
  testing::TempDir dir;
  EXPECT_NE(message(options_for(dir.path())).find("config.json"), std::string::npos);
  testing::write_file(dir.file("model.bin"), "x");
  EXPECT_NE(message(options_for(dir.file("model.bin"))).find("neither"), std::string::npos);
  auto o = options_for(model_dir("tiny-qwen2"));
  o.device = "tpu";
  EXPECT_NE(message(o).find("unknown device 'tpu'"), std::string::npos);
}

}  // namespace
}  // namespace canopy

namespace canopy {
namespace {

// A batch shaped as a 3-level tree (instructions -> documents -> questions), n samples each: with
// prefix sharing, the engine prefills every forest node once, so the tokens it computes equal the
// forest's optimum up to block rounding (exactly, at block size 1), while greedy tokens equal
// those of the baseline that prefills every prompt in full.
TEST(Engine, ThreeLevelTreePrefillsEachNodeOnce) {
  std::mt19937_64 rng(testing::test_seed());
  std::uniform_int_distribution<int32_t> token(6, 511);
  auto run = [&](int32_t n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& t : v) t = token(rng);
    return v;
  };
  const std::vector<int32_t> instructions = run(29);
  std::vector<GenerateRequest> requests;
  int64_t optimum = static_cast<int64_t>(instructions.size());
  for (int d = 0; d < 3; ++d) {
    const std::vector<int32_t> document = run(23 + 4 * d);
    optimum += static_cast<int64_t>(document.size());
    for (int q = 0; q < 3; ++q) {
      GenerateRequest r{instructions, {}};
      r.prompt.insert(r.prompt.end(), document.begin(), document.end());
      const std::vector<int32_t> question = run(5 + q);
      optimum += static_cast<int64_t>(question.size());
      r.prompt.insert(r.prompt.end(), question.begin(), question.end());
      r.params.n = 2;
      r.params.max_tokens = 6;
      r.params.temperature = 0.0f;
      r.params.ignore_eos = true;
      requests.push_back(r);
    }
  }
  for (int32_t block_size : {1, 16}) {
    EngineOptions o = options_for(model_dir("tiny-llama"), true);
    o.block_size = block_size;
    const auto shared_engine = Engine::create(o);
    o.prefix_sharing = false;
    const auto private_engine = Engine::create(o);
    const auto shared = shared_engine->generate(requests);
    const auto separate = private_engine->generate(requests);
    for (size_t i = 0; i < requests.size(); ++i)
      for (size_t s = 0; s < 2; ++s)
        EXPECT_EQ(shared[i].samples[s].tokens, separate[i].samples[s].tokens) << "request " << i << " sample " << s;
    const EngineStats st = shared_engine->stats();
    EXPECT_EQ(st.unique_prompt_tokens, optimum);
    EXPECT_EQ(private_engine->stats().prefill_tokens_computed, st.prompt_tokens);
    // Reuse is by whole blocks: a request recomputes at most a block's worth of its shared prefix.
    EXPECT_GE(st.prefill_tokens_computed, optimum) << "block size " << block_size;
    RecordProperty("prefill_bs" + std::to_string(block_size), std::to_string(st.prefill_tokens_computed));
    EXPECT_LE(st.prefill_tokens_computed, optimum + static_cast<int64_t>(requests.size()) * (block_size - 1))
        << "block size " << block_size;
  }
}

}  // namespace
}  // namespace canopy
