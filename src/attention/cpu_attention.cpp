#include "attention/cpu_attention.h"

#include <algorithm>
#include <cmath>

#include "attention/lse.h"
#include "core/error.h"

namespace canopy {
namespace {

// Per-thread scratch of the item kernel, grown to the largest item seen and then reused.
struct RowScratch {
  std::vector<float> q;       // [rows, D] queries, pre-scaled by scale * log2(e)
  std::vector<float> acc;     // [rows, D] running sum of p * V
  std::vector<float> m;       // [rows] running max of the scores (base 2)
  std::vector<float> l;       // [rows] running sum of exp2(score - m)
  std::vector<int32_t> visible;  // [q_count] keys of the segment visible to each query token
  std::vector<float> p;       // [block_size] scores, then probabilities, of one row in one tile
};

}  // namespace

void AttentionPartials::resize(int32_t num_slots, const AttentionShape& shape) {
  const size_t rows = static_cast<size_t>(num_slots) * static_cast<size_t>(shape.num_q_heads);
  o.resize(rows * static_cast<size_t>(shape.head_dim));
  lse.resize(rows);
}

void attend_item_head_cpu(const AttentionPlan& plan, const AttentionItem& item, int kv_head,
                          const AttentionShape& shape, const KvLayout& layout, const float* q,
                          const float* k_cache, const float* v_cache, AttentionPartials& partials) {
  const size_t D = static_cast<size_t>(shape.head_dim);
  const int Hq = shape.num_q_heads;
  const int g = shape.group();
  const int bs = layout.block_size;
  const float scale_log2 = shape.scale * kLog2e;
  const size_t rows = static_cast<size_t>(item.q_count) * static_cast<size_t>(g);

  thread_local RowScratch sc;
  sc.q.resize(rows * D);
  sc.acc.assign(rows * D, 0.0f);
  sc.m.assign(rows, kNegInf);
  sc.l.assign(rows, 0.0f);
  sc.visible.resize(static_cast<size_t>(item.q_count));
  sc.p.resize(static_cast<size_t>(bs));

  // Gather the rows: query token j, head kv_head * g + i -> row j * g + i.
  for (int j = 0; j < item.q_count; ++j) {
    const int32_t t = plan.q_tokens[static_cast<size_t>(item.q_begin + j)];
    const int32_t qpos = plan.q_positions[static_cast<size_t>(t)];
    // Keys after the query's position are masked; only a causal item can have any.
    sc.visible[static_cast<size_t>(j)] =
        item.causal ? std::clamp(qpos - item.kv_pos0 + 1, 0, item.kv_len) : item.kv_len;
    for (int i = 0; i < g; ++i) {
      const float* src = q + (static_cast<size_t>(t) * static_cast<size_t>(Hq) + static_cast<size_t>(kv_head * g + i)) * D;
      float* dst = sc.q.data() + (static_cast<size_t>(j) * static_cast<size_t>(g) + static_cast<size_t>(i)) * D;
      for (size_t d = 0; d < D; ++d) dst[d] = src[d] * scale_log2;
    }
  }

  // Stream the segment one block (one contiguous [bs, D] tile per head) at a time.
  for (int tile0 = 0; tile0 < item.kv_len; tile0 += bs) {
    const int32_t block = plan.kv_pages[static_cast<size_t>(item.kv_page_begin + tile0 / bs)];
    const float* kt = k_cache + layout.offset(block, kv_head, 0);  // [bs, D]
    const float* vt = v_cache + layout.offset(block, kv_head, 0);  // [bs, D]
    const int n = std::min(bs, item.kv_len - tile0);
    for (size_t r = 0; r < rows; ++r) {
      const int vis = std::min(n, sc.visible[r / static_cast<size_t>(g)] - tile0);  // keys of the tile this row sees
      if (vis <= 0) continue;
      const float* qr = sc.q.data() + r * D;
      float tile_max = kNegInf;
      for (int i = 0; i < vis; ++i) {
        const float* kr = kt + static_cast<size_t>(i) * D;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)  // lets the compiler split the sum into vector lanes
        for (size_t d = 0; d < D; ++d) dot += qr[d] * kr[d];
        sc.p[static_cast<size_t>(i)] = dot;
        tile_max = std::max(tile_max, dot);
      }
      const float m_new = std::max(sc.m[r], tile_max);
      const float correction = std::exp2(sc.m[r] - m_new);  // 0 on the first tile (m = -inf)
      float* acc = sc.acc.data() + r * D;
      for (size_t d = 0; d < D; ++d) acc[d] *= correction;
      float sum = 0.0f;
      for (int i = 0; i < vis; ++i) {
        const float p = std::exp2(sc.p[static_cast<size_t>(i)] - m_new);
        sum += p;
        const float* vr = vt + static_cast<size_t>(i) * D;
        for (size_t d = 0; d < D; ++d) acc[d] += p * vr[d];
      }
      sc.l[r] = sc.l[r] * correction + sum;
      sc.m[r] = m_new;
    }
  }

  // Normalize and write each row's partial: slot out_begin + j, head kv_head * g + i.
  for (size_t r = 0; r < rows; ++r) {
    const size_t j = r / static_cast<size_t>(g);
    const size_t h = static_cast<size_t>(kv_head * g) + r % static_cast<size_t>(g);
    const size_t slot = static_cast<size_t>(item.out_begin) + j;
    float* o = partials.o.data() + (slot * static_cast<size_t>(Hq) + h) * D;
    float& lse = partials.lse[slot * static_cast<size_t>(Hq) + h];
    if (sc.l[r] == 0.0f) {  // no visible key: an empty part (lse.h)
      std::fill(o, o + D, 0.0f);
      lse = kNegInf;
      continue;
    }
    const float inv = 1.0f / sc.l[r];
    const float* acc = sc.acc.data() + r * D;
    for (size_t d = 0; d < D; ++d) o[d] = acc[d] * inv;
    lse = sc.m[r] + std::log2(sc.l[r]);
  }
}

void attend_item_cpu(const AttentionPlan& plan, const AttentionItem& item, const AttentionShape& shape,
                     const KvLayout& layout, const float* q, const float* k_cache, const float* v_cache,
                     AttentionPartials& partials) {
  for (int h = 0; h < shape.num_kv_heads; ++h)
    attend_item_head_cpu(plan, item, h, shape, layout, q, k_cache, v_cache, partials);
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
  CANOPY_ASSERT(shape.num_kv_heads == layout.num_kv_heads && shape.head_dim == layout.head_dim);
  CANOPY_ASSERT(static_cast<int32_t>(plan.merge_offsets.size()) == plan.num_tokens + 1);
  partials.resize(plan.num_slots, shape);
  const int64_t hkv = shape.num_kv_heads;
  const int64_t tasks = static_cast<int64_t>(plan.items.size()) * hkv;
  // Items come longest first, so dynamic scheduling starts the big ones early.
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < tasks; ++task) {
    attend_item_head_cpu(plan, plan.items[static_cast<size_t>(task / hkv)], static_cast<int>(task % hkv), shape,
                         layout, q, k_cache, v_cache, partials);
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
