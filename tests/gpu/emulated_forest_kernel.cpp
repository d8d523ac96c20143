// Host build of the CUDA kernels for the emulator: CUDA builtins, the sm_80 primitives of
// mma_sm80.cuh and the sm_90a primitives of sm90_primitives.cuh re-implemented with the PTX ISA's
// semantics on top of kernel_emulator.h.
#include "emulated_forest_kernel.h"

#include <cuda_runtime_api.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "kernel_emulator.h"
#include "wgmma_tile.h"

// The emulated kernels live in canopy::kernels_emu, apart from the real ones in canopy::kernels.
#define CANOPY_KERNEL_EMULATION 1
#define kernels kernels_emu
#define __launch_bounds__(...)
#define threadIdx (::canopy::emu::thread_idx())
#define blockIdx (::canopy::emu::block_idx())
#define gridDim (::canopy::emu::grid_dim())

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
inline float __uint_as_float(unsigned u) { return from_bits<float>(u); }

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
inline void cp_async_16_full(uint32_t smem_addr, const void* gmem) {
  ::canopy::emu::async_copy_16(smem_addr, gmem, true);
}
inline uint64_t l2_policy_evict_first() { return 0; }
inline void cp_async_16_full_hint(uint32_t smem_addr, const void* gmem, uint64_t) {
  ::canopy::emu::async_copy_16(smem_addr, gmem, true);
}
inline void cp_async_16_hint(uint32_t smem_addr, const void* gmem, bool valid, uint64_t) {
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
  ::canopy::emu::check_generic_read(smem_addr, 2);
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


// ---- the sm_90a primitives (sm90_primitives.cuh), with the PTX ISA's semantics

inline void mbar_init(uint32_t bar, uint32_t count) { ::canopy::emu::mbar_init(bar, count); }
inline void mbar_arrive(uint32_t bar) { ::canopy::emu::mbar_arrive(bar); }
inline bool mbar_try_wait(uint32_t bar, uint32_t parity) { return ::canopy::emu::mbar_test(bar, parity); }
inline void mbar_wait(uint32_t bar, uint32_t parity) { ::canopy::emu::mbar_wait(bar, parity); }
inline void cp_async_mbar_arrive_noinc(uint32_t bar) { ::canopy::emu::async_mbar_arrive_noinc(bar); }
inline void named_barrier_sync(uint32_t id, uint32_t threads) {
  ::canopy::emu::named_barrier(static_cast<int>(id), static_cast<int>(threads));
}
inline void named_barrier_arrive(uint32_t id, uint32_t threads) {
  ::canopy::emu::named_barrier_arrive(static_cast<int>(id), static_cast<int>(threads));
}
inline void cta_barrier(uint32_t threads) { named_barrier_sync(3, threads); }
template <int kRegs>
inline void setmaxnreg_inc() {}
template <int kRegs>
inline void setmaxnreg_dec() {}
inline void fence_proxy_async_shared() { ::canopy::emu::proxy_fence(); }
inline void prefetch_l1(const void*) {}
inline void prefetch_l2_bulk(const void*, uint32_t bytes) {
  if (bytes % 16 != 0) {
    std::fprintf(stderr, "kernel emulator: cp.async.bulk.prefetch.L2 of %u bytes (not a multiple of 16)\n", bytes);
    std::abort();
  }
}
inline void backoff_ns(uint32_t) { ::canopy::emu::yield(); }  // a polling thread lets the others run
inline uint64_t global_timer_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}
inline void reg_fence(float&) {}
inline void reg_fence(uint32_t&) {}

inline uint64_t wgmma_desc_sw128(uint32_t smem_addr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  return static_cast<uint64_t>((smem_addr & 0x3FFFFu) >> 4) | (static_cast<uint64_t>((lbo_bytes & 0x3FFFFu) >> 4) << 16) |
         (static_cast<uint64_t>((sbo_bytes & 0x3FFFFu) >> 4) << 32) | (uint64_t{1} << 62);
}

