// Device helpers shared by the model kernels (model_kernels.h, sampling.h): bf16 conversion,
// 8-wide bf16 vectors, warp and block reductions.
//
// Host emulation (tests/gpu): with CANOPY_KERNEL_EMULATION defined, the primitives in the first
// block below (the ones that map to single instructions) are supplied by the test's translation
// unit, and the kernels' own source runs on the host SIMT emulator. So the kernels use only those
// primitives, compile-time block sizes (no blockDim/gridDim) and dynamic shared memory.
#pragma once

#include <vector_types.h>

#include <cstdint>

#ifndef CANOPY_KERNEL_EMULATION
#include <cuda_bf16.h>
#endif

// Loop unrolling hint for nvcc; nothing in the host emulation (host compilers warn on it).
#if defined(__CUDACC__)
#define CANOPY_UNROLL _Pragma("unroll")
#else
#define CANOPY_UNROLL
#endif

namespace canopy::kernels {

inline constexpr unsigned kFullWarp = 0xffffffffu;

#ifndef CANOPY_KERNEL_EMULATION
__device__ __forceinline__ float bf16_bits_to_f32(uint32_t h) { return __uint_as_float(h << 16); }
// Round to nearest even (NaN stays NaN), like canopy::f32_to_bf16 on the host.
__device__ __forceinline__ uint32_t pack_bf16_pair(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) { return __bfloat16_as_ushort(__float2bfloat16_rn(f)); }
__device__ __forceinline__ unsigned char* model_kernel_smem() {
  extern __shared__ __align__(16) unsigned char canopy_model_kernel_smem[];
  return canopy_model_kernel_smem;
}
#endif

// The value a bf16 store of f would hold, as f32.
__device__ __forceinline__ float round_to_bf16(float f) { return bf16_bits_to_f32(f32_to_bf16_bits(f)); }

// 8 consecutive bf16 values (16 bytes; the address must be 16-byte aligned) as f32.
struct Float8 {
  float v[8];
};

__device__ __forceinline__ Float8 load_bf16x8(const uint16_t* p) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
  Float8 f;
CANOPY_UNROLL
  for (int i = 0; i < 4; ++i) {
    f.v[2 * i] = bf16_bits_to_f32(w[i] & 0xffffu);
    f.v[2 * i + 1] = bf16_bits_to_f32(w[i] >> 16);
  }
  return f;
}

__device__ __forceinline__ void store_bf16x8(uint16_t* p, const Float8& f) {
  uint4 raw;
  raw.x = pack_bf16_pair(f.v[0], f.v[1]);
  raw.y = pack_bf16_pair(f.v[2], f.v[3]);
  raw.z = pack_bf16_pair(f.v[4], f.v[5]);
  raw.w = pack_bf16_pair(f.v[6], f.v[7]);
  *reinterpret_cast<uint4*>(p) = raw;
}

// Butterfly sum over the warp: every lane ends with the same bits (each level adds the same two
// values in either order), and the result does not depend on timing.
__device__ __forceinline__ float warp_sum(float v) {
CANOPY_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullWarp, v, offset);
  return v;
}

__device__ __forceinline__ unsigned long long warp_sum_u64(unsigned long long v) {
CANOPY_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullWarp, v, offset);
  return v;
}

// Sum over a CTA of kThreads threads (every thread must call it); every thread gets the same
// value. scratch: kThreads / 32 floats of shared memory, free for reuse after the call.
template <int kThreads>
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "whole warps");
  constexpr int kWarps = kThreads / 32;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = lane < kWarps ? scratch[lane] : 0.0f;
  total = warp_sum(total);  // every warp reduces the same values in the same order
  __syncthreads();          // scratch may be reused after this
  return total;
}

template <int kThreads>
__device__ __forceinline__ unsigned long long block_sum_u64(unsigned long long v, unsigned long long* scratch) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "whole warps");
  constexpr int kWarps = kThreads / 32;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = warp_sum_u64(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  unsigned long long total = lane < kWarps ? scratch[lane] : 0ull;
  total = warp_sum_u64(total);
  __syncthreads();
  return total;
}

}  // namespace canopy::kernels
