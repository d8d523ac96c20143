// Rotary position embeddings: the inverse frequencies, once per model.
//
// canopy uses the rotate-half convention of Hugging Face transformers: for head vector x of
// dimension D and i < D/2, with angle a = position * inv_freq[i],
//   x'[i]       = x[i] * cos(a) - x[i + D/2] * sin(a)
//   x'[i + D/2] = x[i + D/2] * cos(a) + x[i] * sin(a).
// GGUF checkpoints of llama architecture store Q and K rows permuted for the interleaved
// convention; the loader undoes that (model/weights.h), so this one convention serves both.
#pragma once

#include <vector>

#include "model/config.h"

namespace canopy {

// inv_freq [head_dim / 2]: theta^(-2i/D), then the config's scaling (linear: / factor; llama3:
// wavelength-dependent; GGUF rope_freqs: / factors[i]).
std::vector<float> rope_inverse_frequencies(const ModelConfig& config);

}  // namespace canopy
