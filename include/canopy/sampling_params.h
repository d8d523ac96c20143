// How to sample the continuation of one prompt (canopy's public API).
#pragma once

#include <cstdint>

namespace canopy {

struct SamplingParams {
  int32_t n = 1;              // independent samples of the prompt, 1 .. 65536
  int32_t max_tokens = 16;    // generated tokens per sample at most, 1 .. 1048576
  float temperature = 1.0f;   // 0: greedy; else 0 < T <= 100
  float top_p = 1.0f;         // nucleus mass, 0 < p <= 1 (1: off)
  int32_t top_k = 0;          // 0: off, else keep the k most likely tokens
  uint64_t seed = 0;          // sample i draws from its own stream derived from (seed, i)
  bool ignore_eos = false;    // keep going past end-of-sequence tokens (benchmarks)
};

// Throws canopy::Error naming the field and its allowed range when a value is out of range.
void validate_sampling_params(const SamplingParams& params);

}  // namespace canopy
