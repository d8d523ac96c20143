// The sampling parameters of one row of logits (one sequence's next token), as every backend's
// sampler takes them. Plain data, so that a GPU backend can copy an array of them to the device.
#pragma once

#include <cstdint>

namespace canopy {

struct SamplingRow {
  float temperature = 1.0f;  // 0: greedy (argmax, lowest id on ties)
  int32_t top_k = 0;         // keep the k most likely tokens; 0: all
  float top_p = 1.0f;        // keep the smallest set of most likely tokens with mass >= top_p
  // The random draw for this row is a pure function of (seed, counter): a sequence's samples do
  // not depend on which other sequences share its batch. The engine gives each sample of a
  // request its own seed and uses the number of tokens generated so far as the counter.
  uint64_t seed = 0;
  uint64_t counter = 0;
};

struct SampledToken {
  int32_t token = -1;
  float logprob = 0.0f;  // log-probability of `token` under the model's distribution (T = 1)
};

}  // namespace canopy
