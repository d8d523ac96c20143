// Sampling one token from a row of logits on the CPU: greedy, temperature, top-k, top-p.
//
// The order of operations follows common practice (and Hugging Face transformers): temperature
// scales the logits, top-k keeps the k largest, top-p keeps the smallest prefix of the remaining
// tokens (most likely first) whose probability mass reaches top_p, the rest is renormalized and
// one token drawn with random_uniform(seed, counter). Ties are broken towards the lower token id,
// so the result is deterministic.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sampling/sampling_row.h"

namespace canopy {

// Reusable buffers, one per thread.
struct SamplerScratch {
  std::vector<int32_t> ids;
  std::vector<double> probs;
};

// logits [V]; row's parameters already validated (validate_sampling_params).
SampledToken sample_row(std::span<const float> logits, const SamplingRow& row, SamplerScratch& scratch);

// Index of the largest logit (lowest index among equals).
int32_t argmax(std::span<const float> logits);

// log softmax(logits)[token], computed stably.
float token_logprob(std::span<const float> logits, int32_t token);

}  // namespace canopy
