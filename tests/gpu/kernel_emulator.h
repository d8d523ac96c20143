// A small SIMT emulator that runs CUDA kernel source on the CPU, for tests on machines without a
// GPU. Every CUDA thread is a cooperative fiber on the calling OS thread; CTAs run a few at a time
// so that their atomics and merges interleave. Warp-level operations (shuffles, ldmatrix,
// mma.sync) are collectives computed from every lane's inputs with the PTX ISA's fragment
// layouts; cp.async copies are deferred until the issuing thread waits for them, so a read
// before the wait (or without the barrier after it) sees stale data and fails the test.
//
// It checks the kernels' logic (indexing, fragment layouts, masks, pipeline waits, the merge
// protocol) -- not their timing, and not the GPU memory model (fibers switch only at barriers,
// collectives, fences and atomics).
//
// Hopper additions: named barriers, mbarriers (phases, parity waits), warpgroup collectives (the
// emulated wgmma computes at wait_group time from the shared memory of that moment, so a stage
// released before its wgmma completed shows), and a generic->async proxy check: shared memory that
// a thread wrote through cp.async must be fenced (fence.proxy.async) by that thread before an
// async-proxy reader (wgmma) touches it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace canopy::emu {

struct Dim3 {
  unsigned x = 0, y = 0, z = 0;
};

// Runs `body` once per thread: `grid` CTAs of `block` threads, at most `concurrent` CTAs resident
// at a time (launch order = block index order). Each CTA gets `smem_bytes` of shared memory,
// 1024-byte aligned and filled with garbage (0xA5) so that reads of unwritten data show.
void launch(int grid, int block, size_t smem_bytes, int concurrent, const std::function<void()>& body);

Dim3 thread_idx();
Dim3 block_idx();
Dim3 grid_dim();
unsigned char* smem_base();  // the current CTA's shared memory
size_t smem_size();

void yield();
void syncthreads();
void syncwarp();

// A warp collective: each of the 32 lanes passes up to 16 input words; when the last lane arrives,
// compute(in, out) fills every lane's outputs; each lane then receives its own out row.
using CollectiveFn = void (*)(const uint32_t (*in)[16], uint32_t (*out)[16]);
void warp_collective(const uint32_t* in, int n_in, uint32_t* out, int n_out, CollectiveFn compute);

// Deferred asynchronous copies of the current thread (cp.async semantics).
void async_copy_16(uint32_t smem_offset, const void* src, bool valid);
void async_commit();
void async_wait(int max_pending_groups);

// ---- Hopper primitives
// Named barrier `id` (1..15) among `threads` threads of the CTA (bar.sync id, threads).
void named_barrier(int id, int threads);
// bar.arrive: counts towards the barrier's phase without waiting for it.
void named_barrier_arrive(int id, int threads);
// mbarriers, keyed by their shared-memory offset (phase parity semantics of mbarrier.try_wait.parity).
void mbar_init(uint32_t smem_offset, uint32_t count);
void mbar_arrive(uint32_t smem_offset);
bool mbar_test(uint32_t smem_offset, uint32_t parity);
// cp.async.mbarrier.arrive.noinc: every cp.async the thread issued so far lands when the barrier's
// current phase completes, and counts as one of its arrivals; a thread that observes the phase
// (mbar_wait / mbar_test) and then fences (proxy_fence) may read them through the async proxy.
void mbar_wait(uint32_t smem_offset, uint32_t parity);
void async_mbar_arrive_noinc(uint32_t smem_offset);
// fence.proxy.async: this thread's completed generic writes to shared memory become visible to
// the async proxy; check_async_read aborts when [offset, offset + bytes) holds unfenced ones.
void proxy_fence();
void check_async_read(uint32_t smem_offset, uint32_t bytes);
// A read of shared memory with a cp.async in flight into it (issued, not yet waited for) is a race
// on the GPU (the copy may land before or after the read): aborts.
void check_generic_read(uint32_t smem_offset, uint32_t bytes);
// Shared memory read by an in-flight asynchronous operation (an issued, not yet retired wgmma):
// a cp.async issued into it is a race (the copy may land before the read) and aborts.
void async_reads_add(uint32_t smem_offset, uint32_t bytes, int delta);
// A per-thread slot for the emulated primitives' own state (e.g. pending wgmma operations).
void*& thread_slot();
// Warpgroup collective: each of the 128 threads of the caller's warpgroup calls it; the last to
// arrive runs fn(slots, ctx) with the 128 threads' slots (in thread order), then all continue.
void warpgroup_collective(void (*fn)(void* const* slots, void* ctx), void* ctx);

}  // namespace canopy::emu
