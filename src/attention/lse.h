// The log-sum-exp convention, in one place (DESIGN.md section 1 and 3).
//
// Every partial attention result is a pair (O, LSE) for one (query token, query head):
//   O   = softmax(s * q.K^T) V over the part's keys            f32 [head_dim]
//   LSE = log2( sum_k exp2( s * log2(e) * q.k ) )               f32, BASE 2
// i.e. the natural log-sum-exp of the scaled scores times log2(e). Base 2 because exp2f is the
// cheap instruction on GPUs; kernels fold log2(e) into the softmax scale once.
// Layout of partials in a workspace: O [slot, num_q_heads, head_dim], LSE [slot, num_q_heads].
//
// Merging parts i = 1..m of one query's keys (exact up to rounding):
//   M   = max_i LSE_i
//   w_i = exp2(LSE_i - M)
//   O   = sum_i w_i O_i / sum_i w_i,     LSE = M + log2(sum_i w_i)
// A part with no keys (or every key masked) has LSE = -inf and O = 0: its weight is 0. When every
// part is empty, O = 0 and LSE = -inf (never NaN: the -inf - -inf case is guarded).
#pragma once

#include <cmath>
#include <limits>

namespace canopy {

inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Merges (o_b, lse_b) into the running (o_a, lse_a) in place; o vectors have `dim` elements.
inline void lse_merge_into(float* o_a, float& lse_a, const float* o_b, float lse_b, int dim) {
  if (lse_b == kNegInf) return;
  if (lse_a == kNegInf) {
    for (int i = 0; i < dim; ++i) o_a[i] = o_b[i];
    lse_a = lse_b;
    return;
  }
  const float m = lse_a > lse_b ? lse_a : lse_b;
  const float wa = std::exp2(lse_a - m);
  const float wb = std::exp2(lse_b - m);
  const float inv = 1.0f / (wa + wb);
  for (int i = 0; i < dim; ++i) o_a[i] = (wa * o_a[i] + wb * o_b[i]) * inv;
  lse_a = m + std::log2(wa + wb);
}

}  // namespace canopy
