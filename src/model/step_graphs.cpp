// LlamaModel's steps as CUDA graphs (Backend::begin_capture / replay).
//
// A step of T tokens is padded to the bucket Tb = the next power of two (at most
// StepCapacity::max_graph_tokens) and R logit rows to Rb = min(Tb, max_logit_rows): the ops then
// have the same shapes and buffers on every step of that bucket, so the first such step records
// them (the whole forward pass, every layer) and later ones replay the recording. What changes from
// step to step lives in the backend's fixed-capacity step buffers (tokens, positions, slots, logit
// rows, the attention launch lists), which begin_step fills before the replay.
//
// Padding rows are harmless by construction: token 0 at position 0, KV slot -1 (not written), no
// attention item (their attention output is 0), and logit rows that point at token 0 and are never
// returned. Every op but attention is row by row, and attention reads only the real tokens' KV,
// so padding never changes a real row.
#include <algorithm>
#include <atomic>

#include "core/error.h"
#include "core/log.h"
#include "model/llama.h"

namespace canopy {

namespace {

int64_t bucket_of(int64_t tokens) {
  int64_t b = 1;
  while (b < tokens) b *= 2;
  return b;
}

}  // namespace

bool LlamaModel::forward_graphed(const StepInput& step, KvCache& cache) {
  if (graphs_disabled_ || !backend_.supports_graphs() || capacity_.max_graph_tokens <= 0) return false;
  const auto T = static_cast<int64_t>(step.tokens.size());
  const auto R = static_cast<int64_t>(step.logit_rows.size());
  const int64_t Tb = bucket_of(T);
  if (Tb > std::min<int64_t>(capacity_.max_graph_tokens, capacity_.max_tokens)) return false;
  const int64_t Rb = std::min<int64_t>(Tb, capacity_.max_logit_rows);
  if (R > Rb) return false;
  // The first step runs eagerly: backends size the buffers they grow on first use (which a
  // capture cannot allocate) before anything is recorded.
  if (!graphs_warmed_up_) {
    graphs_warmed_up_ = true;
    return false;
  }
  const AttentionPlan& plan = *step.plan;
  CANOPY_ASSERT(plan.num_tokens == T && static_cast<int64_t>(plan.q_positions.size()) == T &&
                static_cast<int64_t>(plan.merge_offsets.size()) == T + 1 &&
                static_cast<int64_t>(step.kv_slots.size()) == T);

  // Graphs bake in the KV cache's buffers: a different cache starts over.
  const void* cache_id = cache.k.empty() ? nullptr : cache.k[0].view().data;
  if (cache_id != graph_cache_) {
    backend_.clear_graphs();
    graph_cache_ = cache_id;
  }

  padded_tokens_.assign(step.tokens.begin(), step.tokens.end());
  padded_tokens_.resize(static_cast<size_t>(Tb), 0);
  padded_slots_.assign(step.kv_slots.begin(), step.kv_slots.end());
  padded_slots_.resize(static_cast<size_t>(Tb), -1);
  padded_rows_.assign(step.logit_rows.begin(), step.logit_rows.end());
  padded_rows_.resize(static_cast<size_t>(Rb), 0);
  padded_plan_ = plan;
  padded_plan_.num_tokens = static_cast<int32_t>(Tb);
  padded_plan_.q_positions.resize(static_cast<size_t>(Tb), 0);
  padded_plan_.merge_offsets.resize(static_cast<size_t>(Tb) + 1, plan.merge_offsets.back());

  backend_.begin_step(StepInput{padded_tokens_, padded_slots_, &padded_plan_, padded_rows_});
  static std::atomic<int64_t> next_graph_id{0};
  if (graph_id_ == 0) graph_id_ = ++next_graph_id;
  const int64_t key = (graph_id_ << 32) + Tb;
  if (backend_.replay(key)) {
    ++graph_stats_.replays;
  } else {
    backend_.begin_capture();
    bool recorded = false;
    try {
      run_layers(Tb, Rb, cache);
      recorded = backend_.end_capture(key);
    } catch (const std::exception& e) {
      // Something in the pass cannot be captured: no more graphs for this model. If the error is
      // not about capturing, the eager run below raises it again.
      backend_.abort_capture();
      graphs_disabled_ = true;
      CANOPY_LOG_WARN("CUDA graph capture failed ({}); steps run op by op", e.what());
    }
    if (recorded && backend_.replay(key)) {
      ++graph_stats_.captures;
    } else {
      ++graph_stats_.failed_captures;
      run_layers(Tb, Rb, cache);
    }
  }
  last_logit_rows_ = R;
  return true;
}

}  // namespace canopy
