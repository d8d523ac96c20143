// The CPU backend's kernels on raw f32 pointers, all cores (OpenMP). Each output element is
// computed by one thread in a fixed order, so results are bitwise identical whatever the number
// of threads and whatever else shares the batch (a token's logits do not depend on the batch).
#pragma once

#include <cstdint>

namespace canopy::cpu {

// y [T, N] = x [T, K] @ w [N, K]^T (+ bias [N] when non-null).
void linear_f32(const float* x, const float* w, const float* bias, float* y, int64_t T, int64_t N, int64_t K);

// One dot product in the same order linear_f32 uses (so tests can compare bitwise).
float dot_f32(const float* a, const float* b, int64_t K);

// residual [T, H] += delta (when non-null); out [T, H] = rmsnorm(residual) * weight [H].
void add_rms_norm_f32(float* residual, const float* delta, const float* weight, float eps, float* out,
                      int64_t T, int64_t H);

// x [T, H, D] rotated in place at positions [T] (rotate-half convention; model/rope.h).
void rope_f32(float* x, const int32_t* positions, const float* inv_freq, int64_t T, int64_t H, int64_t D);

// out [T, I] = silu(gate_up[:, :I]) * gate_up[:, I:].
void swiglu_f32(const float* gate_up, float* out, int64_t T, int64_t I);

}  // namespace canopy::cpu
