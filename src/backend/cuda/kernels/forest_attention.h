// Fused attention over a prefix forest on a paged KV cache (host interface of the CUDA kernels).
//
// One launch executes every work unit of an engine step: shared prefix nodes with many query rows
// and unique leaves alike (horizontal fusion), during decode and (chunked) prefill. The host
// derives the units from the step's attention plan (backend/cuda/forest_launch_plan.h); this
// header knows nothing of the engine: raw device pointers, sizes and a unit list.
//
// Two kernels take the same parameters:
//   v1 (forest_attention.cuh, sm_80+): one CTA of 128 threads per host-listed group of units
//      (cta_offsets); mma.sync everywhere.
//   v2 (forest_attention_sm90.cuh, sm_90a): a persistent grid of 384-thread CTAs pulling units
//      from two queues (wide units first in the list, then narrow ones); wide units on wgmma.
//
// A unit is (segment of one plan item, KV head, tile of query tokens, key range). Its rows are the
// unit's query tokens times the GQA group stacked into one dimension: row r is query token
// j = r / group, query head kv_head * group + r % group. A "wide" unit has up to 128 rows (whole
// tokens) and takes a whole CTA, rows split across its 4 warps; a "narrow" unit has at most 16
// rows (a decode leaf: one token x group heads) and takes one warp: a CTA runs up to 4 of them.
//
// Element types: q, K/V caches and out are bf16 (raw 16-bit patterns, uint16_t on the host);
// partials and LSE are f32, LSE in base 2 (attention/lse.h): O [slot, Hq, D], LSE [slot, Hq].
// KV cache layout (kv/kv_layout.h): K[num_blocks][Hkv][block_size][D], V likewise.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace canopy::kernels {

inline constexpr int32_t kUnitNarrow = 1;  // ForestUnit::flags: at most 16 rows, keys split across warps
inline constexpr int32_t kNoMask = INT32_MAX;

// 40 bytes; the host writes an array of these in execution order (launch order = priority).
struct ForestUnit {
  int32_t kv_page_begin;  // index into kv_pages of the segment's first block (key 0 of the segment)
  int32_t kv_begin;       // first key of the unit, as an offset into the segment
  int32_t kv_end;         // one past its last key (kv_end <= kv_begin: no keys, LSE = -inf)
  int32_t kv_pos0;        // absolute position of the segment's key 0
  int32_t q_begin;        // index into q_tokens of the unit's first query token
  int32_t q_count;        // query tokens (rows = q_count * group <= 128, or <= 16 when narrow)
  int32_t slot_base;      // partial slot of the unit's query j is slot_base + j
  int32_t kv_head;
  int32_t mask_from;      // keys at offsets >= mask_from may be masked for some row; kNoMask: none
  int32_t flags;          // kUnitNarrow
};

// What the attention launch does with each unit's result.
enum class ForestOutputMode : int32_t {
  // Every unit writes its partial (O, LSE) to its slots; run the merge kernel afterwards.
  kPartials = 0,
  // Tokens with a single slot are written to `out` directly; for the others, the unit that
  // completes a (token, KV head) last merges every partial of it into `out` (the others write
  // their partials and count themselves in `counters`). No merge kernel.
  kFusedMerge = 1,
};

