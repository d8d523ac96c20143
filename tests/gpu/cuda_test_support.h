// Helpers for the CUDA backend's tests: the backends side by side, bf16-exact inputs, error
// statistics. Every test that touches the device starts with CANOPY_SKIP_WITHOUT_GPU().
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "gpu_harness.h"
#include "testing/testing.h"

namespace canopy::testing {

inline std::unique_ptr<Backend> cuda_backend(bool graphs = true, double utilization = 0.9) {
  CudaBackendOptions o;
  o.cuda_graphs = graphs;
  o.gpu_memory_utilization = utilization;
  return make_cuda_backend(o);
}

// Values a bf16 tensor can hold exactly, so that the CPU (f32) and the GPU (bf16) see the same inputs.
inline std::vector<float> bf16_values(std::mt19937_64& rng, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v = random_floats(rng, n, lo, hi);
  for (float& x : v) x = bf16_to_f32(f32_to_bf16(x));
  return v;
}

// On the CPU backend every tensor is f32; on the GPU matrices and activations are bf16, vectors f32.
inline DeviceTensor put(Backend& b, const std::vector<float>& host, Shape shape, bool vector_f32 = false) {
  const DType dtype = vector_f32 ? DType::F32 : b.activation_dtype();
  return b.upload(host.data(), shape, dtype);
}

inline std::vector<float> get(Backend& b, const TensorView& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  b.download(t, host.data());
  return host;
}

inline std::vector<float> nan_filled(size_t n) { return std::vector<float>(n, std::nanf("")); }

// Largest |got - want| / (rel * |want| + abs_floor) over the elements: <= 1 passes.
struct Closeness {
  double worst_ratio = 0.0;
  double max_abs = 0.0;
  size_t worst_index = 0;
  size_t non_finite = 0;
};
inline Closeness compare(const std::vector<float>& got, const std::vector<float>& want, double rel,
                         const std::vector<double>& abs_floor) {
  Closeness c;
  EXPECT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    if (!std::isfinite(got[i])) {
      ++c.non_finite;
      continue;
    }
    const double d = std::abs(static_cast<double>(got[i]) - want[i]);
    const double ratio = d / (rel * std::abs(want[i]) + abs_floor[i]);
    c.max_abs = std::max(c.max_abs, d);
    if (ratio > c.worst_ratio) {
      c.worst_ratio = ratio;
      c.worst_index = i;
    }
  }
  return c;
}
inline Closeness compare(const std::vector<float>& got, const std::vector<float>& want, double rel, double abs_floor) {
  return compare(got, want, rel, std::vector<double>(want.size(), abs_floor));
}

// One bf16 rounding (half an ulp is at most 2^-8 relative), with a margin of 2: 2^-7.
inline constexpr double kBf16Rel = 1.0 / 128.0;

// Expects closeness (ratio <= 1, every element finite) and prints the measured error.
inline void expect_close(const Closeness& c, const std::string& what) {
  EXPECT_EQ(c.non_finite, 0u) << what << ": elements left unwritten or not finite";
  EXPECT_LE(c.worst_ratio, 1.0) << what << ": element " << c.worst_index << " off by " << c.max_abs;
  std::printf("[ measured ] %s: max |gpu - cpu| = %.3g (%.2f of the tolerance)\n", what.c_str(), c.max_abs,
              c.worst_ratio);
}

// A plan for T query tokens of one sequence at the given positions with no attention items (the
// ops other than attention only read the positions).
inline AttentionPlan positions_only_plan(const std::vector<int32_t>& positions) {
  AttentionPlan plan;
  plan.num_tokens = static_cast<int32_t>(positions.size());
  plan.q_positions = positions;
  plan.merge_offsets.assign(positions.size() + 1, 0);
  return plan;
}

}  // namespace canopy::testing
