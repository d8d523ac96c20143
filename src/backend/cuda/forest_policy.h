// Which forest kernel and output mode a step runs with when nothing is forced (the engine's
// default): a choice from the step's balance of tensor work and streaming, fitted to the H100
// measurements of the grid in bench/attention (bench/results/, docs/kernels/attention-notes.md).
//
//   balance = (FLOPs of the wide items at the tensor peak) / (KV bytes of the narrow items at the
//             DRAM bandwidth)
//
// where an item is wide when its rows (query tokens x GQA group) exceed a narrow unit's 16, as in
// the launch plan. Measured, unfused (partials + merge kernel) beat the fused merge on every grid
// point with both kernels, so the default is unfused. v1 (two CTAs per SM: a shared node's CTA
// beside leaf CTAs on the same SM) overlapped the two resources best when neither dominates
// (balance 0.2-1.0 with GQA: the 32/8 points with P <= 4096 and the three-level tree, 4-15% faster
// than the wgmma kernel); the persistent wgmma kernel won where one side dominates (leaf-bound
// steps, the compute-heavy long prefixes) and on every 40/40 point but two (within 2%). Host-only and deterministic, so tests pin it.
#pragma once

#include "attention/plan.h"
#include "forest_attention.h"
#include "forest_launch_plan.h"

namespace canopy::cuda {

struct ForestStepBalance {
  double wide_flops = 0.0;  // 4 * rows * keys * D over the wide items (QK^T and PV)
  double leaf_bytes = 0.0;  // K and V bytes (bf16) of the narrow items, per KV head
  double balance = 0.0;     // (wide_flops / peak) / (leaf_bytes / bandwidth); +inf without leaves
  int group = 1;            // query heads per KV head
};

ForestStepBalance forest_step_balance(const AttentionPlan& plan, const AttentionShape& shape,
                                      double peak_flops = 790e12, double bandwidth = 3.0e12);

struct ForestChoice {
  ForestKernel kernel = ForestKernel::kMmaSync;
  int wgmma_version = 2;  // with kWgmma
  kernels::ForestOutputMode mode = kernels::ForestOutputMode::kPartials;
};

// The default for a step: v1 where the wgmma kernel is not available; else v1 for grouped-query
// attention with a balance in [kV1BalanceLow, kV1BalanceHigh] and for small plain decode steps,
// the wgmma kernel (v2) otherwise
// (with one query head per KV head v1 never won by more than 2%, and lost by up to 25% at
// 40/40 B=1024 P=16384); unfused in every case.
inline constexpr double kV1BalanceLow = 0.2;
inline constexpr double kV1BalanceHigh = 1.0;
// Plain decode (no wide item) reading less than this: v1 (Llama-3-8B decode at context ~140 on the
// H100: 19 us vs 38 us per layer for one sequence, 71 vs 91 us for 256; the persistent kernel's
// fixed start-up is not paid back by so little streaming).
inline constexpr double kV1PlainDecodeBytes = 1e9;
ForestChoice choose_forest_kernel(const ForestStepBalance& balance, bool wgmma_available);

}  // namespace canopy::cuda
