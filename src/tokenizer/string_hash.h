// A fast 64-bit hash for short byte strings (pre-tokens, token strings): 8 bytes at a time with a
// multiply-xorshift mix. Not for adversarial keys across trust boundaries: a hostile input can at
// worst make lookups slower, never wrong.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace canopy {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  return x;
}

inline uint64_t hash_bytes(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix64(h ^ w) + 0x165667B19E3779F9ull;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = mix64(h ^ w ^ (static_cast<uint64_t>(n) << 56));
  }
  return h;
}

// For unordered containers keyed by std::string that are searched with std::string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return static_cast<size_t>(hash_bytes(s)); }
};

}  // namespace canopy
