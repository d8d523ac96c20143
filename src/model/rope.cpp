#include "model/rope.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace canopy {

std::vector<float> rope_inverse_frequencies(const ModelConfig& c) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  const RopeScaling& s = c.rope_scaling;
  for (int64_t i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(c.rope_theta, static_cast<double>(2 * i) / static_cast<double>(c.head_dim));
    if (s.type == RopeScalingType::Linear) {
      f /= s.factor;
    } else if (s.type == RopeScalingType::Llama3) {
      // Long wavelengths (low frequencies) are slowed down by `factor`, short ones kept, and the
      // band between interpolated smoothly (Llama 3.1's context extension).
      const double old_len = static_cast<double>(s.original_max_position_embeddings);
      const double low_freq_wavelen = old_len / s.low_freq_factor;
      const double high_freq_wavelen = old_len / s.high_freq_factor;
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_freq_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
    if (!c.rope_freq_factors.empty()) {
      CANOPY_ASSERT(static_cast<int64_t>(c.rope_freq_factors.size()) == half);
      f /= static_cast<double>(c.rope_freq_factors[static_cast<size_t>(i)]);
    }
    inv[static_cast<size_t>(i)] = static_cast<float>(f);
  }
  return inv;
}

}  // namespace canopy
