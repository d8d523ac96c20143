// A one-warpgroup kernel that exercises exactly the v2 kernel's wgmma building blocks on one tile:
// S = Q K^T (both operands K-major, 128-byte swizzle, from shared memory) and O = P V (P from
// registers in the accumulator-derived A layout, V N-major with LBO between 64-column halves).
// The test (test_wgmma_layout.cpp) compares S and O with host products, so a wrong descriptor or
// fragment layout is pinned down apart from the full kernel's protocols. Built for the GPU
// (wgmma_tile_launch.cu) and for the emulator (emulated_forest_kernel.cpp).
#pragma once

#include <cstdint>

#include "forest_layout_sm90.h"
#include "mma_sm80.cuh"
#include "sm90_primitives.cuh"
#include "wgmma_tile_kernel.h"

namespace canopy::kernels {

template <int kD>
__global__ void __launch_bounds__(128) wgmma_tile_kernel(const __grid_constant__ WgmmaTileParams prm) {
#if defined(__CUDA_ARCH__) && !defined(CANOPY_SM90A)
  __trap();
#else
  constexpr int kChunks = kD / 8;
  constexpr int kTileBytes = 64 * kD * 2;
  constexpr int kRegion = 64 * 128;
  unsigned char* raw = dynamic_smem();
  const uint32_t raw_u32 = smem_u32(raw);
  const uint32_t base = raw_u32 + ((1024u - (raw_u32 & 1023u)) & 1023u);
  const uint32_t sq = base, sk = base + kTileBytes, sv = base + 2 * kTileBytes;
  const int tid = static_cast<int>(threadIdx.x);
  for (int idx = tid; idx < 64 * kChunks; idx += 128) {
    const int r = idx / kChunks, c = idx % kChunks;
    const uint32_t off = static_cast<uint32_t>(sw128_offset(r, c, 64));
    cp_async_16(sq + off, prm.q + r * kD + c * 8, true);
    cp_async_16(sk + off, prm.k + r * kD + c * 8, true);
    cp_async_16(sv + off, prm.v + r * kD + c * 8, true);
  }
  cp_async_commit();
  cp_async_wait<0>();
  fence_proxy_async_shared();
  __syncthreads();

  const int warp = tid / 32, lane = tid % 32, gid = lane / 4, t4 = lane % 4;
  float s[32];
  for (int i = 0; i < 32; ++i) s[i] = 0.0f;
  wgmma_fence();
  for (int ks = 0; ks < kD / 16; ++ks) {
    const uint32_t koff = static_cast<uint32_t>((ks / 4) * kRegion + (ks % 4) * 32);
    wgmma_m64n64k16_ss(s, wgmma_desc_sw128(sq + koff, 16, 1024), wgmma_desc_sw128(sk + koff, 16, 1024), ks > 0 ? 1 : 0);
  }
  wgmma_commit();
  wgmma_wait<0>();
  for (int i = 0; i < 32; ++i) reg_fence(s[i]);
  for (int j = 0; j < 8; ++j)
    for (int e = 0; e < 4; ++e) prm.s[(16 * warp + gid + 8 * (e / 2)) * 64 + 8 * j + 2 * t4 + e % 2] = s[4 * j + e];

  // P as if it were this thread's S accumulators, packed exactly like the kernel packs them.
  float pf[32];
  for (int j = 0; j < 8; ++j)
    for (int e = 0; e < 4; ++e) {
      const uint16_t bits = prm.p[(16 * warp + gid + 8 * (e / 2)) * 64 + 8 * j + 2 * t4 + e % 2];
      pf[4 * j + e] = __uint_as_float(static_cast<uint32_t>(bits) << 16);
    }
  uint32_t pa[4][4];
  for (int kk = 0; kk < 4; ++kk) {
    pa[kk][0] = pack_bf16x2(pf[4 * (2 * kk) + 0], pf[4 * (2 * kk) + 1]);
    pa[kk][1] = pack_bf16x2(pf[4 * (2 * kk) + 2], pf[4 * (2 * kk) + 3]);
    pa[kk][2] = pack_bf16x2(pf[4 * (2 * kk + 1) + 0], pf[4 * (2 * kk + 1) + 1]);
    pa[kk][3] = pack_bf16x2(pf[4 * (2 * kk + 1) + 2], pf[4 * (2 * kk + 1) + 3]);
  }
  float o[kD / 2];
  for (int i = 0; i < kD / 2; ++i) o[i] = 0.0f;
  wgmma_fence();
  for (int kk = 0; kk < 4; ++kk) {
    const uint64_t desc = wgmma_desc_sw128(sv + kk * 16 * 128, kRegion, 1024);
    if constexpr (kD == 128) {
      wgmma_m64n128k16_rs(o, pa[kk], desc);
    } else {
      wgmma_m64n64k16_rs(o, pa[kk], desc);
    }
  }
  wgmma_commit();
  wgmma_wait<0>();
  for (int i = 0; i < kD / 2; ++i) reg_fence(o[i]);
  for (int j = 0; j < kD / 8; ++j)
    for (int e = 0; e < 4; ++e) prm.o[(16 * warp + gid + 8 * (e / 2)) * kD + 8 * j + 2 * t4 + e % 2] = o[4 * j + e];
#endif
}

}  // namespace canopy::kernels
