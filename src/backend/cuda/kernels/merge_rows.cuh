// Log-sum-exp merge of one (token, query head) row's partials, by one warp (attention/lse.h has
// the convention): M = max LSE_i, w_i = exp2(LSE_i - M), O = sum w_i O_i / sum w_i,
// LSE = M + log2(sum w_i). Parts with LSE = -inf weigh 0 and are not read; when every part is
// empty the row is O = 0, LSE = -inf (no NaN).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "forest_layout.h"
#include "mma_sm80.cuh"

namespace canopy::kernels {

// kD / 32 floats per lane.
template <int kD>
struct RowVec {
  static constexpr int kVec = kD / 32;
  float v[kVec];
};

template <int kD>
__device__ __forceinline__ void load_row_vec_cg(RowVec<kD>& r, const float* src) {
  if constexpr (RowVec<kD>::kVec == 4) {
    const float4 x = __ldcg(reinterpret_cast<const float4*>(src));
    r.v[0] = x.x; r.v[1] = x.y; r.v[2] = x.z; r.v[3] = x.w;
  } else {
    const float2 x = __ldcg(reinterpret_cast<const float2*>(src));
    r.v[0] = x.x; r.v[1] = x.y;
  }
}

template <int kD>
__device__ __forceinline__ void load_row_vec_shared(RowVec<kD>& r, const float* src) {
  if constexpr (RowVec<kD>::kVec == 4) {
    const float4 x = *reinterpret_cast<const float4*>(src);
    r.v[0] = x.x; r.v[1] = x.y; r.v[2] = x.z; r.v[3] = x.w;
  } else {
    const float2 x = *reinterpret_cast<const float2*>(src);
    r.v[0] = x.x; r.v[1] = x.y;
  }
}

template <int kD>
__device__ __forceinline__ void store_row_vec_f32(float* dst, const RowVec<kD>& r) {
  if constexpr (RowVec<kD>::kVec == 4) {
    *reinterpret_cast<float4*>(dst) = make_float4(r.v[0], r.v[1], r.v[2], r.v[3]);
  } else {
    *reinterpret_cast<float2*>(dst) = make_float2(r.v[0], r.v[1]);
  }
}

template <int kD>
__device__ __forceinline__ void store_row_vec_bf16(uint16_t* dst, const RowVec<kD>& r) {
  if constexpr (RowVec<kD>::kVec == 4) {
    *reinterpret_cast<uint2*>(dst) = make_uint2(pack_bf16x2(r.v[0], r.v[1]), pack_bf16x2(r.v[2], r.v[3]));
  } else {
    *reinterpret_cast<uint32_t*>(dst) = pack_bf16x2(r.v[0], r.v[1]);
  }
}

// Merges the partials of one row and writes it. The caller's own part (own_o, from shared memory,
// already normalized) is included when own_o != nullptr; slot `skip_slot` of the list is that own
// part and is not read from global memory. Partials are read with ld.global.cg (L2, never a stale
// L1 line: they may have been written by other CTAs of the same launch). Every lane of the warp
// calls this; lane l handles columns [l * kD/32, (l+1) * kD/32).
template <int kD>
__device__ __forceinline__ void merge_row(const float* own_o, float own_lse, const int32_t* slots, int num_slots,
                                          int32_t skip_slot, const float* partial_o, const float* partial_lse,
                                          int num_q_heads, int head, uint16_t* out_row, float* lse_out, int lane) {
  constexpr int kVec = RowVec<kD>::kVec;
  const float neg_inf = -__int_as_float(0x7f800000);
  float m = own_o != nullptr ? own_lse : neg_inf;
  for (int i = 0; i < num_slots; ++i) {
    const int32_t s = __ldg(slots + i);
    if (s == skip_slot) continue;
    m = fmaxf(m, __ldcg(partial_lse + static_cast<size_t>(s) * num_q_heads + head));
  }
  RowVec<kD> acc;
CANOPY_UNROLL
  for (int e = 0; e < kVec; ++e) acc.v[e] = 0.0f;
  float weight = 0.0f;
  if (m != neg_inf) {
    if (own_o != nullptr && own_lse != neg_inf) {
      const float w = exp2f(own_lse - m);
      RowVec<kD> x;
      load_row_vec_shared<kD>(x, own_o + lane * kVec);
      weight += w;
CANOPY_UNROLL
      for (int e = 0; e < kVec; ++e) acc.v[e] += w * x.v[e];
    }
    for (int i = 0; i < num_slots; ++i) {
      const int32_t s = __ldg(slots + i);
      if (s == skip_slot) continue;
      const float lse = __ldcg(partial_lse + static_cast<size_t>(s) * num_q_heads + head);
      if (lse == neg_inf) continue;
      const float w = exp2f(lse - m);
      RowVec<kD> x;
      load_row_vec_cg<kD>(x, partial_o + (static_cast<size_t>(s) * num_q_heads + head) * kD + lane * kVec);
      weight += w;
CANOPY_UNROLL
      for (int e = 0; e < kVec; ++e) acc.v[e] += w * x.v[e];
    }
  }
  const float inv = weight > 0.0f ? 1.0f / weight : 0.0f;
CANOPY_UNROLL
  for (int e = 0; e < kVec; ++e) acc.v[e] *= inv;
  store_row_vec_bf16<kD>(out_row + lane * kVec, acc);
  if (lse_out != nullptr && lane == 0) *lse_out = weight > 0.0f ? m + log2f(weight) : neg_inf;
}

}  // namespace canopy::kernels
