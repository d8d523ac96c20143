#include "gpu_harness.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/dtype.h"
#include "emulated_forest_kernel.h"

namespace canopy::testing {

bool gpu_emulated() {
  static const bool on = [] {
    const char* v = std::getenv("CANOPY_GPU_EMULATE");
    return v != nullptr && std::strcmp(v, "0") != 0;
  }();
  return on;
}

bool cuda_device_available() {
  if (gpu_emulated()) return true;
  static const bool available = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky "no device" error
      return false;
    }
    return n > 0;
  }();
  return available;
}

cuda::ForestLaunchOptions device_options(int head_dim) {
  if (gpu_emulated()) return cuda::ForestLaunchOptions{};
  return cuda::forest_options_for_current_device(head_dim);
}

std::vector<cuda::ForestLaunchOptions> kernel_variants(const cuda::ForestLaunchOptions& base, int head_dim) {
  cuda::ForestLaunchOptions v1 = base, v2 = base;
  v1.kernel = cuda::ForestKernel::kMmaSync;
  v2.kernel = cuda::ForestKernel::kWgmma;
  v2.wgmma_version = 2;
  v2.ctas_per_sm = 1;
  if (gpu_emulated()) {
    v1.ctas_per_sm = cuda::ForestLaunchOptions{}.ctas_per_sm;
    v2.num_sms = std::min(base.num_sms, 6);  // a small persistent grid: the emulator runs every CTA
    cuda::ForestLaunchOptions v3 = v2;
    v3.wgmma_version = 3;
    return {v1, v2, v3};
  }
  const cuda::ForestLaunchOptions d1 = cuda::forest_options_for_current_device(head_dim, false);
  v1.ctas_per_sm = d1.ctas_per_sm;
  v1.sm_bytes_per_ns = d1.sm_bytes_per_ns;
  v1.sm_flops_per_ns = d1.sm_flops_per_ns;
  if (!kernels::forest_sm90_available()) return {v1};
  cuda::ForestLaunchOptions v3 = v2;
  v3.wgmma_version = 3;
  return {v1, v2, v3};
}

const char* kernel_name(cuda::ForestKernel kernel) { return kernel == cuda::ForestKernel::kWgmma ? "v2" : "v1"; }

const char* variant_name(const cuda::ForestLaunchOptions& o) {
  if (o.kernel != cuda::ForestKernel::kWgmma) return "v1";
  return o.wgmma_version == 3 ? "v3" : "v2";
}

GpuAttentionResult run_plan_emulated(const AttentionPlan& plan, const AttentionShape& shape, const KvLayout& layout,
                                     const std::vector<uint16_t>& q, const std::vector<uint16_t>& k_cache,
                                     const std::vector<uint16_t>& v_cache, kernels::ForestOutputMode mode,
                                     const cuda::ForestLaunchOptions& options, int concurrent_ctas, int repeats) {
  struct {
    const AttentionPlan& plan;
    const AttentionShape& shape;
    const KvLayout& layout;
    const std::vector<uint16_t>& q;
    const std::vector<uint16_t>& k;
    const std::vector<uint16_t>& v;
  } c{plan, shape, layout, q, k_cache, v_cache};
  GpuAttentionResult r;
  r.launch_plan = cuda::build_forest_launch_plan(c.plan, c.shape, c.layout, options);
  const cuda::ForestLaunchPlan& lp = r.launch_plan;
  const int Hq = c.shape.num_q_heads, D = c.shape.head_dim;
  const size_t slots = static_cast<size_t>(lp.num_slots) * Hq;
  std::vector<float> partial_o(slots * D), partial_lse(slots), lse(static_cast<size_t>(lp.num_tokens) * Hq);
  std::vector<uint16_t> out(static_cast<size_t>(lp.num_tokens) * Hq * D);
  std::vector<int32_t> counters(static_cast<size_t>(lp.num_tokens) * c.shape.num_kv_heads, 0);
  std::vector<int32_t> work_state(4, 0);
  r.timeline.assign(3 * static_cast<size_t>(std::max(lp.grid_ctas, 0)), -1);
  for (int rep = 0; rep < repeats; ++rep) {
    std::memset(partial_o.data(), 0xff, partial_o.size() * 4);  // poison: NaN
    std::memset(partial_lse.data(), 0xff, partial_lse.size() * 4);
    std::memset(lse.data(), 0xff, lse.size() * 4);
    std::memset(out.data(), 0xff, out.size() * 2);
    kernels::ForestAttentionParams p;
    p.q = c.q.data();
    p.k_cache = c.k.data();
    p.v_cache = c.v.data();
    p.kv_pages = c.plan.kv_pages.data();
    p.q_tokens = lp.q_tokens.data();
    p.q_positions = c.plan.q_positions.data();
    p.units = lp.units.data();
    p.cta_offsets = lp.cta_offsets.data();
    p.num_ctas = lp.grid_ctas;
    p.num_wide_units = lp.num_wide_units;
    p.num_tensor_ctas = lp.num_tensor_ctas;
    p.work_state = work_state.data();
    p.timeline = lp.kernel == cuda::ForestKernel::kWgmma ? r.timeline.data() : nullptr;
    p.wide_pipeline = lp.wgmma_version;
    p.leaf_prefetch_window = lp.leaf_prefetch_window;
    p.merge_offsets = lp.merge_offsets.data();
    p.merge_slots = lp.merge_slots.data();
    p.partial_o = partial_o.data();
    p.partial_lse = partial_lse.data();
    p.out = out.data();
    p.lse_out = lse.data();
    p.counters = counters.data();
    p.num_units = static_cast<int32_t>(lp.units.size());
    p.num_tokens = lp.num_tokens;
    p.num_q_heads = Hq;
    p.num_kv_heads = c.shape.num_kv_heads;
    p.head_dim = D;
    p.block_size = c.layout.block_size;
    p.scale_log2 = c.shape.scale * 1.4426950408889634f;
    p.mode = mode;
    if (lp.kernel == cuda::ForestKernel::kWgmma) {
      emulate_forest_attention_sm90(&p, D, concurrent_ctas);
    } else {
      emulate_forest_attention(&p, D, concurrent_ctas);
    }
    if (mode == kernels::ForestOutputMode::kPartials) {
      kernels::MergePartialsParams m;
      m.partial_o = partial_o.data();
      m.partial_lse = partial_lse.data();
      m.merge_offsets = lp.merge_offsets.data();
      m.merge_slots = lp.merge_slots.data();
      m.out = out.data();
      m.lse_out = lse.data();
      m.num_tokens = lp.num_tokens;
      m.num_q_heads = Hq;
      m.head_dim = D;
      emulate_merge_partials(&m, D);
    }
    for (int32_t x : counters)
      if (x != 0) r.counters_clear = false;
    for (int32_t x : work_state)
      if (x != 0) r.counters_clear = false;
  }
  r.out.resize(out.size());
  for (size_t i = 0; i < out.size(); ++i) r.out[i] = bf16_to_f32(out[i]);
  r.lse = lse;
  r.partial_o = partial_o;
  r.partial_lse = partial_lse;
  return r;
}

