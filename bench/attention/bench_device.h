// Device helpers of the attention benchmark: random fills and an L2 flush.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace canopy::bench {

// Fills n bf16 values with a hash of (seed, index), uniform in [-1, 1) times scale.
cudaError_t fill_random_bf16(uint16_t* data, size_t n, uint64_t seed, float scale, cudaStream_t stream);

}  // namespace canopy::bench
