#include "forest_policy.h"

#include <limits>

#include "forest_layout.h"

namespace canopy::cuda {

ForestStepBalance forest_step_balance(const AttentionPlan& plan, const AttentionShape& shape, double peak_flops,
                                      double bandwidth) {
  ForestStepBalance b;
  const int group = shape.num_kv_heads > 0 ? shape.num_q_heads / shape.num_kv_heads : 1;
  const double D = shape.head_dim;
  for (const AttentionItem& it : plan.items) {
    const double keys = it.kv_len;
    if (static_cast<int64_t>(it.q_count) * group > kernels::ForestConfig<128>::kNarrowRows) {
      b.wide_flops += 4.0 * it.q_count * shape.num_q_heads * keys * D;
    } else {
      b.leaf_bytes += keys * shape.num_kv_heads * D * 2.0 * 2.0;
    }
  }
  const double tensor_s = b.wide_flops / peak_flops;
  const double stream_s = b.leaf_bytes / bandwidth;
  b.balance = stream_s > 0.0 ? tensor_s / stream_s : std::numeric_limits<double>::infinity();
  return b;
}

ForestChoice choose_forest_kernel(const ForestStepBalance& balance, bool wgmma_available) {
  ForestChoice c;
  const bool small_plain_decode = balance.balance < kNearlyPlainDecode && balance.leaf_bytes < kV1PlainDecodeBytes;
  if (!wgmma_available || small_plain_decode) {
    c.kernel = ForestKernel::kMmaSync;
    return c;
  }
  c.kernel = ForestKernel::kWgmma;
  return c;
}

}  // namespace canopy::cuda
