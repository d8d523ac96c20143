// Residual add + RMSNorm (model_kernels.h, RmsNormParams): one CTA per output row.
//
// Pass 1 adds the delta (rounded to bf16, the value the residual stream stores), writes the
// residual back and sums squares; a fixed-order block reduction gives the same bits whatever the
// batch; pass 2 re-reads the row (its own writes, or residual + delta again when the residual is
// not written) and scales it.
#pragma once

#include "device_common.cuh"
#include "model_kernels.h"

namespace canopy::kernels {

inline constexpr int kNormThreads = 256;
inline constexpr int kNormSmemBytes = (kNormThreads / 32) * 4;

__global__ void __launch_bounds__(kNormThreads) rms_norm_kernel(const __grid_constant__ RmsNormParams p) {
  float* scratch = reinterpret_cast<float*>(model_kernel_smem());
  const int64_t r = blockIdx.x;
  const int64_t t = p.row_map != nullptr ? p.row_map[r] : r;
  const int H = p.hidden;
  uint16_t* res = p.residual + t * H;
  const uint16_t* del = p.delta != nullptr ? p.delta + t * H : nullptr;
  uint16_t* out = p.out + r * H;
  const bool write_back = p.write_residual != 0 && del != nullptr;

  float sum_sq = 0.0f;
  for (int i = static_cast<int>(threadIdx.x) * 8; i < H; i += kNormThreads * 8) {
    Float8 x = load_bf16x8(res + i);
    if (del != nullptr) {
      const Float8 d = load_bf16x8(del + i);
CANOPY_UNROLL
      for (int e = 0; e < 8; ++e) x.v[e] = round_to_bf16(x.v[e] + d.v[e]);
      if (write_back) store_bf16x8(res + i, x);
    }
CANOPY_UNROLL
    for (int e = 0; e < 8; ++e) sum_sq += x.v[e] * x.v[e];
  }
  sum_sq = block_sum<kNormThreads>(sum_sq, scratch);
  const float inv = 1.0f / sqrtf(sum_sq / static_cast<float>(H) + p.eps);

  for (int i = static_cast<int>(threadIdx.x) * 8; i < H; i += kNormThreads * 8) {
    Float8 x = load_bf16x8(res + i);  // after write-back this is residual + delta already
    if (del != nullptr && !write_back) {
      const Float8 d = load_bf16x8(del + i);
CANOPY_UNROLL
      for (int e = 0; e < 8; ++e) x.v[e] = round_to_bf16(x.v[e] + d.v[e]);
    }
    const float4 w0 = *reinterpret_cast<const float4*>(p.weight + i);
    const float4 w1 = *reinterpret_cast<const float4*>(p.weight + i + 4);
    const float w[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
    Float8 y;
CANOPY_UNROLL
    for (int e = 0; e < 8; ++e) y.v[e] = w[e] * (x.v[e] * inv);
    store_bf16x8(out + i, y);
  }
}

}  // namespace canopy::kernels
