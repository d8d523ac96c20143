#include "forest_attention_runner.h"

#include <cstdlib>
#include <cstring>

#include "forest_policy.h"

namespace canopy::cuda {

void set_wgmma_version(ForestLaunchOptions& o, int version) {
  o.wgmma_version = version;
  // The tensor-CTA model rate. v2: 270 TFLOP/s, its shared nodes alone on the H100 (64-key
  // tiles). v3: 400, the rate whose splits gave the lowest total over the benchmark's 14 shapes in
  // a sweep of 300-500 with v3.5 (2026-11-26; its shared nodes alone run at 480-550 TFLOP/s on the
  // compute-heavy shapes: the model's other terms, a leaf CTA's 40 GB/s and the tail of the last
  // pieces, absorb the difference).
  double tflops = version == 2 ? 270.0 : 400.0;
  // CANOPY_FOREST_WGMMA_TFLOPS: calibrates the model on another GPU (bench/attention sweeps it).
  if (const char* env = std::getenv("CANOPY_FOREST_WGMMA_TFLOPS"); env != nullptr) {
    char* end = nullptr;
    const double v = std::strtod(env, &end);
    CANOPY_CHECK(end != env && *end == '\0' && v >= 10.0 && v <= 5000.0,
                 "CANOPY_FOREST_WGMMA_TFLOPS={}: expected a rate in TFLOP/s between 10 and 5000", env);
    tflops = v;
  }
  o.wgmma_sm_flops_per_ns = tflops * 1e12 / o.num_sms / 1e9;
}

bool forest_kernel_forced_by_environment() { return std::getenv("CANOPY_FOREST_KERNEL") != nullptr; }

ForestLaunchOptions forest_options_for_current_device(int head_dim, bool allow_v2) {
  CANOPY_CHECK(kernels::forest_head_dim_supported(head_dim), "GPU attention: head_dim {} is not supported (64 or 128)",
               head_dim);
  // CANOPY_FOREST_KERNEL=v1|v2|v3 forces a kernel (e.g. to compare, or to rule one out); v2 and v3
  // fall back to v1 where the wgmma kernel cannot run.
  int wgmma_version = 3;
  if (const char* forced = std::getenv("CANOPY_FOREST_KERNEL"); forced != nullptr) {
    CANOPY_CHECK(std::strcmp(forced, "v1") == 0 || std::strcmp(forced, "v2") == 0 || std::strcmp(forced, "v3") == 0,
                 "CANOPY_FOREST_KERNEL={}: expected v1, v2 or v3", forced);
    if (std::strcmp(forced, "v1") == 0) allow_v2 = false;
    if (std::strcmp(forced, "v2") == 0) wgmma_version = 2;
  }
  ForestLaunchOptions o;
  int device = 0;
  CANOPY_CUDA_CHECK(cudaGetDevice(&device));
  CANOPY_CUDA_CHECK(cudaDeviceGetAttribute(&o.num_sms, cudaDevAttrMultiProcessorCount, device));
  kernels::ForestKernelInfo info;
  if (allow_v2 && kernels::forest_sm90_available()) {
    CANOPY_CUDA_CHECK(kernels::forest_sm90_kernel_info(head_dim, &info));
    if (info.ctas_per_sm >= 1) {
      o.kernel = ForestKernel::kWgmma;
      o.ctas_per_sm = 1;  // persistent: one CTA per SM
      // The tensor CTAs' wgmma rate decides how many CTAs start on shared nodes (the model had
      // first assumed 600 TFLOP/s and gave them too few CTAs); too slow a rate costs less than too
      // fast a one (tensor CTAs join the leaves when the shared nodes are done; leaf CTAs never
      // take shared nodes).
      set_wgmma_version(o, wgmma_version);
      return o;
    }
  }
  CANOPY_CUDA_CHECK(kernels::forest_kernel_info(head_dim, &info));
  CANOPY_CHECK(info.ctas_per_sm >= 1, "GPU attention: the kernel for head_dim {} does not fit on this GPU", head_dim);
  o.ctas_per_sm = info.ctas_per_sm;
  // The cost model's rates are shares of one SM; keep their ratio, scale to this GPU's SM count.
  o.sm_bytes_per_ns = 3.0e12 / o.num_sms / 1e9;
  o.sm_flops_per_ns = 4.0e14 / o.num_sms / 1e9;
  return o;
}

ForestAttention::ForestAttention(const AttentionShape& shape, const KvLayout& layout,
                                 const ForestLaunchOptions& options)
    : shape_(shape), layout_(layout), options_(options) {
  CANOPY_CHECK(kernels::forest_head_dim_supported(shape.head_dim),
               "GPU attention: head_dim {} is not supported (64 or 128)", shape.head_dim);
}

ForestAttention::ForestAttention(const AttentionShape& shape, const KvLayout& layout)
    : ForestAttention(shape, layout, forest_options_for_current_device(shape.head_dim)) {
  mode_ = kernels::ForestOutputMode::kPartials;  // measured faster than the fused merge everywhere
  if (forest_kernel_forced_by_environment()) return;
  choose_per_step_ = true;
  wgmma_options_ = options_;
  wgmma_available_ = wgmma_options_.kernel == ForestKernel::kWgmma;
  v1_options_ = wgmma_available_ ? forest_options_for_current_device(shape.head_dim, false) : options_;
}

int ForestAttention::variant_key() const {
  const int kernel = options_.kernel == ForestKernel::kMmaSync ? 0 : options_.wgmma_version;  // 0, 2, 3
  return kernel * 2 + (mode_ == kernels::ForestOutputMode::kPartials ? 1 : 0);
}

void ForestAttention::prepare(const AttentionPlan& plan, cudaStream_t stream) {
  if (choose_per_step_) {
    const ForestChoice c = choose_forest_kernel(forest_step_balance(plan, shape_), wgmma_available_);
    options_ = c.kernel == ForestKernel::kWgmma ? wgmma_options_ : v1_options_;
    if (c.kernel == ForestKernel::kWgmma) set_wgmma_version(options_, c.wgmma_version);
    mode_ = c.mode;
  }
  launch_plan_ = build_forest_launch_plan(plan, shape_, layout_, options_);
  const ForestLaunchPlan& lp = launch_plan_;
  units_.upload(lp.units, stream);
  cta_offsets_.upload(lp.cta_offsets, stream);
  kv_pages_.upload(plan.kv_pages, stream);
  q_tokens_.upload(lp.q_tokens, stream);
  q_positions_.upload(plan.q_positions, stream);
  merge_offsets_.upload(lp.merge_offsets, stream);
  merge_slots_.upload(lp.merge_slots, stream);
  const size_t rows = static_cast<size_t>(lp.num_slots) * static_cast<size_t>(shape_.num_q_heads);
  partial_o_.reserve(rows * static_cast<size_t>(shape_.head_dim));
  partial_lse_.reserve(rows);
  const size_t counters = static_cast<size_t>(lp.num_tokens) * static_cast<size_t>(shape_.num_kv_heads);
  const bool fresh_counters = counters_.reserve(counters);
  const bool fresh_state = work_state_.reserve(4);
  if (fresh_counters || fresh_state) reset_counters(stream);
  // Pageable sources: make sure the copies are done before the host vectors change.
  CANOPY_CUDA_CHECK(cudaStreamSynchronize(stream));
  prepared_ = true;
}

void ForestAttention::reset_counters(cudaStream_t stream) {
  if (counters_.capacity() > 0)
    CANOPY_CUDA_CHECK(cudaMemsetAsync(counters_.data(), 0, counters_.capacity() * sizeof(int32_t), stream));
  if (work_state_.capacity() > 0)
    CANOPY_CUDA_CHECK(cudaMemsetAsync(work_state_.data(), 0, work_state_.capacity() * sizeof(int32_t), stream));
}

void ForestAttention::poison_workspace(cudaStream_t stream) {
  if (partial_o_.capacity() > 0)
    CANOPY_CUDA_CHECK(cudaMemsetAsync(partial_o_.data(), 0xff, partial_o_.capacity() * sizeof(float), stream));
  if (partial_lse_.capacity() > 0)
    CANOPY_CUDA_CHECK(cudaMemsetAsync(partial_lse_.data(), 0xff, partial_lse_.capacity() * sizeof(float), stream));
}

std::vector<int32_t> ForestAttention::counters_snapshot() const {
  std::vector<int32_t> all =
      counters_.download(static_cast<size_t>(launch_plan_.num_tokens) * static_cast<size_t>(shape_.num_kv_heads));
  for (int32_t x : work_state_.download(work_state_.capacity())) all.push_back(x);
  return all;
}

kernels::ForestAttentionParams ForestAttention::launch_params(const uint16_t* q, const uint16_t* k_cache,
                                                              const uint16_t* v_cache, uint16_t* out, float* lse_out,
                                                              kernels::ForestOutputMode mode) {
  CANOPY_ASSERT(prepared_);
  const ForestLaunchPlan& lp = launch_plan_;
  kernels::ForestAttentionParams p;
  p.q = q;
  p.k_cache = k_cache;
  p.v_cache = v_cache;
  p.kv_pages = kv_pages_.data();
  p.q_tokens = q_tokens_.data();
  p.q_positions = q_positions_.data();
  p.units = units_.data();
  p.cta_offsets = cta_offsets_.data();
  p.num_ctas = lp.grid_ctas;
  p.num_wide_units = lp.num_wide_units;
  p.num_tensor_ctas = lp.num_tensor_ctas;
  p.work_state = work_state_.data();
  p.timeline = timeline_;
  p.wide_pipeline = lp.wgmma_version;
  p.leaf_prefetch_window = lp.leaf_prefetch_window;
  p.merge_offsets = merge_offsets_.data();
  p.merge_slots = merge_slots_.data();
  p.partial_o = partial_o_.data();
  p.partial_lse = partial_lse_.data();
  p.out = out;
  p.lse_out = lse_out;
  p.counters = counters_.data();
  p.num_units = static_cast<int32_t>(lp.units.size());
  p.num_tokens = lp.num_tokens;
  p.num_q_heads = shape_.num_q_heads;
  p.num_kv_heads = shape_.num_kv_heads;
  p.head_dim = shape_.head_dim;
  p.block_size = layout_.block_size;
  p.scale_log2 = shape_.scale * 1.4426950408889634f;
  p.mode = mode;
  return p;
}

void ForestAttention::update_graph_nodes(cudaGraphExec_t exec, cudaGraphNode_t attention_node,
                                         cudaGraphNode_t merge_node, const uint16_t* q, const uint16_t* k_cache,
                                         const uint16_t* v_cache, uint16_t* out, float* lse_out) {
  CANOPY_ASSERT((merge_node != nullptr) == (mode_ == kernels::ForestOutputMode::kPartials));
  const kernels::ForestAttentionParams p = launch_params(q, k_cache, v_cache, out, lse_out, mode_);
  if (launch_plan_.kernel == ForestKernel::kWgmma) {
    CANOPY_CUDA_CHECK(kernels::update_forest_attention_sm90_node(exec, attention_node, p));
  } else {
    CANOPY_CUDA_CHECK(kernels::update_forest_attention_node(exec, attention_node, p));
  }
  if (merge_node != nullptr)
    CANOPY_CUDA_CHECK(kernels::update_merge_partials_node(exec, merge_node, merge_params(out, lse_out)));
}

kernels::MergePartialsParams ForestAttention::merge_params(uint16_t* out, float* lse_out) const {
  kernels::MergePartialsParams m;
  m.partial_o = partial_o_.data();
  m.partial_lse = partial_lse_.data();
  m.merge_offsets = merge_offsets_.data();
  m.merge_slots = merge_slots_.data();
  m.out = out;
  m.lse_out = lse_out;
  m.num_tokens = launch_plan_.num_tokens;
  m.num_q_heads = shape_.num_q_heads;
  m.head_dim = shape_.head_dim;
  return m;
}

void ForestAttention::run(const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache, uint16_t* out,
                          float* lse_out, cudaStream_t stream, kernels::ForestOutputMode mode) {
  const ForestLaunchPlan& lp = launch_plan_;
  const kernels::ForestAttentionParams p = launch_params(q, k_cache, v_cache, out, lse_out, mode);
  if (lp.kernel == ForestKernel::kWgmma) {
    CANOPY_CUDA_CHECK(kernels::launch_forest_attention_sm90(p, stream));
  } else {
    CANOPY_CUDA_CHECK(kernels::launch_forest_attention(p, stream));
  }
  if (mode == kernels::ForestOutputMode::kPartials)
    CANOPY_CUDA_CHECK(kernels::launch_merge_partials(merge_params(out, lse_out), stream));
}

}  // namespace canopy::cuda
