// Hopper (sm_90a) primitives of the v2 forest kernel, as inline PTX: warpgroup MMA (wgmma) with
// shared-memory matrix descriptors, mbarriers, named barriers and the generic->async proxy fence.
// Every helper is a thin wrapper over one PTX instruction (PTX ISA 8.x, "Asynchronous Warpgroup
// Level Matrix Multiply-Accumulate Instructions" and "mbarrier"); the layouts they assume are
// documented in forest_layout_sm90.h.
//
// Host emulation (tests/gpu): with CANOPY_KERNEL_EMULATION defined this header declares nothing
// and the emulator provides the same functions (wgmma computed from the descriptors, mbarriers
// with phases, cp.async arrivals deferred until someone waits).
#pragma once

#include <cstdint>

#include "mma_sm80.cuh"

#ifndef CANOPY_KERNEL_EMULATION

namespace canopy::kernels {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define CANOPY_SM90A 1
#endif

// ---- mbarriers (64-bit objects in shared memory, CTA scope) ---------------------------------

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

// Arrive (release semantics at CTA scope: this thread's prior writes are visible to whoever
// observes the phase completing).
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile(
      "{\n .reg .b64 state;\n mbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(bar)
      : "memory");
}

// An arrival on `bar` that the hardware performs once every cp.async this thread issued before it
// has landed (cp.async.mbarrier.arrive.noinc: the arrival is one of the `count` of mbar_init, not
// an extra one). The thread does not wait: a producer signals a stage the moment its copies land,
// however far ahead it has gone meanwhile. The data is then visible to whoever observes the phase
// completing; wgmma readers still owe a fence.proxy.async after their wait.
__device__ __forceinline__ void cp_async_mbar_arrive_noinc(uint32_t bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}

// Non-blocking test: true once the phase of parity `parity` has completed, i.e. the barrier's
// current phase parity differs from `parity`. A fresh barrier is in phase 0: waiting on parity 1
// succeeds at once (the "previous phase" of a fresh barrier counts as complete).
__device__ __forceinline__ bool mbar_try_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}

__device__ __forceinline__ uint64_t global_timer_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
  return t;
}

// Blocking wait with a watchdog: no wait in this kernel lasts anywhere near 0.2 s (a whole launch
// takes milliseconds), so one that does is a protocol bug (a lost arrival); trapping turns a hang
// of the GPU into a launch error within a fraction of a second.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  if (mbar_try_wait(bar, parity)) return;
  const uint64_t t0 = global_timer_ns();
  while (!mbar_try_wait(bar, parity)) {
    if (global_timer_ns() - t0 > 200000000ull) __trap();
  }
}

// ---- named barriers (ids 1..15; 0 is __syncthreads) -------------------------------------------

__device__ __forceinline__ void named_barrier_sync(uint32_t id, uint32_t threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Arrives without waiting (the producer side of a barrier that `threads` - this warp's share
// others wait on).
__device__ __forceinline__ void named_barrier_arrive(uint32_t id, uint32_t threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Every thread of the CTA (named barrier 3): mode switches, reached from the warpgroups' branches.
__device__ __forceinline__ void cta_barrier(uint32_t threads) { named_barrier_sync(3, threads); }

// ---- register reallocation between warpgroups (all 128 threads of a warpgroup execute it) ------

template <int kRegs>
__device__ __forceinline__ void setmaxnreg_inc() {
#if defined(CANOPY_SM90A)
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
#endif
}
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_dec() {
#if defined(CANOPY_SM90A)
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
#endif
}

// ---- proxies -----------------------------------------------------------------------------------

// Orders the generic-proxy shared-memory writes this thread has observed (its own st.shared and
// waited-for cp.async, and other threads' writes acquired through an mbarrier wait, e.g. cp.async
// landed with cp_async_mbar_arrive_noinc) before its later async-proxy accesses (wgmma reads).
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Pulls the line holding `ptr` (and the next, for a struct that may straddle two) into L1.
__device__ __forceinline__ void prefetch_l1(const void* ptr) {
  asm volatile("prefetch.global.L1 [%0];\n" ::"l"(ptr));
  asm volatile("prefetch.global.L1 [%0];\n" ::"l"(static_cast<const char*>(ptr) + 39));
}

// Pulls `bytes` (a multiple of 16, 16-byte aligned) starting at `ptr` into L2, asynchronously, with
// one instruction (no registers, no completion to wait for).
__device__ __forceinline__ void prefetch_l2_bulk(const void* ptr, uint32_t bytes) {
#if defined(CANOPY_SM90A)
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(ptr), "r"(bytes) : "memory");
#endif
}

// A polite pause in a polling loop.
__device__ __forceinline__ void backoff_ns(uint32_t ns) {
#if defined(CANOPY_SM90A)
  __nanosleep(ns);
#endif
}

// ---- wgmma ---------------------------------------------------------------------------------------

// A shared-memory matrix descriptor with the 128-byte swizzle (PTX ISA "Matrix Descriptor
// Format"): start address >> 4 in bits 0-13, leading byte offset >> 4 in 16-29, stride byte offset
// >> 4 in 32-45, base offset 0 (tiles start on 1024-byte boundaries), swizzle mode 1 in 62-63.
__device__ __forceinline__ uint64_t wgmma_desc_sw128(uint32_t smem_addr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  return static_cast<uint64_t>((smem_addr & 0x3FFFFu) >> 4) | (static_cast<uint64_t>((lbo_bytes & 0x3FFFFu) >> 4) << 16) |
         (static_cast<uint64_t>((sbo_bytes & 0x3FFFFu) >> 4) << 32) | (uint64_t{1} << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// Tells the compiler that `r` may change here (the asynchronous wgmma writes accumulators behind
// its back): reads after a wgmma_wait must not be hoisted above it, writes before a wgmma must not
// sink below it.
__device__ __forceinline__ void reg_fence(float& r) { asm volatile("" : "+f"(r)::"memory"); }
__device__ __forceinline__ void reg_fence(uint32_t& r) { asm volatile("" : "+r"(r)::"memory"); }

// The f32 accumulator operands of an m64n64 (32 per thread) and an m64n128 (64) wgmma, in order.
#define CANOPY_WGMMA_D32(d)                                                                                       \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),      \
      "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),      \
      "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),     \
      "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define CANOPY_WGMMA_D64(d)                                                                                       \
  CANOPY_WGMMA_D32(d), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), \
      "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]),     \
      "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]),     \
      "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),     \
      "+f"(d[63])
