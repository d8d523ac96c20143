#include "attention/cpu_attention.h"

#include <algorithm>
#include <cmath>

#include "attention/lse.h"
#include "core/error.h"

namespace canopy {

void AttentionPartials::resize(int32_t num_slots, const AttentionShape& shape) {
  const size_t rows = static_cast<size_t>(num_slots) * static_cast<size_t>(shape.num_q_heads);
  o.resize(rows * static_cast<size_t>(shape.head_dim));
  lse.resize(rows);
}

void attend_item_cpu(const AttentionPlan& plan, const AttentionItem& item, const AttentionShape& shape,
                     const KvLayout& layout, const float* q, const float* k_cache, const float* v_cache,
                     AttentionPartials& partials) {
  const int D = shape.head_dim;
  const int Hq = shape.num_q_heads;
  const int g = shape.group();
  const float scale_log2 = shape.scale * kLog2e;
  const int bs = layout.block_size;
  std::vector<float> scores(static_cast<size_t>(item.kv_len));
  std::vector<float> acc(static_cast<size_t>(D));

  for (int j = 0; j < item.q_count; ++j) {
    const int32_t t = plan.q_tokens[static_cast<size_t>(item.q_begin + j)];
    const int32_t qpos = plan.q_positions[static_cast<size_t>(t)];
    // Keys beyond the query's position are masked; only a causal item can have any.
    int visible = item.kv_len;
    if (item.causal) visible = std::clamp(qpos - item.kv_pos0 + 1, 0, item.kv_len);
    const size_t slot = static_cast<size_t>(item.out_begin + j);

    for (int h = 0; h < Hq; ++h) {
      const int kvh = h / g;
      const float* qv = q + (static_cast<size_t>(t) * Hq + h) * D;
      float* o = partials.o.data() + (slot * Hq + h) * D;
      float& lse = partials.lse[slot * Hq + h];
      if (visible == 0) {
        std::fill(o, o + D, 0.0f);
        lse = kNegInf;
        continue;
      }
      float m = kNegInf;
      for (int i = 0; i < visible; ++i) {
        const int32_t block = plan.kv_pages[static_cast<size_t>(item.kv_page_begin + i / bs)];
        const float* kv = k_cache + layout.offset(block, kvh, i % bs);
        float dot = 0.0f;
        for (int d = 0; d < D; ++d) dot += qv[d] * kv[d];
        scores[static_cast<size_t>(i)] = dot * scale_log2;
        m = std::max(m, scores[static_cast<size_t>(i)]);
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      float sum = 0.0f;
      for (int i = 0; i < visible; ++i) {
        const float p = std::exp2(scores[static_cast<size_t>(i)] - m);
        sum += p;
        const int32_t block = plan.kv_pages[static_cast<size_t>(item.kv_page_begin + i / bs)];
        const float* vv = v_cache + layout.offset(block, kvh, i % bs);
        for (int d = 0; d < D; ++d) acc[static_cast<size_t>(d)] += p * vv[d];
      }
      const float inv = 1.0f / sum;
      for (int d = 0; d < D; ++d) o[d] = acc[static_cast<size_t>(d)] * inv;
      lse = m + std::log2(sum);
    }
  }
}

void merge_partials_cpu(const AttentionPlan& plan, const AttentionShape& shape,
                        const AttentionPartials& partials, float* out, float* lse_out) {
  const int D = shape.head_dim;
  const int Hq = shape.num_q_heads;
#pragma omp parallel for schedule(static)
  for (int32_t t = 0; t < plan.num_tokens; ++t) {
    for (int h = 0; h < Hq; ++h) {
      float* o = out + (static_cast<size_t>(t) * Hq + h) * D;
      std::fill(o, o + D, 0.0f);
      float lse = kNegInf;
      for (int32_t s = plan.merge_offsets[static_cast<size_t>(t)];
           s < plan.merge_offsets[static_cast<size_t>(t) + 1]; ++s) {
        const size_t slot = static_cast<size_t>(plan.merge_slots[static_cast<size_t>(s)]);
        lse_merge_into(o, lse, partials.o.data() + (slot * Hq + h) * D, partials.lse[slot * Hq + h], D);
      }
      if (lse_out != nullptr) lse_out[static_cast<size_t>(t) * Hq + h] = lse;
    }
  }
}

void run_attention_plan_cpu(const AttentionPlan& plan, const AttentionShape& shape,
                            const KvLayout& layout, const float* q, const float* k_cache,
                            const float* v_cache, AttentionPartials& partials, float* out,
                            float* lse_out) {
  CANOPY_ASSERT(shape.num_kv_heads > 0 && shape.num_q_heads % shape.num_kv_heads == 0);
  CANOPY_ASSERT(static_cast<int32_t>(plan.merge_offsets.size()) == plan.num_tokens + 1);
  partials.resize(plan.num_slots, shape);
  const int n = static_cast<int>(plan.items.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < n; ++i) {
    attend_item_cpu(plan, plan.items[static_cast<size_t>(i)], shape, layout, q, k_cache, v_cache, partials);
  }
  merge_partials_cpu(plan, shape, partials, out, lse_out);
}

double flat_attention_reference(const float* query, const float* keys, const float* values, int n,
                                int head_dim, double scale, double* out) {
  std::fill(out, out + head_dim, 0.0);
  if (n == 0) return -INFINITY;
  std::vector<double> s(static_cast<size_t>(n));
  double m = -INFINITY;
  for (int i = 0; i < n; ++i) {
    double dot = 0.0;
    for (int d = 0; d < head_dim; ++d)
      dot += static_cast<double>(query[d]) * static_cast<double>(keys[static_cast<size_t>(i) * head_dim + d]);
    s[static_cast<size_t>(i)] = dot * scale;
    m = std::max(m, s[static_cast<size_t>(i)]);
  }
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    const double p = std::exp(s[static_cast<size_t>(i)] - m);
    sum += p;
    for (int d = 0; d < head_dim; ++d) out[d] += p * values[static_cast<size_t>(i) * head_dim + d];
  }
  for (int d = 0; d < head_dim; ++d) out[d] /= sum;
  return (m + std::log(sum)) / std::log(2.0);
}

}  // namespace canopy
