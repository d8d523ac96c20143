// Warp-level tensor-core and async-copy primitives available from sm_80 on (mma.sync m16n8k16,
// ldmatrix, cp.async), as inline PTX on raw shared-memory addresses.
//
// Fragment layouts of mma.m16n8k16 (lane = 4 * gid + tid4):
//   A (16x16, row-major): a0 = A[gid][2*tid4 .. +1]    a1 = A[gid+8][2*tid4 .. +1]
//                         a2 = A[gid][2*tid4+8 .. +9]  a3 = A[gid+8][2*tid4+8 .. +9]
//   B (16x8, "col"):      b0 = B[2*tid4 .. +1][gid]    b1 = B[2*tid4+8 .. +9][gid]
//   C/D (16x8, f32):      c0,c1 = C[gid][2*tid4 .. +1] c2,c3 = C[gid+8][2*tid4 .. +1]
// Each 32-bit register holds two 16-bit values, the lower column (or k) in the low half.
//
// Host emulation (tests/gpu/emu): with CANOPY_KERNEL_EMULATION defined, this header declares
// nothing and the emulator provides these functions, so the kernels' own source runs on the CPU.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#ifndef CANOPY_KERNEL_EMULATION

namespace canopy::kernels {

// The CTA's dynamic shared memory (one array for the whole kernel; 1024-byte aligned).
__device__ __forceinline__ unsigned char* dynamic_smem() {
  extern __shared__ __align__(1024) unsigned char canopy_dynamic_smem[];
  return canopy_dynamic_smem;
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Copies 16 bytes global -> shared, asynchronously. When !valid nothing is read and the 16 bytes
// are zero-filled (src must still be a valid pointer value; callers pass the buffer base).
__device__ __forceinline__ void cp_async_16(uint32_t smem_addr, const void* gmem, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr), "l"(gmem),
               "r"(src_bytes)
               : "memory");
}

// cp_async_16 of a source known to be in bounds: no source-size operand to compute.
__device__ __forceinline__ void cp_async_16_full(uint32_t smem_addr, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr), "l"(gmem) : "memory");
}

// An L2 policy that evicts the lines it touches first (data read once: decode leaves), so that it
// does not push out data that other CTAs will read again (shared nodes' KV).
__device__ __forceinline__ uint64_t l2_policy_evict_first() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0;\n" : "=l"(policy));
  return policy;
}

// cp_async_16 with an L2 eviction policy (a hint only).
__device__ __forceinline__ void cp_async_16_hint(uint32_t smem_addr, const void* gmem, bool valid, uint64_t policy) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(smem_addr), "l"(gmem),
               "r"(src_bytes), "l"(policy)
               : "memory");
}

// cp_async_16_full with an L2 eviction policy (a hint only).
__device__ __forceinline__ void cp_async_16_full_hint(uint32_t smem_addr, const void* gmem, uint64_t policy) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, 16, %2;\n" ::"r"(smem_addr), "l"(gmem),
               "l"(policy)
               : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
}

// d += a * b, bf16 inputs, f32 accumulators.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats -> one register of two bf16 (lo in the low half), round to nearest even.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

}  // namespace canopy::kernels

#endif  // CANOPY_KERNEL_EMULATION
