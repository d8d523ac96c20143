// Parameters of the one-tile wgmma kernel (wgmma_tile_kernel.cuh), usable from host code.
#pragma once

#include <cstdint>

namespace canopy::kernels {

struct WgmmaTileParams {
  const uint16_t* q;  // bf16 [64, D]
  const uint16_t* k;  // bf16 [64, D]
  const uint16_t* v;  // bf16 [64, D]
  const uint16_t* p;  // bf16 [64, 64]
  float* s;           // f32 [64, 64] = Q K^T
  float* o;           // f32 [64, D] = P V
};

}  // namespace canopy::kernels