namespace emu_wgmma {

// One wgmma.mma_async of one thread, recorded at issue and executed (for the whole warpgroup) when
// wgmma.wait_group retires its group -- reading shared memory then, as late as the hardware may.
struct Op {
  int n = 0;              // N of m64nNk16
  bool a_in_regs = false;
  bool b_mn_major = false;  // imm-trans-b 1
  bool accumulate = true;
  uint64_t desc_a = 0, desc_b = 0;
  uint32_t a[4] = {};
  const uint32_t* a_src = nullptr;  // the A registers (register A): must keep a[] until retirement
  float* d = nullptr;
  // The accumulators as issued, for the first in-flight op on them: no other instruction may
  // write them before the op retires (on the GPU they are read and written asynchronously).
  bool d_owner = false;
  float d_issued[128] = {};
};
struct ThreadState {
  std::vector<Op> open;
  std::vector<std::vector<Op>> groups;
};
struct Desc;
void mark_operands(const Op& op, int delta);
inline std::vector<std::unique_ptr<ThreadState>>& all_states() {
  static std::vector<std::unique_ptr<ThreadState>> states;
  return states;
}
inline ThreadState& state() {
  void*& slot = ::canopy::emu::thread_slot();
  if (slot == nullptr) {
    all_states().push_back(std::make_unique<ThreadState>());
    slot = all_states().back().get();
  }
  return *static_cast<ThreadState*>(slot);
}

struct Desc {
  uint32_t start, lbo, sbo;
};
inline Desc decode(uint64_t desc) {
  if ((desc >> 62) != 1 || ((desc >> 49) & 7) != 0) {
    std::fprintf(stderr, "kernel emulator: wgmma descriptor is not 128B-swizzled with base offset 0\n");
    std::abort();
  }
  return Desc{static_cast<uint32_t>(desc & 0x3FFF) << 4, static_cast<uint32_t>((desc >> 16) & 0x3FFF) << 4,
              static_cast<uint32_t>((desc >> 32) & 0x3FFF) << 4};
}
// The 128-byte swizzle on shared-memory byte addresses: bits [4,7) ^= bits [7,10).
inline uint32_t swizzle128(uint32_t addr) { return addr ^ (((addr >> 7) & 7u) << 4); }
inline float bf16_smem(uint32_t addr) {
  ::canopy::emu::check_async_read(addr & ~15u, 16);
  ::canopy::emu::check_generic_read(addr & ~15u, 16);
  return emu_detail::bf16_at(addr);
}
// K-major canonical layout ((8,m),(8,2)):((8 x 16 B, SBO),(2 B, 16 B)): element (row, k), k < 16.
inline float kmajor(const Desc& d, int row, int k) {
  return bf16_smem(swizzle128(d.start + static_cast<uint32_t>(row / 8) * d.sbo + static_cast<uint32_t>(row % 8) * 128 +
                              static_cast<uint32_t>(k) * 2));
}
// MN-major canonical layout ((64,n),(8,k)):((2 B, LBO),(128 B, SBO)): element (mn, k).
inline float mnmajor(const Desc& d, int mn, int k) {
  return bf16_smem(swizzle128(d.start + static_cast<uint32_t>(mn / 64) * d.lbo + static_cast<uint32_t>(k / 8) * d.sbo +
                              static_cast<uint32_t>(k % 8) * 128 + static_cast<uint32_t>(mn % 64) * 2));
}

// The shared-memory chunks an operation reads, marked in flight from issue to retirement (so a
// cp.async into them in between -- e.g. a stage released too early -- is caught).
inline void mark_operands(const Op& op, int delta) {
  std::vector<uint32_t> chunks;
  if (!op.a_in_regs) {
    const Desc da = decode(op.desc_a);
    for (int m = 0; m < 64; ++m)
      for (int k = 0; k < 16; k += 8)
        chunks.push_back(swizzle128(da.start + static_cast<uint32_t>(m / 8) * da.sbo + static_cast<uint32_t>(m % 8) * 128 +
                                    static_cast<uint32_t>(k) * 2) & ~15u);
  }
  const Desc db = decode(op.desc_b);
  if (op.b_mn_major) {  // 16 rows (k) of N elements: every 8-element chunk
    for (int k = 0; k < 16; ++k)
      for (int n = 0; n < op.n; n += 8)
        chunks.push_back(swizzle128(db.start + static_cast<uint32_t>(n / 64) * db.lbo + static_cast<uint32_t>(k / 8) * db.sbo +
                                    static_cast<uint32_t>(k % 8) * 128 + static_cast<uint32_t>(n % 64) * 2) & ~15u);
  } else {  // N rows of 16 elements: two chunks per row
    for (int n = 0; n < op.n; ++n)
      for (int k = 0; k < 16; k += 8)
        chunks.push_back(swizzle128(db.start + static_cast<uint32_t>(n / 8) * db.sbo + static_cast<uint32_t>(n % 8) * 128 +
                                    static_cast<uint32_t>(k) * 2) & ~15u);
  }
  std::sort(chunks.begin(), chunks.end());
  chunks.erase(std::unique(chunks.begin(), chunks.end()), chunks.end());
  for (uint32_t c : chunks) ::canopy::emu::async_reads_add(c, 16, delta);
}

// Registers of an in-flight wgmma written by other instructions: the GPU would read or overwrite
// them asynchronously (ptxas serializes the wgmmas where it can tell; the emulator says where).
inline void check_registers(const Op& op) {
  if (op.a_in_regs && std::memcmp(op.a, op.a_src, sizeof op.a) != 0) {
    std::fprintf(stderr, "kernel emulator: the register A operand of an in-flight wgmma was overwritten\n");
    std::abort();
  }
  if (op.d_owner && std::memcmp(op.d_issued, op.d, static_cast<size_t>(op.n / 2) * sizeof(float)) != 0) {
    std::fprintf(stderr, "kernel emulator: the accumulators of an in-flight wgmma were written by another instruction\n");
    std::abort();
  }
}

// Executes op index `i` of the oldest group of all 128 threads.
inline void execute(ThreadState* const* st, size_t i) {
  const Op& op0 = st[0]->groups.front()[i];
  const int N = op0.n;
  for (int t = 0; t < 128; ++t) check_registers(st[t]->groups.front()[i]);
  static float A[64][16], B[16][256], D[64][256];
  for (int t = 0; t < 128; ++t) {
    const Op& op = st[t]->groups.front()[i];
    if (op.n != N || op.a_in_regs != op0.a_in_regs || op.b_mn_major != op0.b_mn_major || op.desc_b != op0.desc_b ||
        (!op.a_in_regs && op.desc_a != op0.desc_a) || op.accumulate != op0.accumulate) {
      std::fprintf(stderr, "kernel emulator: the warpgroup's threads issued different wgmma operations\n");
      std::abort();
    }
  }
  if (op0.a_in_regs) {
    for (int t = 0; t < 128; ++t) {
      const Op& op = st[t]->groups.front()[i];
      const int w = t / 32, gid = (t % 32) / 4, t4 = t % 4;
      const int r0 = 16 * w + gid, r1 = r0 + 8;
      A[r0][2 * t4] = emu_detail::lo_bf16(op.a[0]);
      A[r0][2 * t4 + 1] = emu_detail::hi_bf16(op.a[0]);
      A[r1][2 * t4] = emu_detail::lo_bf16(op.a[1]);
      A[r1][2 * t4 + 1] = emu_detail::hi_bf16(op.a[1]);
      A[r0][2 * t4 + 8] = emu_detail::lo_bf16(op.a[2]);
      A[r0][2 * t4 + 9] = emu_detail::hi_bf16(op.a[2]);
      A[r1][2 * t4 + 8] = emu_detail::lo_bf16(op.a[3]);
      A[r1][2 * t4 + 9] = emu_detail::hi_bf16(op.a[3]);
    }
  } else {
    const Desc da = decode(op0.desc_a);
    for (int m = 0; m < 64; ++m)
      for (int k = 0; k < 16; ++k) A[m][k] = kmajor(da, m, k);
  }
  const Desc db = decode(op0.desc_b);
  for (int k = 0; k < 16; ++k)
    for (int n = 0; n < N; ++n) B[k][n] = op0.b_mn_major ? mnmajor(db, n, k) : kmajor(db, n, k);
  for (int t = 0; t < 128; ++t) {  // accumulators in (the C fragment layout of each warp's 16 rows)
    const Op& op = st[t]->groups.front()[i];
    const int w = t / 32, gid = (t % 32) / 4, t4 = t % 4;
    for (int j = 0; j < N / 8; ++j)
      for (int e = 0; e < 4; ++e) D[16 * w + gid + 8 * (e / 2)][8 * j + 2 * t4 + e % 2] = op.accumulate ? op.d[4 * j + e] : 0.0f;
  }
  for (int m = 0; m < 64; ++m)
    for (int n = 0; n < N; ++n) {
      float acc = D[m][n];
      for (int k = 0; k < 16; ++k) acc += A[m][k] * B[k][n];
      D[m][n] = acc;
    }
  for (int t = 0; t < 128; ++t) {
    const Op& op = st[t]->groups.front()[i];
    const int w = t / 32, gid = (t % 32) / 4, t4 = t % 4;
    for (int j = 0; j < N / 8; ++j)
      for (int e = 0; e < 4; ++e) op.d[4 * j + e] = D[16 * w + gid + 8 * (e / 2)][8 * j + 2 * t4 + e % 2];
  }
}

inline void retire(void* const* slots, void* ctx) {
  const size_t keep = *static_cast<const size_t*>(ctx);
  ThreadState* st[128];
  for (int t = 0; t < 128; ++t) {
    st[t] = static_cast<ThreadState*>(slots[t]);
    if (st[t] == nullptr || st[t]->groups.size() != (st[0] != nullptr ? st[0]->groups.size() : 0)) {
      std::fprintf(stderr, "kernel emulator: wgmma.wait_group with threads in different states\n");
      std::abort();
    }
  }
  while (st[0]->groups.size() > keep) {
    for (size_t i = 0; i < st[0]->groups.front().size(); ++i) {
      execute(st, i);
      mark_operands(st[0]->groups.front()[i], -1);
    }
    for (int t = 0; t < 128; ++t) st[t]->groups.erase(st[t]->groups.begin());
  }
}

}  // namespace emu_wgmma