struct ForestAttentionParams {
  const uint16_t* q;        // bf16 [num_tokens, Hq, D]
  const uint16_t* k_cache;  // bf16 [num_blocks, Hkv, block_size, D]
  const uint16_t* v_cache;  // bf16 [num_blocks, Hkv, block_size, D]
  const int32_t* kv_pages;     // block ids referenced by units
  const int32_t* q_tokens;     // step token index of each query, referenced by units
  const int32_t* q_positions;  // [num_tokens] absolute position of each query token
  const ForestUnit* units;     // [num_units], grouped by CTA
  const int32_t* cta_offsets;  // [num_ctas + 1]: CTA c runs units[cta_offsets[c] .. cta_offsets[c+1])
  const int32_t* merge_offsets;  // [num_tokens + 1] slots of token t: merge_slots[off[t] .. off[t+1])
  const int32_t* merge_slots;
  float* partial_o;    // f32 [num_slots, Hq, D]
  float* partial_lse;  // f32 [num_slots, Hq]
  uint16_t* out;       // bf16 [num_tokens, Hq, D] (kFusedMerge)
  float* lse_out;      // f32 [num_tokens, Hq], may be null (kFusedMerge)
  int32_t* counters;   // [num_tokens, Hkv], zero before the first launch; left zero by each launch
  // v2 only: units[0, num_wide_units) are wide, the rest narrow; CTAs [0, num_tensor_ctas) start
  // with the wide queue, the others with the narrow one; work_state [4] (wide head, narrow head,
  // CTAs done, leaf prefetch head) is zero before the first launch and left zero by each launch.
  int32_t num_wide_units = 0;
  int32_t num_tensor_ctas = 0;
  int32_t* work_state = nullptr;
  // v2, optional (benchmarks): per CTA [3] globaltimer ns at start, at the end of its wide units
  // (tensor CTAs; 0 otherwise) and at its end.
  int64_t* timeline = nullptr;
  // v2 kernel's wide-mode consumer: 2 (v2: softmax after both GEMMs of a tile) or 3 (v3: softmax of
  // the next tile under this tile's P V, ping-pong of the two consumer warpgroups).
  int32_t wide_pipeline = 3;
  // v3: leaves at most this many units ahead of the leaf queue's head are pulled into L2 by one
  // otherwise idle warp of each CTA in narrow mode (work_state[3]: the prefetch head); 0: none.
  int32_t leaf_prefetch_window = 0;
  int32_t num_units = 0;
  int32_t num_ctas = 0;    // the grid (v1: one wide unit or up to 4 narrow units per CTA; v2: persistent CTAs)
  int32_t num_tokens = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;  // 64 or 128
  int32_t block_size = 0;  // >= 1
  float scale_log2 = 0.0f;  // softmax scale times log2(e)
  ForestOutputMode mode = ForestOutputMode::kFusedMerge;
};

struct MergePartialsParams {
  const float* partial_o;    // f32 [num_slots, Hq, D]
  const float* partial_lse;  // f32 [num_slots, Hq]
  const int32_t* merge_offsets;  // [num_tokens + 1]
  const int32_t* merge_slots;
  uint16_t* out;   // bf16 [num_tokens, Hq, D]
  float* lse_out;  // f32 [num_tokens, Hq], may be null
  int32_t num_tokens = 0;
  int32_t num_q_heads = 0;
  int32_t head_dim = 0;
};

// Static facts of the attention kernel, for planners and benchmarks.
struct ForestKernelInfo {
  int threads_per_cta = 0;
  int smem_bytes = 0;
  int ctas_per_sm = 0;  // occupancy on the current device (0 when it cannot run)
  int wide_rows = 0;    // rows of a wide unit
  int narrow_rows = 0;  // rows of a narrow unit
  int tile_keys = 0;    // keys per pipeline stage
};

bool forest_head_dim_supported(int head_dim);
// Queries the current device; returns a cudaError_t from the runtime on failure.
cudaError_t forest_kernel_info(int head_dim, ForestKernelInfo* info);
// The v2 kernel: whether this build holds it (sm_90a among the CUDA architectures) and the current
// device runs it (compute capability 9.0); its static facts (ctas_per_sm: 1 when it fits).
bool forest_sm90_available();
cudaError_t forest_sm90_kernel_info(int head_dim, ForestKernelInfo* info);

// Asynchronous on `stream`; returns the launch error, if any. head_dim must be supported.
cudaError_t launch_forest_attention(const ForestAttentionParams& params, cudaStream_t stream);
cudaError_t launch_forest_attention_sm90(const ForestAttentionParams& params, cudaStream_t stream);
cudaError_t launch_merge_partials(const MergePartialsParams& params, cudaStream_t stream);

// CUDA graphs (a decode step captured once, replayed with each step's launch plan): updates the
// node a captured launch_forest_attention(params) added, in an instantiated graph, to new params,
// with launch_forest_attention's geometry. params.num_ctas must be >= 1.
cudaError_t update_forest_attention_node(cudaGraphExec_t exec, cudaGraphNode_t node, const ForestAttentionParams& params);
// The same for the node a captured launch_merge_partials(params) added (params.num_tokens >= 1).
cudaError_t update_merge_partials_node(cudaGraphExec_t exec, cudaGraphNode_t node, const MergePartialsParams& params);
// The same for a captured launch_forest_attention_sm90 (v2: the grid is the persistent one, the
// same every step).
cudaError_t update_forest_attention_sm90_node(cudaGraphExec_t exec, cudaGraphNode_t node,
                                              const ForestAttentionParams& params);

}  // namespace canopy::kernels
