// Output rows held as accumulator fragments (mma.m16n8k16 / wgmma m64nNk16 C layout): lane
// (gid, t = lane % 4) of a quad holds columns 8j + 2t and 8j + 2t + 1 of its row, j = 0 .. kD/8-1,
// as f[2j], f[2j + 1]. The four lanes of a quad hold the whole row. These helpers write such a row
// (f32 partial, bf16 output) and merge it with the row's other partials (attention/lse.h rule),
// without staging it in shared memory, so the tiles of the next unit can keep streaming in.
#pragma once

#include <cstdint>

#include "forest_layout.h"
#include "mma_sm80.cuh"

namespace canopy::kernels {

template <int kD>
struct Frag {
  static constexpr int kN = kD / 4;
  float v[kN];
};

template <int kD>
__device__ __forceinline__ void store_frag_f32(float* row, const Frag<kD>& f, int t) {
  CANOPY_UNROLL
  for (int j = 0; j < kD / 8; ++j)
    *reinterpret_cast<float2*>(row + 8 * j + 2 * t) = make_float2(f.v[2 * j], f.v[2 * j + 1]);
}

template <int kD>
__device__ __forceinline__ void store_frag_bf16(uint16_t* row, const Frag<kD>& f, int t) {
  CANOPY_UNROLL
  for (int j = 0; j < kD / 8; ++j)
    *reinterpret_cast<uint32_t*>(row + 8 * j + 2 * t) = pack_bf16x2(f.v[2 * j], f.v[2 * j + 1]);
}

// Merges the row (token with `n` slots listed at `slots`, query head `head`) in place:
// with have_own, (f, lse) is this unit's own normalized part and slot `skip_slot` (its own slot)
// is not read; without, every slot is read from the workspace (f, lse are outputs only).
// Workspace reads go through L2 (ld.global.cg): other CTAs of this launch wrote them.
template <int kD>
__device__ __forceinline__ void merge_frag(Frag<kD>& f, float& lse, bool have_own, const int32_t* slots, int n,
                                           int32_t skip_slot, const float* partial_o, const float* partial_lse,
                                           int num_q_heads, int head, int t) {
  const float neg_inf = -__int_as_float(0x7f800000);
  float m = have_own ? lse : neg_inf;
  for (int i = 0; i < n; ++i) {
    const int32_t s = __ldg(slots + i);
    if (s == skip_slot) continue;
    m = fmaxf(m, __ldcg(partial_lse + static_cast<size_t>(s) * num_q_heads + head));
  }
  Frag<kD> acc;
  CANOPY_UNROLL
  for (int e = 0; e < Frag<kD>::kN; ++e) acc.v[e] = 0.0f;
  float weight = 0.0f;
  if (m != neg_inf) {
    if (have_own && lse != neg_inf) {
      const float w = exp2f(lse - m);
      weight += w;
      CANOPY_UNROLL
      for (int e = 0; e < Frag<kD>::kN; ++e) acc.v[e] += w * f.v[e];
    }
    for (int i = 0; i < n; ++i) {
      const int32_t s = __ldg(slots + i);
      if (s == skip_slot) continue;
      const float ls = __ldcg(partial_lse + static_cast<size_t>(s) * num_q_heads + head);
      if (ls == neg_inf) continue;
      const float w = exp2f(ls - m);
      weight += w;
      const float* row = partial_o + (static_cast<size_t>(s) * num_q_heads + head) * kD + 2 * t;
      CANOPY_UNROLL
      for (int j = 0; j < kD / 8; ++j) {
        const float2 x = __ldcg(reinterpret_cast<const float2*>(row + 8 * j));
        acc.v[2 * j] += w * x.x;
        acc.v[2 * j + 1] += w * x.y;
      }
    }
  }
  const float inv = weight > 0.0f ? 1.0f / weight : 0.0f;
  CANOPY_UNROLL
  for (int e = 0; e < Frag<kD>::kN; ++e) f.v[e] = acc.v[e] * inv;
  lse = weight > 0.0f ? m + log2f(weight) : neg_inf;
}

}  // namespace canopy::kernels
