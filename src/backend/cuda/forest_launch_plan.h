// The GPU launch plan of one attention plan: the host turns the planner's items
// (attention/plan.h) into the units of the fused forest kernel (kernels/forest_attention.h).
//
// What it adds to the AttentionPlan:
//   - units: (item, KV head, tile of query tokens, key range). Items whose rows (queries x GQA
//     group) fit 16 become one narrow unit per KV head; wider items are cut into tiles of whole
//     tokens of at most 128 rows. Causal items get each tile's key range clamped to the last key
//     its latest query sees, and the offset from which masking starts.
//   - split-KV: a unit much longer than the launch's average share of work is cut into pieces of
//     whole key tiles (64 keys for v1, 128 for the wgmma kernel; >= min_split_keys) so that every
//     SM has work; each extra piece writes
//     its own partial slots (numbered after the plan's), merged like the plan's.
//   - tokens that no item covers get one empty unit (and a q_tokens entry), so that they are
//     written (O = 0, LSE = -inf) like every other token.
//   - v1 (ForestKernel::kMmaSync): a wide unit takes a CTA; narrow units go four to a CTA (one per
//     warp), longest first (similar costs side by side); a replay of the GPU's CTA dispatch with
//     predicted times decides the launch order, so that each SM keeps about one wide CTA (tensor
//     cores: a shared node) beside narrow ones (streaming: leaves) for the whole launch, longest
//     wide CTAs first (no long tail).
//   - v2 (ForestKernel::kWgmma): one persistent CTA per SM; wide units (longest first, units that
//     read the same KV side by side) then narrow units (longest first) in two queues; the first
//     num_tensor_ctas CTAs start on the wide queue, chosen by a model of the two resources (tensor
//     cores for wide units, DRAM bandwidth for leaves) so that both queues drain together.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attention/plan.h"
#include "forest_attention.h"
#include "kv/kv_layout.h"

namespace canopy::cuda {

enum class ForestKernel : int32_t {
  kMmaSync = 0,  // v1: forest_attention.cuh (sm_80+)
  kWgmma = 1,    // v2 and v3: forest_attention_sm90.cuh (sm_90a); wgmma_version picks the wide pipeline
};

struct ForestLaunchOptions {
  ForestKernel kernel = ForestKernel::kMmaSync;
  // kWgmma only: the wide-mode consumer pipeline, 2 (v2) or 3 (v3: softmax under the GEMMs,
  // ping-pong of the consumer warpgroups). Same units, queues and geometry.
  int wgmma_version = 3;
  // v3: an idle warp per CTA pulls leaves this many units ahead of the leaf queue into L2; -1: two
  // per CTA of the grid (~17 MB of 128-key leaves at D = 128: well inside L2), 0: off. Off by
  // default: no gain on the leaves alone and 2-9% slower on most full steps (H100, 2026-11-26).
  int leaf_prefetch_window = 0;
  int num_sms = 132;
  int ctas_per_sm = 2;
  // Cost model of one SM running one unit (ordering and split decisions only).
  double sm_bytes_per_ns = 3.0e12 / 132.0 / 1e9;    // DRAM bandwidth share
  double sm_flops_per_ns = 4.0e14 / 132.0 / 1e9;    // mma.sync bf16 rate share
  double unit_overhead_ns = 1500.0;                 // start-up latency of a unit
  bool split_kv = true;
  int min_split_keys = 256;  // never split into pieces shorter than this (a multiple of 64)

  // v2 model (one SM = one persistent CTA): wgmma rate of a tensor CTA, streaming rate of a CTA of
  // leaf warps, DRAM bandwidth of the whole GPU. Predictions, to be calibrated by measurement.
  double wgmma_sm_flops_per_ns = 400e12 / 132.0 / 1e9;  // v3 (set_wgmma_version: v2 270; see there)
  double wide_sm_bytes_per_ns = 60e9 / 1e9;  // a tensor CTA streaming a shared node's KV (few rows per unit)
  double leaf_sm_bytes_per_ns = 40e9 / 1e9;
  double dram_bytes_per_ns = 3.0e12 / 1e9;
  double leaf_overhead_ns = 1000.0;  // a leaf's start-up, partly hidden by the ring across leaves
  int wide_pieces_per_cta = 4;       // split shared nodes into at least this many pieces per tensor CTA
  int tensor_ctas = -1;              // >= 0: override the model's choice (benchmarks)
};

struct ForestLaunchPlan {
  ForestKernel kernel = ForestKernel::kMmaSync;
  int32_t wgmma_version = 3;  // kWgmma: ForestAttentionParams::wide_pipeline
  int32_t leaf_prefetch_window = 0;  // kWgmma v3: ForestAttentionParams::leaf_prefetch_window
  int32_t num_tokens = 0;
  int32_t num_slots = 0;  // plan slots first, then the slots of split pieces and empty tokens
  std::vector<kernels::ForestUnit> units;  // v1: execution order, grouped by CTA; v2: wide, then narrow
  std::vector<int32_t> cta_offsets;        // v1: [num CTAs + 1]: a wide unit, or up to 4 narrow units
  int32_t grid_ctas = 0;                   // CTAs of the launch
  int32_t num_wide_units = 0;              // v2: units[0, num_wide_units) are wide
  int32_t num_tensor_ctas = 0;             // v2: CTAs that start on the wide queue
  std::vector<int32_t> q_tokens;           // the plan's, then one entry per token no item covers
  std::vector<int32_t> merge_offsets;      // [num_tokens + 1]
  std::vector<int32_t> merge_slots;        // every slot of token t: merge_slots[off[t] .. off[t+1])

  // Statistics (tests, benchmarks).
  int32_t wide_units = 0;
  int32_t narrow_units = 0;
  int32_t split_items = 0;       // items cut into more than one key range
  double total_cost_ns = 0.0;          // sum of the units' predicted single-SM costs
  double wide_cost_ns = 0.0;           // the part of it in wide units
  double predicted_makespan_ns = 0.0;  // end of the replayed dispatch (a model, not a promise)
  std::string summary() const;
};

// Throws canopy::Error naming the defect when the plan, shape or layout cannot run on the GPU
// kernels (unsupported head_dim or group, indices out of range, slots not merged exactly once).
void validate_plan_for_gpu(const AttentionPlan& plan, const AttentionShape& shape, const KvLayout& layout);

// Validates, then derives the units and merge lists.
ForestLaunchPlan build_forest_launch_plan(const AttentionPlan& plan, const AttentionShape& shape,
                                          const KvLayout& layout, const ForestLaunchOptions& options = {});

}  // namespace canopy::cuda