inline void wgmma_fence() {}
inline void wgmma_issue(emu_wgmma::Op op) {
  if (::canopy::emu::thread_idx().x % 128 == 0) emu_wgmma::mark_operands(op, +1);  // once per warpgroup
  emu_wgmma::ThreadState& s = emu_wgmma::state();
  // The first in-flight op on these accumulators snapshots them (later ones chain on its result).
  bool first = true;
  for (const emu_wgmma::Op& o : s.open) first = first && o.d != op.d;
  for (const auto& g : s.groups)
    for (const emu_wgmma::Op& o : g) first = first && o.d != op.d;
  op.d_owner = first;
  if (first) std::memcpy(op.d_issued, op.d, static_cast<size_t>(op.n / 2) * sizeof(float));
  s.open.push_back(op);
}
inline void wgmma_commit() {
  emu_wgmma::ThreadState& s = emu_wgmma::state();
  s.groups.push_back(std::move(s.open));
  s.open.clear();
}
template <int N>
inline void wgmma_wait() {
  emu_wgmma::state();  // every thread has a state before the collective reads them
  size_t keep = N;
  ::canopy::emu::warpgroup_collective(emu_wgmma::retire, &keep);
}
// The instructions' operands as one Op: A from shared memory (desc_a) or from registers (a), B
// K-major or N-major (b_mn_major).
inline void wgmma_issue_ss(int n, float* d, uint64_t desc_a, uint64_t desc_b, int accumulate) {
  emu_wgmma::Op op;
  op.n = n;
  op.accumulate = accumulate != 0;
  op.desc_a = desc_a;
  op.desc_b = desc_b;
  op.d = d;
  wgmma_issue(op);
}
inline void wgmma_issue_rs(int n, float* d, const uint32_t (&a)[4], uint64_t desc_b, bool b_mn_major, int accumulate) {
  emu_wgmma::Op op;
  op.n = n;
  op.a_in_regs = true;
  op.b_mn_major = b_mn_major;
  op.accumulate = accumulate != 0;
  op.desc_b = desc_b;
  for (int i = 0; i < 4; ++i) op.a[i] = a[i];
  op.a_src = a;
  op.d = d;
  wgmma_issue(op);
}
inline void wgmma_m64n64k16_ss(float (&d)[32], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  wgmma_issue_ss(64, d, desc_a, desc_b, accumulate);
}
inline void wgmma_m64n64k16_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b) {
  wgmma_issue_rs(64, d, a, desc_b, true, 1);
}
inline void wgmma_m64n128k16_ss(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  wgmma_issue_ss(128, d, desc_a, desc_b, accumulate);
}
inline void wgmma_m64n128k16_rs_kmajor(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b, int accumulate) {
  wgmma_issue_rs(128, d, a, desc_b, false, accumulate);
}
inline void wgmma_m64n128k16_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b) {
  wgmma_issue_rs(128, d, a, desc_b, true, 1);
}

}  // namespace canopy::kernels

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-variable"
#include "forest_attention_sm90.cuh"
#include "wgmma_tile_kernel.cuh"
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

