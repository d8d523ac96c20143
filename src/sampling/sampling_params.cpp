#include "canopy/sampling_params.h"

#include <cmath>

#include "core/error.h"

namespace canopy {

void validate_sampling_params(const SamplingParams& p) {
  CANOPY_CHECK(p.n >= 1 && p.n <= 65536, "n = {} is out of range [1, 65536]", p.n);
  CANOPY_CHECK(p.max_tokens >= 1 && p.max_tokens <= (1 << 20), "max_tokens = {} is out of range [1, 1048576]",
               p.max_tokens);
  CANOPY_CHECK(std::isfinite(p.temperature) && p.temperature >= 0.0f && p.temperature <= 100.0f,
               "temperature = {} is out of range [0, 100]", p.temperature);
  CANOPY_CHECK(std::isfinite(p.top_p) && p.top_p > 0.0f && p.top_p <= 1.0f, "top_p = {} is out of range (0, 1]",
               p.top_p);
  CANOPY_CHECK(p.top_k >= 0, "top_k = {} must be >= 0 (0 turns it off)", p.top_k);
}

}  // namespace canopy
