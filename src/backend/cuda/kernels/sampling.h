// Sampling on the GPU (host interface): one CTA draws one sample from one row of logits, and only
// the sampled ids and their log-probabilities leave the device.
//
// Semantics (the CPU sampler's, sampling/sampler.h): temperature <= 0 or top_k == 1 is greedy
// (argmax, lowest id among equals); otherwise the logits are divided by the temperature, top-k
// keeps the k largest (lowest ids among equal logits), top-p keeps the smallest set of most likely
// tokens (larger logit first, then lower id) whose mass reaches top_p of the remaining mass, and
// one token is drawn with the uniform number random_uniform(seed, counter). NaN logits count as
// -inf. The log-probability is that of the token under the unscaled distribution (T = 1).
//
// Exactness and determinism: probabilities are fixed-point integers (weight * 2^mass_shift, with
// V * 2^mass_shift <= 2^62), so every sum, selection and draw is exact integer arithmetic and a
// sample is a pure function of its row of logits and (temperature, top_k, top_p, seed, counter):
// it does not depend on the batch, the launch or timing. Tokens whose weight is below 2^-mass_shift
// of the most likely one's (a total mass below 2^-mass_shift * V) are never drawn.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace canopy::kernels {

// sampling/sampling_row.h's SamplingRow, as plain data of the kernels' own.
struct SamplerRow {
  float temperature = 1.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  int32_t reserved = 0;
  uint64_t seed = 0;
  uint64_t counter = 0;
};
static_assert(sizeof(SamplerRow) == 32, "SamplerRow is copied to the device as is");

struct SampleResult {
  int32_t token = -1;
  float logprob = 0.0f;
};

struct SampleParams {
  const float* logits = nullptr;        // [num_rows, vocab] f32
  const int32_t* logits_row = nullptr;  // [num_samples] row of logits each sample draws from
  const SamplerRow* rows = nullptr;     // [num_samples]
  SampleResult* out = nullptr;          // [num_samples]
  int32_t num_samples = 0;
  int32_t num_rows = 0;
  int32_t vocab = 0;
  int32_t mass_shift = 0;  // sampling_mass_shift(vocab)
};

// The largest shift with vocab * 2^shift <= 2^62.
int sampling_mass_shift(int32_t vocab);

// Asynchronous on `stream`. cudaErrorInvalidValue for sizes out of range.
cudaError_t launch_sample(const SampleParams& params, cudaStream_t stream);

}  // namespace canopy::kernels
