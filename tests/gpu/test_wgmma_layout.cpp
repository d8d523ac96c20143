// The v2 kernel's wgmma building blocks on one tile, on the GPU (sm_90a, compute capability 9.0)
// against host products: S = Q K^T (K-major operands from 128-byte-swizzled shared memory) and
// O = P V (P from registers, V N-major). A failure here points at a descriptor or fragment layout
// (forest_layout_sm90.h) rather than at the full kernel's protocols. Also run on the emulator.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/cuda/kernels/forest_attention.h"
#include "core/dtype.h"
#include "forest_workload.h"
#include "gpu_harness.h"
#include "testing/testing.h"
#include "wgmma_tile.h"

namespace canopy::testing {
namespace {

void check_tile(int d, bool emulated) {
  std::mt19937_64 rng(test_seed() + 300 + static_cast<uint64_t>(d));
  const auto q = random_bf16(rng, static_cast<size_t>(64) * d, -1.0f, 1.0f);
  const auto k = random_bf16(rng, static_cast<size_t>(64) * d, -1.0f, 1.0f);
  const auto v = random_bf16(rng, static_cast<size_t>(64) * d, -1.0f, 1.0f);
  const auto p = random_bf16(rng, 64 * 64, 0.0f, 1.0f);
  const WgmmaTileResult r = run_wgmma_tile(q, k, v, p, d, emulated);
  const auto qf = bf16_to_f32(q), kf = bf16_to_f32(k), vf = bf16_to_f32(v), pf = bf16_to_f32(p);
  double max_s = 0.0, max_o = 0.0;
  int bad_s = 0, bad_o = 0;
  for (int m = 0; m < 64; ++m)
    for (int n = 0; n < 64; ++n) {
      double ref = 0.0;
      for (int x = 0; x < d; ++x) ref += static_cast<double>(qf[m * d + x]) * kf[n * d + x];
      const double err = std::abs(r.s[m * 64 + n] - ref);
      max_s = std::max(max_s, err);
      if (!(err <= 1e-3 * (1.0 + std::abs(ref)))) {
        if (bad_s++ < 5) ADD_FAILURE() << "S[" << m << "][" << n << "] = " << r.s[m * 64 + n] << ", expected " << ref;
      }
    }
  for (int m = 0; m < 64; ++m)
    for (int n = 0; n < d; ++n) {
      double ref = 0.0;
      for (int x = 0; x < 64; ++x) ref += static_cast<double>(pf[m * 64 + x]) * vf[x * d + n];
      const double err = std::abs(r.o[m * d + n] - ref);
      max_o = std::max(max_o, err);
      if (!(err <= 1e-3 * (1.0 + std::abs(ref)))) {
        if (bad_o++ < 5) ADD_FAILURE() << "O[" << m << "][" << n << "] = " << r.o[m * d + n] << ", expected " << ref;
      }
    }
  std::printf("  wgmma tile D%d (%s): max|S err| %.3g, max|O err| %.3g, %d + %d bad elements\n", d,
              emulated ? "emulated" : "gpu", max_s, max_o, bad_s, bad_o);
  EXPECT_EQ(bad_s, 0) << "S = Q K^T: K-major descriptors or the accumulator layout disagree with the hardware";
  EXPECT_EQ(bad_o, 0) << "O = P V: the N-major V descriptor (LBO) or the register-A layout disagree with the hardware";
}

TEST(WgmmaLayout, TileProductsOnTheGpu) {
  CANOPY_SKIP_WITHOUT_GPU();
  if (gpu_emulated()) GTEST_SKIP() << "emulated: see WgmmaLayout.TileProductsEmulated";
  if (!kernels::forest_sm90_available()) GTEST_SKIP() << "no sm_90a build or no compute capability 9.0 device";
  check_tile(128, false);
  check_tile(64, false);
}

TEST(WgmmaLayout, TileProductsEmulated) {
  check_tile(128, true);
  check_tile(64, true);
}

}  // namespace
}  // namespace canopy::testing
