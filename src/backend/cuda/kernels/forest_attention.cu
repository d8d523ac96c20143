// Instantiations (head_dim 64 and 128, bf16) and host launchers of the forest attention kernels.
#include <atomic>

#include "forest_attention.cuh"
#include "launch_util.h"

namespace canopy::kernels {

namespace {

template <int kD>
cudaError_t configure_attention() {
  static std::atomic<uint64_t> configured{0};  // devices done, one set per instantiation
  return configure_large_smem_once(forest_attention_kernel<kD>, ForestConfig<kD>::kSmemBytes, configured);
}

template <int kD>
cudaError_t launch_attention(const ForestAttentionParams& p, cudaStream_t stream) {
  using C = ForestConfig<kD>;
  if (p.num_ctas <= 0) return cudaSuccess;
  const cudaError_t err = configure_attention<kD>();
  if (err != cudaSuccess) return err;
  forest_attention_kernel<kD><<<p.num_ctas, C::kThreads, C::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

template <int kD>
cudaError_t update_attention_node(cudaGraphExec_t exec, cudaGraphNode_t node, const ForestAttentionParams& p) {
  using C = ForestConfig<kD>;
  if (p.num_ctas <= 0) return cudaErrorInvalidValue;  // a captured launch always has CTAs
  return update_kernel_node(exec, node, forest_attention_kernel<kD>, dim3(static_cast<unsigned>(p.num_ctas)),
                            dim3(C::kThreads), C::kSmemBytes, p);
}

// The merge kernel's launch: 128 threads, four (token, head) rows per CTA.
constexpr int kMergeThreads = 128;
inline int64_t merge_blocks(const MergePartialsParams& p) {
  const int64_t rows = static_cast<int64_t>(p.num_tokens) * p.num_q_heads;
  return (rows + 3) / 4;
}

template <int kD>
cudaError_t launch_merge(const MergePartialsParams& p, cudaStream_t stream) {
  const int64_t blocks = merge_blocks(p);
  if (blocks <= 0) return cudaSuccess;
  merge_partials_kernel<kD><<<static_cast<unsigned>(blocks), kMergeThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <int kD>
cudaError_t update_merge_node(cudaGraphExec_t exec, cudaGraphNode_t node, const MergePartialsParams& p) {
  const int64_t blocks = merge_blocks(p);
  if (blocks <= 0) return cudaErrorInvalidValue;  // a captured launch always has rows
  return update_kernel_node(exec, node, merge_partials_kernel<kD>, dim3(static_cast<unsigned>(blocks)),
                            dim3(kMergeThreads), 0, p);
}

template <int kD>
cudaError_t info_for(ForestKernelInfo* info) {
  using C = ForestConfig<kD>;
  info->threads_per_cta = C::kThreads;
  info->smem_bytes = C::kSmemBytes;
  info->wide_rows = C::kWideRows;
  info->narrow_rows = C::kNarrowRows;
  info->tile_keys = C::kTileKeys;
  info->ctas_per_sm = 0;
  const cudaError_t err = configure_attention<kD>();
  if (err != cudaSuccess) return err;
  return cudaOccupancyMaxActiveBlocksPerMultiprocessor(&info->ctas_per_sm, forest_attention_kernel<kD>, C::kThreads,
                                                       C::kSmemBytes);
}

}  // namespace

bool forest_head_dim_supported(int head_dim) { return head_dim == 64 || head_dim == 128; }

cudaError_t forest_kernel_info(int head_dim, ForestKernelInfo* info) {
  if (head_dim == 64) return info_for<64>(info);
  if (head_dim == 128) return info_for<128>(info);
  return cudaErrorInvalidValue;
}

cudaError_t launch_forest_attention(const ForestAttentionParams& params, cudaStream_t stream) {
  if (params.head_dim == 64) return launch_attention<64>(params, stream);
  if (params.head_dim == 128) return launch_attention<128>(params, stream);
  return cudaErrorInvalidValue;
}

cudaError_t update_forest_attention_node(cudaGraphExec_t exec, cudaGraphNode_t node, const ForestAttentionParams& params) {
  if (params.head_dim == 64) return update_attention_node<64>(exec, node, params);
  if (params.head_dim == 128) return update_attention_node<128>(exec, node, params);
  return cudaErrorInvalidValue;
}

cudaError_t launch_merge_partials(const MergePartialsParams& params, cudaStream_t stream) {
  if (params.head_dim == 64) return launch_merge<64>(params, stream);
  if (params.head_dim == 128) return launch_merge<128>(params, stream);
  return cudaErrorInvalidValue;
}

cudaError_t update_merge_partials_node(cudaGraphExec_t exec, cudaGraphNode_t node, const MergePartialsParams& params) {
  if (params.head_dim == 64) return update_merge_node<64>(exec, node, params);
  if (params.head_dim == 128) return update_merge_node<128>(exec, node, params);
  return cudaErrorInvalidValue;
}

}  // namespace canopy::kernels
