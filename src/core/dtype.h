// Element types and conversions: f32, f16 (IEEE half) and bf16 (bfloat16).
//
// Host code stores f16/bf16 as raw uint16_t bit patterns; conversions round to nearest even and
// keep NaN and infinities. The CPU reference computes in f32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace canopy {

enum class DType : uint8_t { F32, F16, BF16 };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);
// Parses "f32"/"float32", "f16"/"float16"/"half", "bf16"/"bfloat16"; throws canopy::Error otherwise.
DType parse_dtype(std::string_view name);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN, keep sign
  }
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of type `from` at src to f32 at dst.
void convert_to_f32(DType from, const void* src, float* dst, size_t n);
// Converts n f32 elements at src to type `to` at dst.
void convert_from_f32(DType to, const float* src, void* dst, size_t n);

}  // namespace canopy