void emulate_forest_attention_sm90(const void* forest_attention_params, int head_dim, int concurrent_ctas) {
  const auto& p = *static_cast<const canopy::kernels::ForestAttentionParams*>(forest_attention_params);
  if (head_dim == 128) {
    using C = canopy::kernels::ForestConfigSm90<128>;
    canopy::emu::launch(p.num_ctas, C::kThreads, C::kSmemBytes, concurrent_ctas,
                        [&] {
                          if (p.wide_pipeline == 3) {
                            canopy::kernels::forest_attention_sm90_kernel<128, true>(p);
                          } else {
                            canopy::kernels::forest_attention_sm90_kernel<128, false>(p);
                          }
                        });
  } else if (head_dim == 64) {
    using C = canopy::kernels::ForestConfigSm90<64>;
    canopy::emu::launch(p.num_ctas, C::kThreads, C::kSmemBytes, concurrent_ctas,
                        [&] {
                          if (p.wide_pipeline == 3) {
                            canopy::kernels::forest_attention_sm90_kernel<64, true>(p);
                          } else {
                            canopy::kernels::forest_attention_sm90_kernel<64, false>(p);
                          }
                        });
  } else {
    std::abort();
  }
  canopy::kernels::emu_wgmma::all_states().clear();
}

void emulate_wgmma_tile(const void* params, int head_dim) {
  const auto& p = *static_cast<const canopy::kernels::WgmmaTileParams*>(params);
  const size_t smem = static_cast<size_t>(3 * 64 * head_dim * 2 + 1024);
  if (head_dim == 128) {
    canopy::emu::launch(1, 128, smem, 1, [&] { canopy::kernels::wgmma_tile_kernel<128>(p); });
  } else {
    canopy::emu::launch(1, 128, smem, 1, [&] { canopy::kernels::wgmma_tile_kernel<64>(p); });
  }
  canopy::kernels::emu_wgmma::all_states().clear();
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
