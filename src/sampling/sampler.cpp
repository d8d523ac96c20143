#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "sampling/random.h"

namespace canopy {
namespace {

// NaN logits (a broken model) are treated as -inf: never chosen while anything else can be.
inline float key(float v) { return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v; }

}  // namespace

int32_t argmax(std::span<const float> logits) {
  CANOPY_ASSERT(!logits.empty());
  int32_t best = 0;
  float best_v = key(logits[0]);
  for (size_t i = 1; i < logits.size(); ++i) {
    const float v = key(logits[i]);
    if (v > best_v) {
      best_v = v;
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

float token_logprob(std::span<const float> logits, int32_t token) {
  CANOPY_ASSERT(token >= 0 && static_cast<size_t>(token) < logits.size());
  float m = -std::numeric_limits<float>::infinity();
  for (float v : logits) m = std::max(m, key(v));
  if (m == -std::numeric_limits<float>::infinity()) return m;
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(key(v)) - m);
  return static_cast<float>(static_cast<double>(key(logits[static_cast<size_t>(token)])) - m - std::log(sum));
}

SampledToken sample_row(std::span<const float> logits, const SamplingRow& row, SamplerScratch& scratch) {
  const int32_t V = static_cast<int32_t>(logits.size());
  CANOPY_ASSERT(V > 0);
  SampledToken out;
  if (row.temperature <= 0.0f || row.top_k == 1) {
    out.token = argmax(logits);
    out.logprob = token_logprob(logits, out.token);
    return out;
  }
  // Candidates in a total order: larger logit first, lower id among equals.
  const auto better = [&logits](int32_t a, int32_t b) {
    const float ka = key(logits[static_cast<size_t>(a)]);
    const float kb = key(logits[static_cast<size_t>(b)]);
    return ka > kb || (ka == kb && a < b);
  };
  auto& ids = scratch.ids;
  ids.resize(static_cast<size_t>(V));
  std::iota(ids.begin(), ids.end(), 0);
  if (row.top_k > 0 && row.top_k < V) {
    std::nth_element(ids.begin(), ids.begin() + row.top_k, ids.end(), better);
    ids.resize(static_cast<size_t>(row.top_k));
  }
  float max_logit = -std::numeric_limits<float>::infinity();
  for (int32_t id : ids) max_logit = std::max(max_logit, key(logits[static_cast<size_t>(id)]));
  if (max_logit == -std::numeric_limits<float>::infinity()) {
    out.token = argmax(logits);  // nothing has mass: fall back to the deterministic choice
    out.logprob = token_logprob(logits, out.token);
    return out;
  }
  const double inv_t = 1.0 / static_cast<double>(row.temperature);
  const auto weight = [&](int32_t id) {
    return std::exp((static_cast<double>(key(logits[static_cast<size_t>(id)])) - max_logit) * inv_t);
  };

  if (row.top_p < 1.0f) {
    // Sort only as much as the nucleus needs: grow a sorted prefix until its mass reaches top_p.
    double total = 0.0;
    for (int32_t id : ids) total += weight(id);
    const double target = static_cast<double>(row.top_p) * total;
    const size_t n = ids.size();
    size_t sorted = std::min<size_t>(64, n);
    size_t keep = n;
    for (;;) {
      std::partial_sort(ids.begin(), ids.begin() + static_cast<ptrdiff_t>(sorted), ids.end(), better);
      double cum = 0.0;
      size_t j = 0;
      while (j < sorted && cum < target) cum += weight(ids[j++]);
      if (cum >= target || sorted == n) {
        keep = std::max<size_t>(j, 1);
        break;
      }
      sorted = std::min(sorted * 8, n);
    }
    ids.resize(keep);
  }

  auto& probs = scratch.probs;
  probs.resize(ids.size());
  double sum = 0.0;
  for (size_t i = 0; i < ids.size(); ++i) sum += (probs[i] = weight(ids[i]));
  const double u = random_uniform(row.seed, row.counter) * sum;
  double cum = 0.0;
  out.token = -1;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (probs[i] <= 0.0) continue;
    cum += probs[i];
    out.token = ids[i];  // also the fallback when rounding leaves u >= cum at the end
    if (u < cum) break;
  }
  CANOPY_ASSERT(out.token >= 0);
  out.logprob = token_logprob(logits, out.token);
  return out;
}

}  // namespace canopy
