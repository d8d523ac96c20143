// Instantiations (head_dim 64 and 128) and host launchers of the v2 (sm_90a) forest kernel.
#include <atomic>

#include "forest_attention_sm90.cuh"
#include "launch_util.h"

namespace canopy::kernels {

namespace {

template <int kD, bool kV3>
cudaError_t configure_sm90() {
  static std::atomic<uint64_t> configured{0};  // devices done, one set per instantiation
  return configure_large_smem_once(forest_attention_sm90_kernel<kD, kV3>, ForestConfigSm90<kD>::kSmemBytes,
                                   configured);
}

template <int kD, bool kV3>
cudaError_t launch_sm90(const ForestAttentionParams& p, cudaStream_t stream) {
  using C = ForestConfigSm90<kD>;
  if (p.num_ctas <= 0) return cudaSuccess;
  const cudaError_t err = configure_sm90<kD, kV3>();
  if (err != cudaSuccess) return err;
  forest_attention_sm90_kernel<kD, kV3><<<p.num_ctas, C::kThreads, C::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

template <int kD, bool kV3>
cudaError_t update_node_sm90(cudaGraphExec_t exec, cudaGraphNode_t node, const ForestAttentionParams& p) {
  using C = ForestConfigSm90<kD>;
  if (p.num_ctas <= 0) return cudaErrorInvalidValue;  // a captured launch always has CTAs
  return update_kernel_node(exec, node, forest_attention_sm90_kernel<kD, kV3>, dim3(static_cast<unsigned>(p.num_ctas)),
                            dim3(C::kThreads), C::kSmemBytes, p);
}

template <int kD>
cudaError_t info_sm90(ForestKernelInfo* info) {
  using C = ForestConfigSm90<kD>;
  info->threads_per_cta = C::kThreads;
  info->smem_bytes = C::kSmemBytes;
  info->wide_rows = C::kWideRows;
  info->narrow_rows = C::kLeafRows;
  info->tile_keys = C::kTileKeys;
  info->ctas_per_sm = 0;
  // Both pipelines have the same geometry; configure both (either may be launched).
  cudaError_t err = configure_sm90<kD, false>();
  if (err == cudaSuccess) err = configure_sm90<kD, true>();
  if (err != cudaSuccess) return err;
  return cudaOccupancyMaxActiveBlocksPerMultiprocessor(&info->ctas_per_sm, forest_attention_sm90_kernel<kD, true>,
                                                       C::kThreads, C::kSmemBytes);
}

}  // namespace

bool forest_sm90_available() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  if (major != 9 || minor != 0) return false;
  // The build must hold sm_90a machine code (an sm_80 binary of this kernel only traps).
  cudaFuncAttributes attr{};
  if (cudaFuncGetAttributes(&attr, forest_attention_sm90_kernel<128, true>) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attr.binaryVersion == 90;
}

cudaError_t forest_sm90_kernel_info(int head_dim, ForestKernelInfo* info) {
  if (head_dim == 64) return info_sm90<64>(info);
  if (head_dim == 128) return info_sm90<128>(info);
  return cudaErrorInvalidValue;
}

cudaError_t update_forest_attention_sm90_node(cudaGraphExec_t exec, cudaGraphNode_t node,
                                              const ForestAttentionParams& params) {
  const bool v3 = params.wide_pipeline == 3;
  if (params.head_dim == 64) return v3 ? update_node_sm90<64, true>(exec, node, params) : update_node_sm90<64, false>(exec, node, params);
  if (params.head_dim == 128)
    return v3 ? update_node_sm90<128, true>(exec, node, params) : update_node_sm90<128, false>(exec, node, params);
  return cudaErrorInvalidValue;
}

cudaError_t launch_forest_attention_sm90(const ForestAttentionParams& params, cudaStream_t stream) {
  const bool v3 = params.wide_pipeline == 3;
  if (params.head_dim == 64) return v3 ? launch_sm90<64, true>(params, stream) : launch_sm90<64, false>(params, stream);
  if (params.head_dim == 128) return v3 ? launch_sm90<128, true>(params, stream) : launch_sm90<128, false>(params, stream);
  return cudaErrorInvalidValue;
}

}  // namespace canopy::kernels
