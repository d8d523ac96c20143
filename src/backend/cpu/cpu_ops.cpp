// Element-wise and per-row kernels of the CPU backend (the cheap part of the forward pass).
#include <cmath>

#include "backend/cpu/cpu_kernels.h"

namespace canopy::cpu {

void add_rms_norm_f32(float* residual, const float* delta, const float* weight, float eps, float* out,
                      int64_t T, int64_t H) {
#pragma omp parallel for schedule(static) if (T > 1)
  for (int64_t t = 0; t < T; ++t) {
    float* r = residual + t * H;
    if (delta != nullptr) {
      const float* d = delta + t * H;
      for (int64_t i = 0; i < H; ++i) r[i] += d[i];
    }
    double sum_sq = 0.0;
    for (int64_t i = 0; i < H; ++i) sum_sq += static_cast<double>(r[i]) * r[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(H) + eps));
    float* o = out + t * H;
    for (int64_t i = 0; i < H; ++i) o[i] = weight[i] * (r[i] * inv);
  }
}

void rope_f32(float* x, const int32_t* positions, const float* inv_freq, int64_t T, int64_t H, int64_t D) {
  const int64_t half = D / 2;
#pragma omp parallel for schedule(static) if (T > 1)
  for (int64_t t = 0; t < T; ++t) {
    const float pos = static_cast<float>(positions[t]);
    for (int64_t i = 0; i < half; ++i) {
      // The angle is rounded to f32 as reference implementations do, then evaluated in double.
      const double angle = static_cast<double>(pos * inv_freq[i]);
      const float c = static_cast<float>(std::cos(angle));
      const float s = static_cast<float>(std::sin(angle));
      for (int64_t h = 0; h < H; ++h) {
        float* v = x + (t * H + h) * D;
        const float a = v[i];
        const float b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
  }
}

void swiglu_f32(const float* gate_up, float* out, int64_t T, int64_t I) {
#pragma omp parallel for schedule(static) if (T > 1)
  for (int64_t t = 0; t < T; ++t) {
    const float* g = gate_up + t * 2 * I;
    const float* u = g + I;
    float* o = out + t * I;
    for (int64_t i = 0; i < I; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

}  // namespace canopy::cpu
