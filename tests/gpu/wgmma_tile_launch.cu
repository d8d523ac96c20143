// GPU launch of the one-tile wgmma kernel (wgmma_tile.h). Device code only: the host side of the
// test (buffers, checks) is in wgmma_tile.cpp.
#include <cuda_runtime_api.h>

#include "wgmma_tile.h"
#include "wgmma_tile_kernel.cuh"

namespace canopy::testing {

cudaError_t launch_wgmma_tile(const void* params, int head_dim) {
  const auto& prm = *static_cast<const kernels::WgmmaTileParams*>(params);
  const int smem = 3 * 64 * head_dim * 2 + 1024;
  cudaError_t err;
  if (head_dim == 128) {
    err = cudaFuncSetAttribute(kernels::wgmma_tile_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (err != cudaSuccess) return err;
    kernels::wgmma_tile_kernel<128><<<1, 128, smem>>>(prm);
  } else {
    err = cudaFuncSetAttribute(kernels::wgmma_tile_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (err != cudaSuccess) return err;
    kernels::wgmma_tile_kernel<64><<<1, 128, smem>>>(prm);
  }
  return cudaGetLastError();
}

}  // namespace canopy::testing
