// Runs the one-tile wgmma kernel (wgmma_tile_kernel.cuh) on the GPU or on the emulator.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

namespace canopy::testing {

struct WgmmaTileResult {
  std::vector<float> s;  // [64, 64] = Q K^T
  std::vector<float> o;  // [64, D] = P V
};

// q, k, v: bf16 [64, D]; p: bf16 [64, 64]. On the GPU (needs sm_90a and a compute capability 9.0
// device) or, with emulated, on the host emulator.
WgmmaTileResult run_wgmma_tile(const std::vector<uint16_t>& q, const std::vector<uint16_t>& k,
                               const std::vector<uint16_t>& v, const std::vector<uint16_t>& p, int head_dim,
                               bool emulated);

// The GPU launch (wgmma_tile_launch.cu) and the emulator's run (emulated_forest_kernel.cpp):
// params is a kernels::WgmmaTileParams (device or host pointers).
cudaError_t launch_wgmma_tile(const void* params, int head_dim);
void emulate_wgmma_tile(const void* params, int head_dim);

}  // namespace canopy::testing
