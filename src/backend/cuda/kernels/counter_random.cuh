// Counter-based random bits on the device: the same function as sampling/random.h on the host
// (SplitMix64's finalizer over (seed, counter)), so a draw depends only on (seed, counter), never on
// which thread, CTA or batch computes it. tests/gpu checks both give the same bits.
#pragma once

#include <cstdint>

namespace canopy::kernels {

__device__ __forceinline__ uint64_t counter_mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__device__ __forceinline__ uint64_t counter_random_bits(uint64_t seed, uint64_t counter) {
  return counter_mix64(counter_mix64(seed) ^ (counter * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull));
}

// Uniform in [0, 1), 53 random bits (sampling/random.h's random_uniform).
__device__ __forceinline__ double counter_uniform(uint64_t seed, uint64_t counter) {
  return static_cast<double>(counter_random_bits(seed, counter) >> 11) * 0x1.0p-53;
}

}  // namespace canopy::kernels
