// Sampling: greedy, temperature, top-k, top-p; deterministic per (seed, counter); frequencies
// follow the processed distribution.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <numeric>

#include "canopy/sampling_params.h"
#include "core/error.h"
#include "sampling/random.h"
#include "sampling/sampler.h"
#include "testing/testing.h"

namespace canopy {
namespace {

SamplingRow row(float temperature, int32_t top_k = 0, float top_p = 1.0f, uint64_t seed = 1, uint64_t counter = 0) {
  return SamplingRow{temperature, top_k, top_p, seed, counter};
}

TEST(Sampler, GreedyTakesTheLargestLowestIdOnTies) {
  SamplerScratch scratch;
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(sample_row(logits, row(0.0f), scratch).token, 1);
  EXPECT_EQ(sample_row(logits, row(1.0f, 1), scratch).token, 1);  // top_k = 1 is greedy too
  const std::vector<float> with_nan = {NAN, 0.1f, 0.3f};
  EXPECT_EQ(argmax(with_nan), 2);
}

TEST(Sampler, LogprobIsLogSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  const double z = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(token_logprob(logits, 0), 1.0 - z, 1e-6);
  SamplerScratch scratch;
  EXPECT_NEAR(sample_row(logits, row(0.0f), scratch).logprob, 3.0 - z, 1e-6);
}

TEST(Sampler, SameSeedAndCounterSameToken) {
  std::mt19937_64 rng(testing::test_seed());
  const auto logits = testing::random_floats(rng, 1000, -3.0f, 3.0f);
  SamplerScratch scratch;
  int differs = 0;
  for (uint64_t c = 0; c < 50; ++c) {
    const int32_t a = sample_row(logits, row(1.0f, 0, 0.9f, 42, c), scratch).token;
    EXPECT_EQ(a, sample_row(logits, row(1.0f, 0, 0.9f, 42, c), scratch).token);
    differs += a != sample_row(logits, row(1.0f, 0, 0.9f, 43, c), scratch).token;
  }
  EXPECT_GT(differs, 10);  // another seed draws another stream
}

// Empirical frequencies over many counters match softmax(logits / T) restricted to the kept set.
void check_frequencies(const std::vector<float>& logits, const SamplingRow& base, const std::vector<double>& expected) {
  SamplerScratch scratch;
  const int draws = 20000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    SamplingRow r = base;
    r.counter = static_cast<uint64_t>(i);
    ++counts[static_cast<size_t>(sample_row(logits, r, scratch).token)];
  }
  for (size_t t = 0; t < logits.size(); ++t) {
    const double f = static_cast<double>(counts[t]) / draws;
    const double sigma = std::sqrt(expected[t] * (1 - expected[t]) / draws);
    EXPECT_NEAR(f, expected[t], 5 * sigma + 1e-9) << "token " << t;
  }
}

TEST(Sampler, TemperatureTopKTopPFrequencies) {
  const std::vector<float> logits = {1.0f, 0.0f, 2.0f, -1.0f};
  const auto softmax = [&](float t, std::vector<bool> keep) {
    std::vector<double> p(logits.size(), 0.0);
    double sum = 0;
    for (size_t i = 0; i < p.size(); ++i)
      if (keep[i]) sum += (p[i] = std::exp(logits[i] / t));
    for (double& v : p) v /= sum;
    return p;
  };
  check_frequencies(logits, row(1.0f), softmax(1.0f, {true, true, true, true}));
  check_frequencies(logits, row(0.5f), softmax(0.5f, {true, true, true, true}));
  check_frequencies(logits, row(1.0f, 2), softmax(1.0f, {true, false, true, false}));
  // Probabilities at T = 1: 0.237, 0.087, 0.644, 0.032. top_p 0.8 keeps {2, 0} (0.644 < 0.8 <= 0.881).
  check_frequencies(logits, row(1.0f, 0, 0.8f), softmax(1.0f, {true, false, true, false}));
  // top_p 0.5: the first token alone reaches it.
  check_frequencies(logits, row(1.0f, 0, 0.5f), softmax(1.0f, {false, false, true, false}));
  // top_k 3 then top_p over the renormalized three (0.665, 0.245, 0.090; cumulative 0.665,
  // 0.910, 1): 0.9 keeps {2, 0}, 0.95 keeps {2, 0, 1}.
  check_frequencies(logits, row(1.0f, 3, 0.9f), softmax(1.0f, {true, false, true, false}));
  check_frequencies(logits, row(1.0f, 3, 0.95f), softmax(1.0f, {true, true, true, false}));
}

TEST(Sampler, NucleusOfALargeVocabulary) {
  // Many tokens: the nucleus search sorts in growing prefixes; the result must equal the full sort.
  std::mt19937_64 rng(testing::test_seed());
  const auto logits = testing::random_floats(rng, 50000, -2.0f, 2.0f);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)]; });
  double total = 0;
  for (float l : logits) total += std::exp(static_cast<double>(l) - 2.0);
  double cum = 0;
  size_t keep = 0;
  while (cum < 0.3 * total) cum += std::exp(static_cast<double>(logits[static_cast<size_t>(order[keep++])]) - 2.0);
  std::vector<bool> in_nucleus(logits.size(), false);
  for (size_t i = 0; i < keep; ++i) in_nucleus[static_cast<size_t>(order[i])] = true;
  SamplerScratch scratch;
  for (uint64_t c = 0; c < 20; ++c)
    EXPECT_TRUE(in_nucleus[static_cast<size_t>(sample_row(logits, row(1.0f, 0, 0.3f, 5, c), scratch).token)]);
}

TEST(Sampler, RandomStreamsAreUniform) {
  double sum = 0;
  for (uint64_t c = 0; c < 10000; ++c) {
    const double u = random_uniform(123, c);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.01);
  EXPECT_NE(sample_seed(1, 0), sample_seed(1, 1));
}

TEST(SamplingParams, ValidationNamesTheField) {
  const auto message = [](SamplingParams p) {
    try {
      validate_sampling_params(p);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("ok");
  };
  EXPECT_EQ(message({}), "ok");
  EXPECT_NE(message({.n = 0}).find("n = 0"), std::string::npos);
  EXPECT_NE(message({.max_tokens = 0}).find("max_tokens"), std::string::npos);
  EXPECT_NE(message({.temperature = NAN}).find("temperature"), std::string::npos);
  EXPECT_NE(message({.top_p = 1.5f}).find("top_p"), std::string::npos);
  EXPECT_NE(message({.top_k = -1}).find("top_k"), std::string::npos);
}

}  // namespace
}  // namespace canopy
