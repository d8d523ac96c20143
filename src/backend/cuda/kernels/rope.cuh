// The fused projection's split and rotary embedding, rotate-half convention (model_kernels.h,
// RopeParams): one CTA per token; thread tid = y * D/2 + i owns frequency i (elements i and
// i + D/2) of heads y, y + ny, ... of the token's q, k and v heads, ny = kRopeThreads / (D/2)
// (threads past ny * D/2 idle; launch_rope needs D/2 <= kRopeThreads). Each thread computes its
// sin/cos once for every head it rotates (sincosf with its range reduction dominated a one-token
// step when each (head, frequency) pair computed its own); v heads are copied as they are.
#pragma once

#include "device_common.cuh"
#include "model_kernels.h"

namespace canopy::kernels {

inline constexpr int kRopeThreads = 256;

__global__ void __launch_bounds__(kRopeThreads) rope_kernel(const __grid_constant__ RopeParams p) {
  const int64_t t = blockIdx.x;
  const int half = p.head_dim / 2;
  const int ny = kRopeThreads / half;
  const int i = static_cast<int>(threadIdx.x) % half;
  const int y = static_cast<int>(threadIdx.x) / half;
  if (y >= ny) return;
  const int rotated = p.num_q_heads + p.num_kv_heads;
  const int heads = rotated + p.num_kv_heads;
  const uint16_t* in = p.qkv + t * heads * p.head_dim;
  // The angle is rounded to f32 before sin/cos, as the CPU reference and common implementations do.
  const float angle = static_cast<float>(p.positions[t]) * p.inv_freq[i];
  float s, c;
  sincosf(angle, &s, &c);
  for (int h = y; h < heads; h += ny) {
    const uint16_t* src = in + h * p.head_dim;
    uint16_t* dst = h < p.num_q_heads ? p.q + (t * p.num_q_heads + h) * p.head_dim
                    : h < rotated     ? p.k + (t * p.num_kv_heads + (h - p.num_q_heads)) * p.head_dim
                                      : p.v + (t * p.num_kv_heads + (h - rotated)) * p.head_dim;
    if (h >= rotated) {
      dst[i] = src[i];
      dst[i + half] = src[i + half];
      continue;
    }
    const float a = bf16_bits_to_f32(src[i]);
    const float b = bf16_bits_to_f32(src[i + half]);
    dst[i] = f32_to_bf16_bits(a * c - b * s);
    dst[i + half] = f32_to_bf16_bits(b * c + a * s);
  }
}

}  // namespace canopy::kernels
