// CPU reference kernels for attention over a paged, prefix-shared KV cache. They ship with the
// engine: the CPU backend runs on them, and every GPU kernel is tested against them.
//
// The item kernel works like the GPU forest kernel, in plain loops: for one KV head it stacks the
// g = Hq / Hkv query heads of every query token of the item into rows (row = token * g + head in
// group), streams the segment's KV one block at a time (each block's K and V tile of that head is
// contiguous in the HND layout), and keeps an online softmax per row (running max, sum, and
// weighted V), so each KV tile is read once for all rows. Arithmetic is f32; it reorders sums with
// respect to a two-pass softmax, so results match flat attention to rounding.
//
// For a good spread over cores, plan with PlannerOptions::max_q_per_item (e.g. 64) and
// max_kv_tokens_per_item (e.g. 1024): run_attention_plan_cpu parallelizes over (item, KV head).
#pragma once

#include <cstdint>
#include <vector>

#include "attention/plan.h"
#include "kv/kv_layout.h"

namespace canopy {

// Partial results of a plan, f32: o [num_slots, Hq, D], lse [num_slots, Hq] (base 2, lse.h).
struct AttentionPartials {
  std::vector<float> o;
  std::vector<float> lse;
  void resize(int32_t num_slots, const AttentionShape& shape);
};

// Step 1 of a plan for one item and one KV head: every query token of the item, every query head
// of the head's group. q [T, Hq, D]; k_cache/v_cache one layer's cache in KvLayout order (f32).
void attend_item_head_cpu(const AttentionPlan& plan, const AttentionItem& item, int kv_head,
                          const AttentionShape& shape, const KvLayout& layout, const float* q,
                          const float* k_cache, const float* v_cache, AttentionPartials& partials);

// Step 1 for one item, all KV heads.
void attend_item_cpu(const AttentionPlan& plan, const AttentionItem& item, const AttentionShape& shape,
                     const KvLayout& layout, const float* q, const float* k_cache, const float* v_cache,
                     AttentionPartials& partials);

// Step 2: merge each token's partial slots into out [T, Hq, D]; lse_out [T, Hq] if non-null.
void merge_partials_cpu(const AttentionPlan& plan, const AttentionShape& shape,
                        const AttentionPartials& partials, float* out, float* lse_out);

// Both steps, (item, KV head) pairs in parallel over all cores. `partials` is reused scratch.
void run_attention_plan_cpu(const AttentionPlan& plan, const AttentionShape& shape,
                            const KvLayout& layout, const float* q, const float* k_cache,
                            const float* v_cache, AttentionPartials& partials, float* out,
                            float* lse_out = nullptr);

// Plain attention of one query head vector over explicit keys, in double precision: the flat
// reference the decomposition is checked against. keys/values are [n, D] (row stride D).
// Writes out [D] and returns LSE in base 2 (-inf for n == 0, with out = 0).
double flat_attention_reference(const float* query, const float* keys, const float* values, int n,
                                int head_dim, double scale, double* out);

}  // namespace canopy
