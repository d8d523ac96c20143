// Random fills for random-weight models (model_kernels.h, RandomFillParams). Element i depends
// only on (seed, i), so the CPU backend (which computes the same formula) builds the same model.
#pragma once

#include "counter_random.cuh"
#include "device_common.cuh"
#include "model_kernels.h"

namespace canopy::kernels {

inline constexpr int kFillThreads = 256;
inline constexpr int kFillPerThread = 8;
inline constexpr int64_t kFillPerCta = static_cast<int64_t>(kFillThreads) * kFillPerThread;

// Exact in f32: (bits >> 40) < 2^24, and 2u - 1 is a multiple of 2^-23 in [-1, 1); one rounding
// when scaled.
__device__ __forceinline__ float random_fill_value(uint64_t seed, uint64_t index, float scale) {
  const float u = static_cast<float>(counter_random_bits(seed, index) >> 40) * 0x1.0p-24f;
  return (2.0f * u - 1.0f) * scale;
}

// grid = ceil(count / kFillPerCta).
__global__ void __launch_bounds__(kFillThreads) random_fill_kernel(const __grid_constant__ RandomFillParams p) {
  const int64_t base = static_cast<int64_t>(blockIdx.x) * kFillPerCta + threadIdx.x;
CANOPY_UNROLL
  for (int j = 0; j < kFillPerThread; ++j) {
    const int64_t i = base + static_cast<int64_t>(j) * kFillThreads;
    if (i >= p.count) break;
    const float v = random_fill_value(p.seed, static_cast<uint64_t>(i), p.scale);
    if (p.out_bf16 != 0) {
      static_cast<uint16_t*>(p.out)[i] = f32_to_bf16_bits(v);
    } else {
      static_cast<float*>(p.out)[i] = v;
    }
  }
}

}  // namespace canopy::kernels
