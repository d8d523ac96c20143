// The CPU backend's kernels against plain double-precision references, and the property the
// engine relies on: a row's result does not depend on the other rows of the batch.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_kernels.h"
#include "model/weights.h"
#include "testing/testing.h"

namespace canopy {
namespace {

TEST(CpuKernels, LinearMatchesReferenceAndIsBatchInvariant) {
  std::mt19937_64 rng(testing::test_seed());
  for (const auto& [T, N, K] : {std::tuple{1, 7, 5}, {5, 13, 67}, {9, 64, 576}, {3, 1, 8}}) {
    const auto x = testing::random_floats(rng, static_cast<size_t>(T * K));
    const auto w = testing::random_floats(rng, static_cast<size_t>(N * K));
    const auto b = testing::random_floats(rng, static_cast<size_t>(N));
    std::vector<float> y(static_cast<size_t>(T * N));
    cpu::linear_f32(x.data(), w.data(), b.data(), y.data(), T, N, K);
    for (int t = 0; t < T; ++t) {
      for (int n = 0; n < N; ++n) {
        double ref = b[static_cast<size_t>(n)];
        for (int k = 0; k < K; ++k)
          ref += static_cast<double>(x[static_cast<size_t>(t * K + k)]) * w[static_cast<size_t>(n * K + k)];
        EXPECT_NEAR(y[static_cast<size_t>(t * N + n)], ref, 1e-5 * K) << T << "x" << N << "x" << K;
      }
      // The same row alone gives bitwise the same outputs.
      std::vector<float> single(static_cast<size_t>(N));
      cpu::linear_f32(x.data() + t * K, w.data(), b.data(), single.data(), 1, N, K);
      for (int n = 0; n < N; ++n) EXPECT_EQ(single[static_cast<size_t>(n)], y[static_cast<size_t>(t * N + n)]);
      EXPECT_EQ(cpu::dot_f32(x.data() + t * K, w.data(), K) + b[0], y[static_cast<size_t>(t * N)]);
    }
  }
}

TEST(CpuKernels, AddRmsNormRopeSwiglu) {
  std::mt19937_64 rng(testing::test_seed());
  const int T = 3, H = 40;
  auto r = testing::random_floats(rng, T * H);
  const auto d = testing::random_floats(rng, T * H);
  const auto w = testing::random_floats(rng, H);
  const auto r0 = r;
  std::vector<float> out(T * H);
  cpu::add_rms_norm_f32(r.data(), d.data(), w.data(), 1e-5f, out.data(), T, H);
  for (int t = 0; t < T; ++t) {
    double ss = 0;
    for (int i = 0; i < H; ++i) ss += std::pow(double(r0[t * H + i]) + d[t * H + i], 2);
    const double inv = 1 / std::sqrt(ss / H + 1e-5);
    for (int i = 0; i < H; ++i) {
      EXPECT_FLOAT_EQ(r[t * H + i], r0[t * H + i] + d[t * H + i]);
      EXPECT_NEAR(out[t * H + i], w[i] * (double(r0[t * H + i]) + d[t * H + i]) * inv, 1e-5);
    }
  }

  // RoPE: rotating by position p then reading pair (i, i + D/2) as a complex number multiplies it
  // by exp(i * p * inv_freq[i]); norms are preserved.
  const int D = 8, Hh = 2;
  auto x = testing::random_floats(rng, 2 * Hh * D);
  const auto x0 = x;
  const std::vector<int32_t> pos = {0, 5};
  const std::vector<float> inv_freq = {1.0f, 0.1f, 0.01f, 0.001f};
  cpu::rope_f32(x.data(), pos.data(), inv_freq.data(), 2, Hh, D);
  for (int t = 0; t < 2; ++t)
    for (int h = 0; h < Hh; ++h)
      for (int i = 0; i < D / 2; ++i) {
        const size_t base = static_cast<size_t>((t * Hh + h) * D);
        const double a = pos[t] * double(inv_freq[i]);
        const double re = x0[base + i] * std::cos(a) - x0[base + i + D / 2] * std::sin(a);
        const double im = x0[base + i + D / 2] * std::cos(a) + x0[base + i] * std::sin(a);
        EXPECT_NEAR(x[base + i], re, 1e-6);
        EXPECT_NEAR(x[base + i + D / 2], im, 1e-6);
      }

  const std::vector<float> gate_up = {1.0f, -2.0f, 3.0f, 0.5f};  // T = 1, I = 2
  std::vector<float> act(2);
  cpu::swiglu_f32(gate_up.data(), act.data(), 1, 2);
  EXPECT_NEAR(act[0], 1.0 / (1 + std::exp(-1.0)) * 3.0, 1e-6);
  EXPECT_NEAR(act[1], -2.0 / (1 + std::exp(2.0)) * 0.5, 1e-6);
}

// unpermute_gguf_qk_rows inverts llama.cpp's converter permutation
// (reshape(heads, 2, D/2, cols).swapaxes(1, 2)).
TEST(Weights, UnpermuteInvertsTheGgufPermutation) {
  const int heads = 3, D = 8, cols = 2;
  std::vector<float> hf(static_cast<size_t>(heads * D * cols));
  for (size_t i = 0; i < hf.size(); ++i) hf[i] = static_cast<float>(i);
  std::vector<float> gguf(hf.size());
  for (int h = 0; h < heads; ++h)
    for (int half = 0; half < 2; ++half)
      for (int j = 0; j < D / 2; ++j)
        for (int c = 0; c < cols; ++c)
          gguf[static_cast<size_t>(((h * D) + 2 * j + half) * cols + c)] =
              hf[static_cast<size_t>(((h * D) + half * D / 2 + j) * cols + c)];
  unpermute_gguf_qk_rows(gguf, heads, D, cols);
  EXPECT_EQ(gguf, hf);
}

}  // namespace
}  // namespace canopy
