// y = x @ w^T on the CPU: the operation that dominates the forward pass.
//
// The work is cut into tiles of kRowsW weight rows by kRowsX input rows; a tile keeps
// kRowsW * kRowsX accumulators of kLanes floats (vector registers under -march=native), so every
// weight element loaded feeds kRowsX products and every input element kRowsW. Threads split the
// weight rows: each weight byte is read from memory once per step, shared by all rows of x.
//
// Summation order, fixed for every (input row, output) pair whatever the tile shape: lane l sums
// k = l (mod kLanes) in increasing k, the lanes are reduced pairwise, then the tail k >= K8 is
// added in order. So a row's result does not depend on T or on the tile it fell in.
#include <cmath>
#include <cstring>
#if defined(__FMA__) && defined(__AVX__)
#include <immintrin.h>
#endif

#include "backend/cpu/cpu_kernels.h"

namespace canopy::cpu {
namespace {

// 8 f32 lanes (one AVX2 register; the compiler splits or merges it for other vector widths).
typedef float Lanes __attribute__((vector_size(32)));
constexpr int kLanes = 8;
constexpr int kRowsW = 4;
constexpr int kRowsX = 2;

inline Lanes load(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// acc + a * b, one rounding per lane where the CPU has FMA. Written out because the compiler's
// own contraction (-ffp-contract=fast) may fuse differently in different instantiations of a tile,
// which would break the fixed summation order; this file is built with -ffp-contract=off.
inline Lanes multiply_add(Lanes a, Lanes b, Lanes acc) {
#if defined(__FMA__) && defined(__AVX__)
  return _mm256_fmadd_ps(a, b, acc);
#else
  return acc + a * b;
#endif
}

inline float multiply_add(float a, float b, float acc) {
#if defined(__FMA__)
  return std::fma(a, b, acc);
#else
  return acc + a * b;
#endif
}

inline float reduce_lanes(Lanes v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

// y[c * ldy + r] for r < RW (weight rows), c < RX (input rows).
template <int RW, int RX>
inline void tile(const float* x, const float* w, const float* bias, float* y, int64_t K, int64_t ldy) {
  Lanes acc[RW][RX] = {};
  const int64_t k_vec = K / kLanes * kLanes;
  for (int64_t k = 0; k < k_vec; k += kLanes) {
    Lanes xv[RX];
    for (int c = 0; c < RX; ++c) xv[c] = load(x + c * K + k);
    for (int r = 0; r < RW; ++r) {
      const Lanes wv = load(w + r * K + k);
      for (int c = 0; c < RX; ++c) acc[r][c] = multiply_add(wv, xv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < RW; ++r) {
    for (int c = 0; c < RX; ++c) {
      float s = reduce_lanes(acc[r][c]);
      for (int64_t k = k_vec; k < K; ++k) s = multiply_add(w[r * K + k], x[c * K + k], s);
      if (bias != nullptr) s += bias[r];
      y[c * ldy + r] = s;
    }
  }
}

template <int RW>
inline void row_block(const float* x, const float* w, const float* bias, float* y, int64_t T, int64_t N,
                      int64_t K) {
  int64_t t = 0;
  for (; t + kRowsX <= T; t += kRowsX) tile<RW, kRowsX>(x + t * K, w, bias, y + t * N, K, N);
  for (; t < T; ++t) tile<RW, 1>(x + t * K, w, bias, y + t * N, K, N);
}

}  // namespace

void linear_f32(const float* x, const float* w, const float* bias, float* y, int64_t T, int64_t N, int64_t K) {
  const int64_t blocks = N / kRowsW;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t n = b * kRowsW;
    row_block<kRowsW>(x, w + n * K, bias != nullptr ? bias + n : nullptr, y + n, T, N, K);
  }
  for (int64_t n = blocks * kRowsW; n < N; ++n)
    row_block<1>(x, w + n * K, bias != nullptr ? bias + n : nullptr, y + n, T, N, K);
}

float dot_f32(const float* a, const float* b, int64_t K) {
  float y = 0.0f;
  tile<1, 1>(a, b, nullptr, &y, K, 1);
  return y;
}

}  // namespace canopy::cpu
