// Runs attention plans on the GPU with the fused forest kernel: the backend's entry point.
//
//   ForestAttention attn(shape, layout);          // once per model (buffers grow as needed)
//   attn.prepare(plan, stream);                    // once per step: launch plan -> device
//   attn.run(q, k_cache, v_cache, out, lse, stream);  // per layer
//
// Pointers are device pointers: q bf16 [T, Hq, D], caches bf16 in KvLayout order, out bf16
// [T, Hq, D], lse f32 [T, Hq] (optional, base 2). prepare() copies from pageable host memory,
// so it synchronizes with the host; run() is asynchronous and may be captured in a CUDA graph
// (every launch leaves the merge counters at zero).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "attention/plan.h"
#include "cuda_util.h"
#include "forest_attention.h"
#include "forest_launch_plan.h"
#include "kv/kv_layout.h"

namespace canopy::cuda {

// Options from the current device (SM count, occupancy of the kernel for this head_dim): the wgmma
// kernel (v2; v3 with wgmma_version = 3) where it runs (sm_90a build, compute capability 9.0)
// unless allow_v2 is false; v1 everywhere else. CANOPY_FOREST_KERNEL=v1|v2|v3 forces one (v2 and
// v3 only where the wgmma kernel runs).
ForestLaunchOptions forest_options_for_current_device(int head_dim, bool allow_v2 = true);

// The wgmma kernel's wide-path version (2 or 3) and the tensor-CTA model's rate that goes with it.
void set_wgmma_version(ForestLaunchOptions& options, int version);

// Whether CANOPY_FOREST_KERNEL forces a kernel (then the runner does not choose per step).
bool forest_kernel_forced_by_environment();

class ForestAttention {
 public:
  // Fixed options: every step runs options.kernel; run() without a mode fuses the merge.
  ForestAttention(const AttentionShape& shape, const KvLayout& layout, const ForestLaunchOptions& options);
  // The engine's default: each prepare() chooses the kernel and output mode for its plan
  // (forest_policy.h), unless CANOPY_FOREST_KERNEL forces a kernel (then unfused, that kernel).
  ForestAttention(const AttentionShape& shape, const KvLayout& layout);

  void prepare(const AttentionPlan& plan, cudaStream_t stream);

  // kFusedMerge: one launch. kPartials: the attention launch writes every partial, then the merge
  // kernel runs (the partials stay readable through partial_o()/partial_lse()).
  void run(const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache, uint16_t* out, float* lse_out,
           cudaStream_t stream, kernels::ForestOutputMode mode);
  // The mode prepare() chose (kFusedMerge with fixed options).
  void run(const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache, uint16_t* out, float* lse_out,
           cudaStream_t stream) {
    run(q, k_cache, v_cache, out, lse_out, stream, mode_);
  }
  kernels::ForestOutputMode mode() const { return mode_; }
  // A small number naming the current step's kernel and mode: graphs captured with one are not
  // replayed with another (a captured node keeps its kernel and its launch count).
  int variant_key() const;

  // wgmma kernel only, for benchmarks: later runs record each CTA's timeline (kernels/forest_attention.h) into
  // `device_timeline` ([grid CTAs x 3] int64, device memory), or stop with nullptr.
  void set_timeline(int64_t* device_timeline) { timeline_ = device_timeline; }

  // Zeroes the merge counters and the v2 queues (needed only after a launch was aborted).
  void reset_counters(cudaStream_t stream);

  // The parameters run() launches the attention kernel with, for the current plan.
  kernels::ForestAttentionParams launch_params(const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache,
                                               uint16_t* out, float* lse_out, kernels::ForestOutputMode mode);
  // CUDA graphs: re-points the kernel nodes that run() (in mode()) added to a captured graph (the
  // attention launch; in kPartials mode also the merge launch, else merge_node is null) in the
  // instantiated `exec` at the current plan (prepare() done) and these buffers.
  void update_graph_nodes(cudaGraphExec_t exec, cudaGraphNode_t attention_node, cudaGraphNode_t merge_node,
                          const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache, uint16_t* out,
                          float* lse_out);

  // Debug aids for tests: fill the partials with a byte pattern (0xff: NaN) to catch unwritten
  // slots; read the merge counters and the v2 queue state back (all zero between launches).
  void poison_workspace(cudaStream_t stream);
  std::vector<int32_t> counters_snapshot() const;

  const ForestLaunchPlan& launch_plan() const { return launch_plan_; }
  const ForestLaunchOptions& options() const { return options_; }
  ForestLaunchOptions& options() { return options_; }
  const float* partial_o() const { return partial_o_.data(); }      // [launch_plan().num_slots, Hq, D]
  const float* partial_lse() const { return partial_lse_.data(); }  // [launch_plan().num_slots, Hq]

 private:
  kernels::MergePartialsParams merge_params(uint16_t* out, float* lse_out) const;

  AttentionShape shape_;
  KvLayout layout_;
  ForestLaunchOptions options_;
  // Per-step choice (the default constructor): the options of each kernel on this device.
  bool choose_per_step_ = false;
  bool wgmma_available_ = false;
  ForestLaunchOptions v1_options_, wgmma_options_;
  kernels::ForestOutputMode mode_ = kernels::ForestOutputMode::kFusedMerge;
  ForestLaunchPlan launch_plan_;
  bool prepared_ = false;
  DeviceBuffer<kernels::ForestUnit> units_;
  DeviceBuffer<int32_t> cta_offsets_, kv_pages_, q_tokens_, q_positions_, merge_offsets_, merge_slots_, counters_;
  DeviceBuffer<int32_t> work_state_;  // v2 queue heads and finished-CTA count
  int64_t* timeline_ = nullptr;
  DeviceBuffer<float> partial_o_, partial_lse_;
};

}  // namespace canopy::cuda