// The "{%0, ..., %N-1}" accumulator lists of the instructions.
#define CANOPY_WGMMA_ACC32                                                                                        \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                      \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
#define CANOPY_WGMMA_ACC64                                                                                        \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                      \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                             \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                             \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "

#if defined(CANOPY_SM90A)
#define CANOPY_WGMMA_ASM(...) asm volatile(__VA_ARGS__)
#else
// Other targets (sm_80 in CANOPY_CUDA_ARCHS="80;90a") compile the kernels' source but never run
// the v2 kernel (the host launches it on sm_90 only); wgmma does not exist there.
#define CANOPY_WGMMA_ASM(...) __trap()
#endif

// Accumulators d (layout in forest_layout_sm90.h) of D[64 x N] (+)= A[64 x 16] * B[16 x N]; A from
// shared memory (_ss, K-major) or from registers (_rs: 4 x bf16x2, the mma.m16n8k16 A fragment of
// the warp's 16 rows); B from shared memory, K-major (S = Q K^T: B is K) or N-major (_rs without
// _kmajor: O += P V, B is V, imm-trans-b 1). `accumulate` 0 overwrites d.

// D[64 x 64]: Q K^T with both operands in shared memory (the one-tile layout test).
__device__ __forceinline__ void wgmma_m64n64k16_ss(float (&d)[32], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  CANOPY_WGMMA_ASM("{\n .reg .pred p;\n setp.ne.b32 p, %34, 0;\n"
                   "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " CANOPY_WGMMA_ACC32
                   "%32, %33, p, 1, 1, 0, 0;\n}\n"
                   : CANOPY_WGMMA_D32(d)
                   : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// D[64 x 64] += P V at D = 64.
__device__ __forceinline__ void wgmma_m64n64k16_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b) {
  CANOPY_WGMMA_ASM("{\n .reg .pred p;\n setp.ne.b32 p, %37, 0;\n"
                   "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " CANOPY_WGMMA_ACC32
                   "{%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                   : CANOPY_WGMMA_D32(d)
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));
}

// D[64 x 128]: S of a 128-key tile, Q from shared memory.
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  CANOPY_WGMMA_ASM("{\n .reg .pred p;\n setp.ne.b32 p, %66, 0;\n"
                   "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " CANOPY_WGMMA_ACC64
                   "%64, %65, p, 1, 1, 0, 0;\n}\n"
                   : CANOPY_WGMMA_D64(d)
                   : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// D[64 x 128]: S of a 128-key tile, Q from registers (D = 64: the tensor core reads only K from
// shared memory).
__device__ __forceinline__ void wgmma_m64n128k16_rs_kmajor(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b,
                                                           int accumulate) {
  CANOPY_WGMMA_ASM("{\n .reg .pred p;\n setp.ne.b32 p, %69, 0;\n"
                   "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " CANOPY_WGMMA_ACC64
                   "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
                   : CANOPY_WGMMA_D64(d)
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate));
}

// D[64 x 128] += P V at D = 128 (B spans two 64-column regions, LBO apart).
__device__ __forceinline__ void wgmma_m64n128k16_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b) {
  CANOPY_WGMMA_ASM("{\n .reg .pred p;\n setp.ne.b32 p, %69, 0;\n"
                   "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " CANOPY_WGMMA_ACC64
                   "{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
                   : CANOPY_WGMMA_D64(d)
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));
}

#undef CANOPY_WGMMA_ASM
#undef CANOPY_WGMMA_D32
#undef CANOPY_WGMMA_D64
#undef CANOPY_WGMMA_ACC32
#undef CANOPY_WGMMA_ACC64

}  // namespace canopy::kernels

#endif  // CANOPY_KERNEL_EMULATION