GpuAttentionResult run_plan_on_gpu(const AttentionPlan& plan, const AttentionShape& shape, const KvLayout& layout,
                                   const std::vector<uint16_t>& q, const std::vector<uint16_t>& k_cache,
                                   const std::vector<uint16_t>& v_cache, kernels::ForestOutputMode mode,
                                   const cuda::ForestLaunchOptions* options, int repeats) {
  if (gpu_emulated()) {
    const cuda::ForestLaunchOptions o = options != nullptr ? *options : cuda::ForestLaunchOptions{};
    const int concurrent = o.kernel == cuda::ForestKernel::kWgmma ? std::min(o.num_sms, 6) : 3;
    return run_plan_emulated(plan, shape, layout, q, k_cache, v_cache, mode, o, concurrent, repeats);
  }
  cudaStream_t stream = nullptr;
  CANOPY_CUDA_CHECK(cudaStreamCreate(&stream));
  GpuAttentionResult r;
  {
    const size_t out_elems = static_cast<size_t>(plan.num_tokens) * shape.num_q_heads * shape.head_dim;
    const size_t lse_elems = static_cast<size_t>(plan.num_tokens) * shape.num_q_heads;
    cuda::DeviceBuffer<uint16_t> d_q, d_k, d_v, d_out;
    cuda::DeviceBuffer<float> d_lse;
    d_q.upload(q, stream);
    d_k.upload(k_cache, stream);
    d_v.upload(v_cache, stream);
    d_out.reserve(out_elems);
    d_lse.reserve(lse_elems);
    cuda::ForestAttention attn = options != nullptr ? cuda::ForestAttention(shape, layout, *options)
                                                    : cuda::ForestAttention(shape, layout);
    attn.prepare(plan, stream);
    for (int rep = 0; rep < repeats; ++rep) {
      CANOPY_CUDA_CHECK(cudaMemsetAsync(d_out.data(), 0xff, std::max<size_t>(out_elems, 1) * 2, stream));
      CANOPY_CUDA_CHECK(cudaMemsetAsync(d_lse.data(), 0xff, std::max<size_t>(lse_elems, 1) * 4, stream));
      attn.poison_workspace(stream);
      attn.run(d_q.data(), d_k.data(), d_v.data(), d_out.data(), d_lse.data(), stream, mode);
      CANOPY_CUDA_CHECK(cudaStreamSynchronize(stream));
      CANOPY_CUDA_CHECK(cudaGetLastError());
      for (int32_t c : attn.counters_snapshot())
        if (c != 0) r.counters_clear = false;
    }
    r.launch_plan = attn.launch_plan();
    const auto out_bits = d_out.download(out_elems);
    r.out.resize(out_elems);
    for (size_t i = 0; i < out_elems; ++i) r.out[i] = bf16_to_f32(out_bits[i]);
    r.lse = d_lse.download(lse_elems);
    if (mode == kernels::ForestOutputMode::kPartials) {
      const size_t rows = static_cast<size_t>(r.launch_plan.num_slots) * shape.num_q_heads;
      r.partial_o.resize(rows * shape.head_dim);
      r.partial_lse.resize(rows);
      if (rows > 0) {
        CANOPY_CUDA_CHECK(cudaMemcpy(r.partial_o.data(), attn.partial_o(), r.partial_o.size() * 4, cudaMemcpyDeviceToHost));
        CANOPY_CUDA_CHECK(cudaMemcpy(r.partial_lse.data(), attn.partial_lse(), r.partial_lse.size() * 4, cudaMemcpyDeviceToHost));
      }
    }
  }
  CANOPY_CUDA_CHECK(cudaStreamDestroy(stream));
  return r;
}

}  // namespace canopy::testing
