// Running attention plans on the GPU from tests: device detection (tests skip cleanly without a
// device), upload, poisoned outputs, download.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "attention/plan.h"
#include "backend/cuda/forest_attention_runner.h"
#include "kv/kv_layout.h"

namespace canopy::testing {

// CANOPY_GPU_EMULATE=1: the "GPU" tests run the kernels' source on the host emulator instead
// (slow; for checking kernels and tests on a machine without a GPU).
bool gpu_emulated();
bool cuda_device_available();  // true under emulation

#define CANOPY_SKIP_WITHOUT_GPU() \
  if (!::canopy::testing::cuda_device_available()) GTEST_SKIP() << "no CUDA device: GPU test skipped"

struct GpuAttentionResult {
  std::vector<float> out;          // [T, Hq, D] (bf16 on the device)
  std::vector<float> lse;          // [T, Hq]
  std::vector<float> partial_o;    // kPartials only: [launch slots, Hq, D]
  std::vector<float> partial_lse;  // kPartials only: [launch slots, Hq]
  cuda::ForestLaunchPlan launch_plan;
  bool counters_clear = true;  // every merge counter was zero after every launch
  std::vector<int64_t> timeline;  // emulated v2 runs: the kernel's per-CTA timeline (start, wide end, end)
};

// Runs `plan` `repeats` times (outputs and partials poisoned with NaN before each run) and
// returns the last run's results. options == nullptr: the current device's defaults.
GpuAttentionResult run_plan_on_gpu(const AttentionPlan& plan, const AttentionShape& shape, const KvLayout& layout,
                                   const std::vector<uint16_t>& q, const std::vector<uint16_t>& k_cache,
                                   const std::vector<uint16_t>& v_cache, kernels::ForestOutputMode mode,
                                   const cuda::ForestLaunchOptions* options = nullptr, int repeats = 1);

// Launch options of the current device (the defaults under emulation).
cuda::ForestLaunchOptions device_options(int head_dim);

// The kernels a test should check with `base`'s plan settings: v1 (mma.sync) always, v2 and v3 (wgmma)
// where it runs (an sm_90a build on a compute capability 9.0 device) and under emulation (on a
// small persistent grid). Kernel-specific fields (kernel, CTAs per SM) are set per variant.
std::vector<cuda::ForestLaunchOptions> kernel_variants(const cuda::ForestLaunchOptions& base, int head_dim);
const char* kernel_name(cuda::ForestKernel kernel);
// "v1", "v2" or "v3" (the wgmma kernel's wide pipeline).
const char* variant_name(const cuda::ForestLaunchOptions& o);

// The same on the host emulator (kernel_emulator.h): `concurrent_ctas` CTAs interleave.
GpuAttentionResult run_plan_emulated(const AttentionPlan& plan, const AttentionShape& shape, const KvLayout& layout,
                                     const std::vector<uint16_t>& q, const std::vector<uint16_t>& k_cache,
                                     const std::vector<uint16_t>& v_cache, kernels::ForestOutputMode mode,
                                     const cuda::ForestLaunchOptions& options, int concurrent_ctas = 3,
                                     int repeats = 1);

}  // namespace canopy::testing
