// SwiGLU (model_kernels.h, SwigluParams): out = silu(gate) * up in f32, one bf16 rounding.
#pragma once

#include "device_common.cuh"
#include "model_kernels.h"

namespace canopy::kernels {

inline constexpr int kSwigluThreads = 256;

__host__ __device__ inline int64_t swiglu_chunks(const SwigluParams& p) { return (p.inter / 8 + kSwigluThreads - 1) / kSwigluThreads; }

// grid = num_tokens * swiglu_chunks(p); a thread handles 8 consecutive outputs.
__global__ void __launch_bounds__(kSwigluThreads) swiglu_kernel(const __grid_constant__ SwigluParams p) {
  const int64_t chunks = swiglu_chunks(p);
  const int64_t t = static_cast<int64_t>(blockIdx.x) / chunks;
  const int64_t vec = (static_cast<int64_t>(blockIdx.x) % chunks) * kSwigluThreads + threadIdx.x;
  if (vec >= p.inter / 8) return;
  const uint16_t* row = p.gate_up + t * 2 * p.inter;
  const Float8 g = load_bf16x8(row + vec * 8);
  const Float8 u = load_bf16x8(row + p.inter + vec * 8);
  Float8 o;
CANOPY_UNROLL
  for (int e = 0; e < 8; ++e) o.v[e] = g.v[e] / (1.0f + expf(-g.v[e])) * u.v[e];
  store_bf16x8(p.out + t * p.inter + vec * 8, o);
}

}  // namespace canopy::kernels
