// Host-side launch helpers shared by the kernel launchers (forest_attention*.cu): opting a kernel
// into large dynamic shared memory once per device, and re-pointing a kernel node of an
// instantiated CUDA graph at new parameters.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>

namespace canopy::kernels {

// Opts `kernel` into `smem_bytes` of dynamic shared memory (above 48 KB) and the largest carveout,
// once per device and kernel (the attributes are per device; setting them on every launch would
// put driver calls in front of every kernel). `configured` is the kernel's own bit set of devices.
template <typename Kernel>
cudaError_t configure_large_smem_once(Kernel kernel, int smem_bytes, std::atomic<uint64_t>& configured) {
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (bit != 0 && (configured.load(std::memory_order_acquire) & bit) != 0) return cudaSuccess;
  err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
  if (err != cudaSuccess) return err;
  err = cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
  if (err != cudaSuccess) return err;
  configured.fetch_or(bit, std::memory_order_release);
  return cudaSuccess;
}

// Sets the node a captured launch kernel<<<grid, block, smem>>>(params) added, in `exec`, to
// launch the same way with `params` (copied into the node by the call).
template <typename Kernel, typename Params>
cudaError_t update_kernel_node(cudaGraphExec_t exec, cudaGraphNode_t node, Kernel kernel, dim3 grid, dim3 block,
                               unsigned smem_bytes, const Params& params) {
  Params arg = params;
  void* args[] = {&arg};
  cudaKernelNodeParams n{};
  n.func = reinterpret_cast<void*>(kernel);
  n.gridDim = grid;
  n.blockDim = block;
  n.sharedMemBytes = smem_bytes;
  n.kernelParams = args;
  return cudaGraphExecKernelNodeSetParams(exec, node, &n);
}

}  // namespace canopy::kernels
