// A sequential reference of the GPU sampler's arithmetic (kernels/sampling.h): the same fixed-point
// masses, the same kept sets (by sorting instead of radix selection), the same draw. The emulated
// kernel (whose expf is the host's) must agree exactly; the GPU (whose expf may differ by an ulp)
// agrees except when a draw lands within an ulp of a boundary.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "sampling.h"
#include "sampling/random.h"

namespace canopy::testing {

inline float reference_logit_value(float x) {
  if (std::isnan(x)) return -std::numeric_limits<float>::infinity();
  if (x == std::numeric_limits<float>::infinity()) return std::numeric_limits<float>::max();
  return x;
}

// log softmax(row)[token] at temperature 1, in double (NaN as -inf).
inline float token_logprob_reference(const float* row, int64_t vocab, int token) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < vocab; ++i) m = std::max(m, static_cast<double>(reference_logit_value(row[i])));
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(reference_logit_value(row[i])) - m);
  return static_cast<float>(reference_logit_value(row[token]) - m - std::log(sum));
}

// Returns (token, logprob).
inline kernels::SampleResult reference_sample(const float* row, int vocab, const kernels::SamplerRow& cfg) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  float m = neg_inf;
  int argmax = 0;
  for (int i = 0; i < vocab; ++i) {
    const float x = reference_logit_value(row[i]);
    if (x > m) {
      m = x;
      argmax = i;
    }
  }
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) {
    const float x = reference_logit_value(row[i]);
    if (x != neg_inf) sum += std::exp(static_cast<double>(x) - m);
  }
  const auto logprob = [&](int t) {
    if (m == neg_inf) return neg_inf;
    return static_cast<float>(static_cast<double>(reference_logit_value(row[t])) - m - std::log(sum));
  };
  if (cfg.temperature <= 0.0f || cfg.top_k == 1 || m == neg_inf || vocab == 1) return {argmax, logprob(argmax)};

  const float inv_t = 1.0f / cfg.temperature;
  const float scale = std::ldexp(1.0f, kernels::sampling_mass_shift(vocab));
  std::vector<uint64_t> mass(static_cast<size_t>(vocab));
  for (int i = 0; i < vocab; ++i)
    mass[static_cast<size_t>(i)] =
        static_cast<uint64_t>(std::exp((reference_logit_value(row[i]) - m) * inv_t) * scale);
  std::vector<int> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    float xa = reference_logit_value(row[a]), xb = reference_logit_value(row[b]);
    if (xa == 0.0f) xa = 0.0f;  // -0 == +0
    if (xb == 0.0f) xb = 0.0f;
    return xa > xb;
  });
  size_t keep = order.size();
  if (cfg.top_k > 0 && cfg.top_k < vocab) keep = static_cast<size_t>(cfg.top_k);
  if (cfg.top_p < 1.0f) {
    uint64_t total = 0;
    for (size_t j = 0; j < keep; ++j) total += mass[static_cast<size_t>(order[j])];
    uint64_t target = static_cast<uint64_t>(std::ceil(static_cast<double>(cfg.top_p) * static_cast<double>(total)));
    target = std::clamp<uint64_t>(target, 1, total);
    uint64_t cum = 0;
    size_t j = 0;
    while (j < keep && cum < target) cum += mass[static_cast<size_t>(order[j++])];
    keep = j;
  }
  std::vector<char> kept(static_cast<size_t>(vocab), 0);
  for (size_t j = 0; j < keep; ++j) kept[static_cast<size_t>(order[j])] = 1;
  uint64_t total = 0;
  for (int i = 0; i < vocab; ++i)
    if (kept[static_cast<size_t>(i)]) total += mass[static_cast<size_t>(i)];
  const double u = random_uniform(cfg.seed, cfg.counter);
  uint64_t threshold = static_cast<uint64_t>(u * static_cast<double>(total));
  if (threshold >= total) threshold = total - 1;
  uint64_t cum = 0;
  for (int i = 0; i < vocab; ++i) {
    if (!kept[static_cast<size_t>(i)]) continue;
    cum += mass[static_cast<size_t>(i)];
    if (cum > threshold) return {i, logprob(i)};
  }
  return {argmax, logprob(argmax)};
}

}  // namespace canopy::testing
