// Host build of the CUDA kernels for the emulator: CUDA builtins and the sm_80 primitives of
// mma_sm80.cuh re-implemented with the PTX ISA's semantics on top of kernel_emulator.h.
#include "emulated_forest_kernel.h"

#include <cuda_runtime_api.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/dtype.h"
#include "kernel_emulator.h"

// The emulated kernels live in canopy::kernels_emu, apart from the real ones in canopy::kernels.
#define CANOPY_KERNEL_EMULATION 1
#define kernels kernels_emu
#define __launch_bounds__(...)
#define threadIdx (::canopy::emu::thread_idx())
#define blockIdx (::canopy::emu::block_idx())

// ---- CUDA builtins
namespace {
template <typename T>
uint32_t to_bits(T v) {
  static_assert(sizeof(T) == 4);
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}
template <typename T>
T from_bits(uint32_t b) {
  T v;
  std::memcpy(&v, &b, 4);
  return v;
}
void shfl_compute(const uint32_t (*in)[16], uint32_t (*out)[16]) {
  for (int l = 0; l < 32; ++l) out[l][0] = in[in[l][1] & 31][0];
}
void shfl_xor_compute(const uint32_t (*in)[16], uint32_t (*out)[16]) {
  for (int l = 0; l < 32; ++l) out[l][0] = in[(static_cast<uint32_t>(l) ^ in[l][1]) & 31][0];
}
}  // namespace

inline void __syncthreads() { canopy::emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { canopy::emu::syncwarp(); }
inline void __threadfence() { canopy::emu::yield(); }
[[noreturn]] inline void __trap() {
  std::fprintf(stderr, "kernel emulator: __trap()\n");
  std::abort();
}
template <typename T>
T __shfl_sync(unsigned, T v, int src) {
  const uint32_t in[2] = {to_bits(v), static_cast<uint32_t>(src)};
  uint32_t out = 0;
  canopy::emu::warp_collective(in, 2, &out, 1, shfl_compute);
  return from_bits<T>(out);
}
template <typename T>
T __shfl_xor_sync(unsigned, T v, int mask) {
  const uint32_t in[2] = {to_bits(v), static_cast<uint32_t>(mask)};
  uint32_t out = 0;
  canopy::emu::warp_collective(in, 2, &out, 1, shfl_xor_compute);
  return from_bits<T>(out);
}
template <typename T>
T __ldg(const T* p) {
  return *p;
}
template <typename T>
T __ldcg(const T* p) {
  return *p;
}
inline int atomicAdd(int* p, int v) {
  canopy::emu::yield();
  const int old = *p;
  *p = old + v;
  canopy::emu::yield();
  return old;
}
inline int atomicExch(int* p, int v) {
  canopy::emu::yield();
  const int old = *p;
  *p = v;
  return old;
}
inline float __int_as_float(int i) { return from_bits<float>(static_cast<uint32_t>(i)); }

// ---- the sm_80 primitives (mma_sm80.cuh), with the PTX ISA's semantics
namespace canopy::kernels {

inline unsigned char* dynamic_smem() { return ::canopy::emu::smem_base(); }
inline uint32_t smem_u32(const void* p) {
  const auto* b = ::canopy::emu::smem_base();
  const auto* c = static_cast<const unsigned char*>(p);
  if (c < b || c > b + ::canopy::emu::smem_size()) {
    std::fprintf(stderr, "kernel emulator: pointer outside shared memory\n");
    std::abort();
  }
  return static_cast<uint32_t>(c - b);
}
inline void cp_async_16(uint32_t smem_addr, const void* gmem, bool valid) {
  ::canopy::emu::async_copy_16(smem_addr, gmem, valid);
}
inline void cp_async_commit() { ::canopy::emu::async_commit(); }
template <int N>
inline void cp_async_wait() {
  ::canopy::emu::async_wait(N);
}

namespace emu_detail {
inline float bf16_at(uint32_t smem_addr) {
  if (smem_addr + 2 > ::canopy::emu::smem_size()) {
    std::fprintf(stderr, "kernel emulator: ldmatrix reads past shared memory\n");
    std::abort();
  }
  uint16_t h;
  std::memcpy(&h, ::canopy::emu::smem_base() + smem_addr, 2);
  return ::canopy::bf16_to_f32(h);
}
inline uint16_t bf16_bits_at(uint32_t smem_addr) {
  uint16_t h;
  std::memcpy(&h, ::canopy::emu::smem_base() + smem_addr, 2);
  return h;
}
// ldmatrix .x4: lanes 8m..8m+7 give the row addresses of matrix m (8 rows of 8 b16).
// Without .trans lane l receives, for matrix m, elements (row l/4, cols 2(l%4), 2(l%4)+1);
// with .trans, elements (rows 2(l%4), 2(l%4)+1, col l/4).
template <bool kTrans>
void ldmatrix_compute(const uint32_t (*in)[16], uint32_t (*out)[16]) {
  for (int l = 0; l < 32; ++l) {
    for (int m = 0; m < 4; ++m) {
      uint16_t lo, hi;
      if (!kTrans) {
        const uint32_t row = in[8 * m + l / 4][0];
        if (row % 16 != 0) std::abort();
        lo = bf16_bits_at(row + 2 * (2 * (l % 4)));
        hi = bf16_bits_at(row + 2 * (2 * (l % 4) + 1));
      } else {
        const uint32_t r0 = in[8 * m + 2 * (l % 4)][0];
        const uint32_t r1 = in[8 * m + 2 * (l % 4) + 1][0];
        if (r0 % 16 != 0 || r1 % 16 != 0) std::abort();
        lo = bf16_bits_at(r0 + 2 * (l / 4));
        hi = bf16_bits_at(r1 + 2 * (l / 4));
      }
      out[l][m] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
    }
  }
}
float lo_bf16(uint32_t r) { return ::canopy::bf16_to_f32(static_cast<uint16_t>(r & 0xffffu)); }
float hi_bf16(uint32_t r) { return ::canopy::bf16_to_f32(static_cast<uint16_t>(r >> 16)); }
// mma.m16n8k16 row.col f32.bf16.bf16.f32 from the fragments of all 32 lanes (gid = l / 4,
// t = l % 4): A regs {A[gid][2t..], A[gid+8][2t..], A[gid][2t+8..], A[gid+8][2t+8..]},
// B regs {B[2t..][gid], B[2t+8..][gid]}, C/D {C[gid][2t], C[gid][2t+1], C[gid+8][2t], C[gid+8][2t+1]}.
void mma_compute(const uint32_t (*in)[16], uint32_t (*out)[16]) {
  float a[16][16], b[16][8], c[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    a[g][2 * t] = lo_bf16(in[l][0]);
    a[g][2 * t + 1] = hi_bf16(in[l][0]);
    a[g + 8][2 * t] = lo_bf16(in[l][1]);
    a[g + 8][2 * t + 1] = hi_bf16(in[l][1]);
    a[g][2 * t + 8] = lo_bf16(in[l][2]);
    a[g][2 * t + 9] = hi_bf16(in[l][2]);
    a[g + 8][2 * t + 8] = lo_bf16(in[l][3]);
    a[g + 8][2 * t + 9] = hi_bf16(in[l][3]);
    b[2 * t][g] = lo_bf16(in[l][4]);
    b[2 * t + 1][g] = hi_bf16(in[l][4]);
    b[2 * t + 8][g] = lo_bf16(in[l][5]);
    b[2 * t + 9][g] = hi_bf16(in[l][5]);
    c[g][2 * t] = from_bits<float>(in[l][6]);
    c[g][2 * t + 1] = from_bits<float>(in[l][7]);
    c[g + 8][2 * t] = from_bits<float>(in[l][8]);
    c[g + 8][2 * t + 1] = from_bits<float>(in[l][9]);
  }
  float d[16][8];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      float s = c[i][j];
      for (int k = 0; k < 16; ++k) s += a[i][k] * b[k][j];
      d[i][j] = s;
    }
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    out[l][0] = to_bits(d[g][2 * t]);
    out[l][1] = to_bits(d[g][2 * t + 1]);
    out[l][2] = to_bits(d[g + 8][2 * t]);
    out[l][3] = to_bits(d[g + 8][2 * t + 1]);
  }
}
}  // namespace emu_detail

