// Which forest kernel and output mode a step runs with when nothing is forced (the engine's
// default): a choice from the step's balance of tensor work and streaming, fitted to the H100
// measurements of the grid in bench/attention (bench/results/, docs/kernels/attention-notes.md).
//
//   balance = (FLOPs of the wide items at the tensor peak) / (KV bytes of the narrow items at the
//             DRAM bandwidth)
//
// where an item is wide when its rows (query tokens x GQA group) exceed a narrow unit's (the launch
// plan's rule, forest_launch_plan.cpp). Measured on the H100 (2026-11-26, bench/results/attention-*-2026-11-26.*):
// unfused (partials + merge kernel) beat the fused merge on every grid point with every kernel; v3
// (the wgmma kernel with the pipelined wide path, leaf prefetch off) was the fastest or within 2%
// of it on every point but the nearly plain decode steps, where v1's non-persistent launch is
// cheaper than the persistent kernel's start-up. Host-only and deterministic, so tests pin it.
#pragma once

#include "attention/plan.h"
#include "forest_attention.h"
#include "forest_launch_plan.h"

namespace canopy::cuda {

struct ForestStepBalance {
  double wide_flops = 0.0;  // 4 * rows * keys * D over the wide items (QK^T and PV)
  double leaf_bytes = 0.0;  // K and V bytes (bf16, every KV head) of the narrow items
  double balance = 0.0;     // (wide_flops / peak) / (leaf_bytes / bandwidth); +inf without leaves
};

ForestStepBalance forest_step_balance(const AttentionPlan& plan, const AttentionShape& shape,
                                      double peak_flops = 790e12, double bandwidth = 3.0e12);

struct ForestChoice {
  ForestKernel kernel = ForestKernel::kMmaSync;
  int wgmma_version = 3;  // with kWgmma
  kernels::ForestOutputMode mode = kernels::ForestOutputMode::kPartials;
};

// The default for a step: v1 where the wgmma kernel is not available and for small (nearly) plain
// decode steps (below); v3 unfused otherwise.
// (Nearly) plain decode, balance below kNearlyPlainDecode, reading less than kV1PlainDecodeBytes:
// v1 (Llama-3-8B decode at context ~140 on the H100: 19 us vs 38 us per layer for one sequence,
// 71 vs 91 us for 256; 40/40 B=256 P=1024, balance 0.03: 0.267 vs 0.284 ms; the persistent
// kernel's fixed start-up is not paid back by so little streaming).
inline constexpr double kNearlyPlainDecode = 0.05;
inline constexpr double kV1PlainDecodeBytes = 1.5e9;
ForestChoice choose_forest_kernel(const ForestStepBalance& balance, bool wgmma_available);

}  // namespace canopy::cuda
