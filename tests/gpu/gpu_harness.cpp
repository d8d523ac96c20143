#include "gpu_harness.h"

#include <cuda_runtime_api.h>

#include "core/dtype.h"

namespace canopy::testing {

bool cuda_device_available() {
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

GpuAttentionResult run_plan_on_gpu(const AttentionPlan& plan, const AttentionShape& shape, const KvLayout& layout,
                                   const std::vector<uint16_t>& q, const std::vector<uint16_t>& k_cache,
                                   const std::vector<uint16_t>& v_cache, kernels::ForestOutputMode mode,
                                   const cuda::ForestLaunchOptions* options, int repeats) {
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