inline void ldmatrix_x4(uint32_t (&r)[4], uint32_t smem_addr) {
  ::canopy::emu::warp_collective(&smem_addr, 1, r, 4, emu_detail::ldmatrix_compute<false>);
}
inline void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t smem_addr) {
  ::canopy::emu::warp_collective(&smem_addr, 1, r, 4, emu_detail::ldmatrix_compute<true>);
}
inline void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const uint32_t in[10] = {a[0], a[1], a[2], a[3], b0, b1, to_bits(d[0]), to_bits(d[1]), to_bits(d[2]), to_bits(d[3])};
  uint32_t out[4];
  ::canopy::emu::warp_collective(in, 10, out, 4, emu_detail::mma_compute);
  for (int i = 0; i < 4; ++i) d[i] = from_bits<float>(out[i]);
}
inline uint32_t pack_bf16x2(float lo, float hi) {
  return static_cast<uint32_t>(::canopy::f32_to_bf16(lo)) | (static_cast<uint32_t>(::canopy::f32_to_bf16(hi)) << 16);
}

}  // namespace canopy::kernels

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-variable"
#include "forest_attention.cuh"
#pragma GCC diagnostic pop

namespace canopy::testing {

void emulate_forest_attention(const void* forest_attention_params, int head_dim, int concurrent_ctas) {
  const auto& p = *static_cast<const canopy::kernels::ForestAttentionParams*>(forest_attention_params);
  if (head_dim == 128) {
    using C = canopy::kernels::ForestConfig<128>;
    canopy::emu::launch(p.num_ctas, C::kThreads, C::kSmemBytes, concurrent_ctas,
                        [&] { canopy::kernels::forest_attention_kernel<128>(p); });
  } else if (head_dim == 64) {
    using C = canopy::kernels::ForestConfig<64>;
    canopy::emu::launch(p.num_ctas, C::kThreads, C::kSmemBytes, concurrent_ctas,
                        [&] { canopy::kernels::forest_attention_kernel<64>(p); });
  } else {
    std::abort();
  }
}

void emulate_merge_partials(const void* merge_partials_params, int head_dim) {
  const auto& p = *static_cast<const canopy::kernels::MergePartialsParams*>(merge_partials_params);
  const int64_t rows = static_cast<int64_t>(p.num_tokens) * p.num_q_heads;
  const int grid = static_cast<int>((rows + 3) / 4);
  if (head_dim == 128) {
    canopy::emu::launch(grid, 128, 0, 2, [&] { canopy::kernels::merge_partials_kernel<128>(p); });
  } else {
    canopy::emu::launch(grid, 128, 0, 2, [&] { canopy::kernels::merge_partials_kernel<64>(p); });
  }
}

}  // namespace canopy::testing
