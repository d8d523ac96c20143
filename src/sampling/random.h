// Counter-based random numbers: a draw is a pure function of (seed, counter), so a sequence's
// samples do not depend on batch composition, thread count or backend (a GPU sampler computes
// the same bits).
#pragma once

#include <cstdint>

namespace canopy {

// SplitMix64's finalizer: a bijective mix of 64 bits.
inline constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline constexpr uint64_t random_bits(uint64_t seed, uint64_t counter) {
  return mix64(mix64(seed) ^ (counter * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull));
}

// Uniform in [0, 1), 53 random bits.
inline constexpr double random_uniform(uint64_t seed, uint64_t counter) {
  return static_cast<double>(random_bits(seed, counter) >> 11) * 0x1.0p-53;
}

// The seed of sample `index` of a request seeded with `request_seed` (n > 1 samples of one
// prompt each draw their own stream).
inline constexpr uint64_t sample_seed(uint64_t request_seed, uint64_t index) {
  return mix64(request_seed + 0x9e3779b97f4a7c15ull * (index + 1));
}

}  // namespace canopy
