// Instantiations (head_dim 64 and 128, bf16) and host launchers of the forest attention kernels.
#include <atomic>

#include "forest_attention.cuh"

namespace canopy::kernels {

namespace {

// Opts the kernel into its dynamic shared memory (above 48 KB) and the largest carveout, once
// per device (the attributes are per device; setting them on every launch would put driver calls
// in front of every kernel).
template <int kD>
cudaError_t configure_attention() {
  using C = ForestConfig<kD>;
  static std::atomic<uint64_t> configured{0};
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (bit != 0 && (configured.load(std::memory_order_acquire) & bit) != 0) return cudaSuccess;
  err = cudaFuncSetAttribute(forest_attention_kernel<kD>, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes);
  if (err != cudaSuccess) return err;
  err = cudaFuncSetAttribute(forest_attention_kernel<kD>, cudaFuncAttributePreferredSharedMemoryCarveout,
                             cudaSharedmemCarveoutMaxShared);
  if (err != cudaSuccess) return err;
  configured.fetch_or(bit, std::memory_order_release);
  return cudaSuccess;
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
  ForestAttentionParams arg = p;  // copied into the node by the call
  void* args[] = {&arg};
  cudaKernelNodeParams n{};
  n.func = reinterpret_cast<void*>(forest_attention_kernel<kD>);
  n.gridDim = dim3(static_cast<unsigned>(p.num_ctas));
  n.blockDim = dim3(C::kThreads);
  n.sharedMemBytes = C::kSmemBytes;
  n.kernelParams = args;
  return cudaGraphExecKernelNodeSetParams(exec, node, &n);
}

template <int kD>
cudaError_t launch_merge(const MergePartialsParams& p, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(p.num_tokens) * p.num_q_heads;
  if (rows <= 0) return cudaSuccess;
  const int64_t blocks = (rows + 3) / 4;
  merge_partials_kernel<kD><<<static_cast<unsigned>(blocks), 128, 0, stream>>>(p);
  return cudaGetLastError();
}

template <int kD>
cudaError_t update_merge_node(cudaGraphExec_t exec, cudaGraphNode_t node, const MergePartialsParams& p) {
  const int64_t rows = static_cast<int64_t>(p.num_tokens) * p.num_q_heads;
  if (rows <= 0) return cudaErrorInvalidValue;  // a captured launch always has rows
  MergePartialsParams arg = p;  // copied into the node by the call
  void* args[] = {&arg};
  cudaKernelNodeParams n{};
  n.func = reinterpret_cast<void*>(merge_partials_kernel<kD>);
  n.gridDim = dim3(static_cast<unsigned>((rows + 3) / 4));
  n.blockDim = dim3(128);
  n.sharedMemBytes = 0;
  n.kernelParams = args;
  return cudaGraphExecKernelNodeSetParams(exec, node, &n);
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
