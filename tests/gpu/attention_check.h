// One attention case (plan, geometry, bf16 data) and its check against the host references:
// the f32 CPU reference (attention/cpu_attention.h) and the plain-bf16 emulation whose error
// sets the tolerance (DESIGN.md section 5: the kernels' error must stay within a small multiple of
// a plain bf16 implementation's error). Prints the measured errors of every case.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "attention/plan.h"
#include "backend/cuda/forest_launch_plan.h"
#include "forest_workload.h"
#include "gpu_harness.h"
#include "kv/kv_layout.h"

namespace canopy::testing {

struct AttentionCase {
  std::string label;
  AttentionPlan plan;
  AttentionShape shape;
  KvLayout layout;
  std::vector<uint16_t> q, k, v;  // bf16 bits
};

// Fills q, k, v with fresh random bf16 values (q scaled by q_scale: larger values make the
// softmax peakier).
void fill_random(AttentionCase& c, std::mt19937_64& rng, float q_scale = 1.0f);

// The reference of a case (f32 CPU and plain-bf16 emulation).
struct Reference {
  std::vector<float> out, lse, partial_o, partial_lse;          // f32 reference
  std::vector<float> emu_out, emu_lse, emu_partial_o, emu_partial_lse;  // plain bf16 emulation
};
Reference compute_reference(const AttentionCase& c);

// Tolerances (measured multiples; see attention-notes.md).
inline constexpr double kErrFactor = 4.0;    // kernel max error <= kErrFactor * plain bf16 max error + kErrFloor
inline constexpr double kErrFloor = 1e-5;
inline constexpr double kLseTol = 5e-4;      // base-2 LSE, absolute
inline constexpr double kRelL2Tol = 2e-2;

// Checks a kernel result (GPU or emulated) against the reference: out, LSE, counters and, for
// kPartials without splits, the partials; gtest expectations, measured errors printed.
void check_result(const AttentionCase& c, const Reference& ref, kernels::ForestOutputMode mode,
                  const GpuAttentionResult& result, const char* backend);

// Runs the case on the GPU with every kernel variant (gpu_harness.h: v1, and v2 where it runs) and
// checks each. Returns the last variant's result for identity tests. options == nullptr: the
// device's defaults; otherwise its plan settings (splits, SM count) apply to every variant.
GpuAttentionResult check_case(const AttentionCase& c, const Reference& ref, kernels::ForestOutputMode mode,
                              const cuda::ForestLaunchOptions* options = nullptr, int repeats = 1);

// Expects two GPU outputs of the same tokens to agree within the sum of their tolerances.
void expect_outputs_agree(const std::string& what, const std::vector<float>& a, const std::vector<float>& b,
                          const Reference& ref);

}  // namespace canopy::testing
