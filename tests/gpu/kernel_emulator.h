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

}  // namespace canopy::emu
