// The v2/v3 forest attention kernel (sm_90a): one persistent CTA per SM, shared nodes on wgmma, leaves
// streamed by independent warps. Interface and unit semantics: forest_attention.h; geometry and
// shared-memory layouts: forest_layout_sm90.h; the portable sm_80 kernel: forest_attention.cuh.
//
// Work: units[0, num_wide_units) are wide (a shared node's rows x key range, up to 128 rows),
// units[num_wide_units, num_units) narrow (a leaf, up to 16 rows). Two queues (atomic heads in
// work_state) hand them out. CTAs [0, num_tensor_ctas) take wide units until that queue is empty,
// then leaves; the other CTAs take only leaves. So the tensor cores chew shared prefixes on some
// SMs while the others stream leaves at full bandwidth, and the tensor CTAs join the leaves when
// the shared nodes are done (the planner errs towards more tensor CTAs: they can always help with
// leaves, while leaf CTAs never take wide units -- ptxas keeps the leaf code within its registers
// only when it follows the wgmma code in program order).
//
// Wide mode, per CTA: warpgroup 2 produces (cp.async of each unit's Q rows and its K/V tiles into
// kStages stages; each thread's copies arrive on the stage's "full" mbarrier by themselves when
// they land, cp.async.mbarrier.arrive.noinc, and the consumers fence them for the async proxy
// after their wait), warpgroups 0 and 1 consume 64 rows each: per 128-key tile S = Q K^T (wgmma,
// K from shared memory, Q from shared memory or, at D = 64, registers), mask, online softmax in
// registers, O += P V (wgmma, P from registers); the stage is released on its "empty" mbarrier.
// Units flow from the producer to the consumers through a 2-entry ring (mbarriers); the next
// unit's Q and first tiles load while this one finishes (two Q buffers at D = 64, one at D = 128).
//
// The tile pipeline (v3.5): per tile, P V of this tile, then S of the next once P's registers are
// free, in the warpgroup's turn at the tensor core; v3 (template flag kV3,
// ForestAttentionParams::wide_pipeline == 3) takes turns with named barriers 4 and 5 (ping-pong),
// so one warpgroup's softmax runs under the other's GEMMs; v2 takes no turns. Softmax: exp2 with
// the scale folded into one FFMA per score, lazy rescaling (the reference maximum moves only by
// more than kRescaleSlack). v3.0-v3.4 used 64-key tiles and overlapped the softmax with the
// warpgroup's own P V (S of the next tile in flight with it): 128-key tiles leave no registers for
// that (docs/kernels/attention-notes.md, v3.5).
//
// Narrow mode, per warp: a cp.async ring of 16-key tiles that runs across consecutive leaves (the
// next leaf's Q and first tiles load while this one computes), mma.sync m16n8k16 as in v1.
//
// Epilogues write from registers. Fused merge (ForestOutputMode::kFusedMerge): per (token, KV
// head) the unit that completes it last merges every partial (same protocol as v1); wide units
// publish all their rows with one fence and count tokens in parallel, so a shared node's epilogue
// costs one round trip, not one per token.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "forest_attention.cuh"
#include "forest_attention.h"
#include "forest_layout_sm90.h"
#include "merge_fragment.cuh"
#include "mma_sm80.cuh"
#include "sm90_primitives.cuh"

namespace canopy::kernels {

inline constexpr uint32_t kBarrierConsumers = 1;  // named barrier: both consumer warpgroups (256)
inline constexpr uint32_t kBarrierProducer = 2;   // named barrier: the producer warpgroup (128)

// Takes the next index of a queue (one thread); -1 when the queue is exhausted.
__device__ __forceinline__ int take_work(int32_t* head, int32_t count) {
  const int i = atomicAdd(head, 1);
  return i < count ? i : -1;
}

__device__ __forceinline__ int unit_tiles(const ForestUnit& u, int tile_keys) {
  // A unit without keys still runs one fully masked tile: its rows come out as O = 0, LSE = -inf
  // through the ordinary path (no special case in the pipelines).
  const int keys = u.kv_end - u.kv_begin;
  return keys > 0 ? (keys + tile_keys - 1) / tile_keys : 1;
}

// Copies kRows rows of K and V (one 16-byte chunk column `chunk`): row i is key
// key0 + i * kStep of the unit's segment, written to shared address dst(i) (V at dst(i) + v_offset);
// rows at or past kv_end are zero-filled. Rows come in segments of kSeg rows; with one_block (the
// caller knows each segment lies in one block) pages[s] is segment s's block and rows need no
// lookup of their own. kUnroll: unrolled rows (the leaf warps, with registers to spare) or a
// compact loop (the producer warps, which run on 40 registers). kStreamOnce: the rows are read by
// no other CTA (leaves): evict them from L2 first.
template <int kD, int kRows, int kStep, int kSeg, bool kUnroll, bool kStreamOnce, typename Dst>
__device__ __forceinline__ void copy_kv_rows(const ForestAttentionParams& p, const ForestUnit& u, int key0, int chunk,
                                             bool one_block, const int (&pages)[kRows / kSeg], Dst dst,
                                             uint32_t v_offset) {
  static_assert(kRows % kSeg == 0, "whole segments");
  const int bs = p.block_size;
  const size_t head_stride = static_cast<size_t>(bs) * kD;
  const size_t block_stride = static_cast<size_t>(p.num_kv_heads) * head_stride;
  const uint16_t* k_head = p.k_cache + static_cast<size_t>(u.kv_head) * head_stride + chunk * 8;
  const uint16_t* v_head = p.v_cache + static_cast<size_t>(u.kv_head) * head_stride + chunk * 8;
  const uint64_t policy = kStreamOnce ? l2_policy_evict_first() : 0;
  auto copy_row = [&](int i, int key, size_t off) {
    const bool valid = key < u.kv_end;
    const uint32_t d = dst(i);
    if constexpr (kStreamOnce) {
      cp_async_16_hint(d, valid ? k_head + off : p.k_cache, valid, policy);
      cp_async_16_hint(d + v_offset, valid ? v_head + off : p.v_cache, valid, policy);
    } else {
      cp_async_16(d, valid ? k_head + off : p.k_cache, valid);
      cp_async_16(d + v_offset, valid ? v_head + off : p.v_cache, valid);
    }
  };
  if (one_block) {
    CANOPY_UNROLL
    for (int sg = 0; sg < kRows / kSeg; ++sg) {
      const int seg_key = key0 + sg * kSeg * kStep;
      const size_t off0 = static_cast<size_t>(pages[sg]) * block_stride + static_cast<size_t>(seg_key % bs) * kD;
      if constexpr (kUnroll) {
        CANOPY_UNROLL
        for (int j = 0; j < kSeg; ++j) copy_row(sg * kSeg + j, seg_key + j * kStep, off0 + static_cast<size_t>(j * kStep) * kD);
      } else {
        CANOPY_NO_UNROLL
        for (int j = 0; j < kSeg; ++j) copy_row(sg * kSeg + j, seg_key + j * kStep, off0 + static_cast<size_t>(j * kStep) * kD);
      }
    }
  } else {
    const int32_t* table = p.kv_pages + u.kv_page_begin;
    CANOPY_NO_UNROLL
    for (int i = 0; i < kRows; ++i) {
      const int key = key0 + i * kStep;
      const int blk = key < u.kv_end ? __ldg(table + key / bs) : 0;
      copy_row(i, key, static_cast<size_t>(blk) * block_stride + static_cast<size_t>(key % bs) * kD);
    }
  }
}

// The producer's copy of its rows of a whole tile (every row before kv_end; the thread's
// kRowsPerLane rows in one block): one 64-bit source per tensor and one XOR per row. Rows row0 ..
// row0 + kRowsPerLane - 1 of chunk column `chunk` go to the 128-byte-swizzled tile at `kbase`
// (forest_layout_sm90.h); row0 is a multiple of kRowsPerLane (a divisor or a multiple of 8), so the
// swizzled chunk position of row row0 + j is that of row0 XOR (j % 8), and row j's address is
// (thread base ^ ((j % 8) << 4)) + j * 128.
// The general path (copy_kv_rows) spends ~18 dependent integer instructions per 16-byte copy: the
// v3.1 producer warps issued ~600 instructions per tile one at a time and could not keep up with
// the consumers (ncu: consumer warps spent ~30% of their samples waiting for full stages while the
// producer warps never waited for an empty one).
template <int kD, int kRowsPerLane, int kTileKeys>
__device__ __forceinline__ void copy_full_tile_rows(const ForestAttentionParams& p, const ForestUnit& u, int key0, int chunk,
                                                    int row0, int page, uint32_t kbase, uint32_t v_offset) {
  static_assert(8 % kRowsPerLane == 0 || kRowsPerLane % 8 == 0, "a thread's rows start a swizzle row group");
  const size_t head_stride = static_cast<size_t>(p.block_size) * kD;
  const size_t off = (static_cast<size_t>(page) * p.num_kv_heads + u.kv_head) * head_stride +
                     static_cast<size_t>(key0 % p.block_size) * kD + chunk * 8;
  const uint16_t* k = p.k_cache + off;
  const uint16_t* v = p.v_cache + off;
  const uint32_t d0 = kbase + static_cast<uint32_t>(sw128_offset(row0, chunk, kTileKeys));
  CANOPY_UNROLL
  for (int j = 0; j < kRowsPerLane; ++j) {
    const uint32_t d = (d0 ^ static_cast<uint32_t>((j % 8) << 4)) + static_cast<uint32_t>(j * 128);
    cp_async_16_full(d, k + j * kD);
    cp_async_16_full(d + v_offset, v + j * kD);
  }
}

// The block holding key `key` of the unit's segment (0 past its end: never read then).
__device__ __forceinline__ int key_page(const ForestAttentionParams& p, const ForestUnit& u, int key) {
  return key < u.kv_end ? __ldg(p.kv_pages + u.kv_page_begin + key / p.block_size) : 0;
}

// =============================================================================================
// Wide mode: the producer warpgroup. All 128 threads copy every tile (kRowsPerLane rows of one
// chunk column each) and signal it with cp_async_mbar_arrive_noinc: the stage's "full" barrier
// (128 arrivals) completes when the last thread's copies land, with no thread waiting for them.
// So the producer runs up to kStages tiles ahead of the consumers, limited only by the "empty"
// barriers (v3.0 waited for its own copies before signalling, which tied the signal of tile g to
// the issue of tile g + 2 and so to the consumers' release of tile g - 2: the consumers waited on
// the producer's issue every tile). Each thread's block of the next two tiles is looked up ahead,
// so no copy waits on a page-table load.
template <int kD>
__device__ __forceinline__ void wide_producer(const ForestAttentionParams& p, uint32_t base, uint32_t ctrl, int* ring,
                                              int* producer_unit, int tid) {
  using C = ForestConfigSm90<kD>;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int chunk = tid % C::kChunks;
  const int row0 = (tid / C::kChunks) * C::kRowsPerLane;
  // A thread's rows (starting at a multiple of kRowsPerLane keys of a segment that starts at a
  // block boundary) lie in one block when the block size is a multiple of kRowsPerLane.
  const bool one_block = p.block_size % C::kRowsPerLane == 0;
  int units = 0;    // units taken
  int tiles = 0;    // tiles issued (stage = tiles % kStages)
  int qloads = 0;   // Q buffers filled (buffer = qloads % kQBuffers)
  int next = tid == 0 ? take_work(p.work_state + 0, p.num_wide_units) : 0;  // one unit ahead
  for (;;) {
    // ---- the next unit, from thread 0 to the producer threads (two slots: thread 0 writes slot
    // u % 2 again only after every producer thread has passed the barrier of unit u + 1), and to
    // the consumers through the ring
    if (tid == 0) {
      producer_unit[units & 1] = next;
      const int slot = units & 1;
      mbar_wait(ctrl + C::kBarUnitEmpty + 8 * slot, ((units >> 1) & 1) ^ 1);
      *reinterpret_cast<volatile int*>(ring + slot) = next;
      mbar_arrive(ctrl + C::kBarUnitFull + 8 * slot);
      if (next >= 0) next = take_work(p.work_state + 0, p.num_wide_units);
    }
    named_barrier_sync(kBarrierProducer, C::kProducerThreads);
    const int idx = *reinterpret_cast<volatile int*>(producer_unit + (units & 1));
    ++units;
    if (idx < 0) break;
    const ForestUnit& u = p.units[idx];
    const int n_tiles = unit_tiles(u, C::kTileKeys);
    const int rows = u.q_count * group;
    const int head0 = u.kv_head * group;
    // This thread's block of tile t (one_block only).
    auto lookup = [&](int t) { return one_block ? key_page(p, u, u.kv_begin + t * C::kTileKeys + row0) : 0; };
    int page[1] = {lookup(0)};
    int page_next = lookup(1);  // in flight while this unit's Q and tile 0 are issued

    // ---- Q rows -> Q buffer (qloads % kQBuffers), zero past the unit's rows; the token ids of a
    // pair of chunks are loaded together (two loads in flight, not one)
    const int qbuf = qloads % C::kQBuffers;
    mbar_wait(ctrl + C::kBarQEmpty + 8 * qbuf, ((qloads / C::kQBuffers) & 1) ^ 1);
    ++qloads;
    {
      const uint32_t qbase = base + C::kQOffset + qbuf * C::kQBufBytes;
      static_assert(C::kQChunksPerLane % 2 == 0, "Q chunks in pairs");
      CANOPY_NO_UNROLL
      for (int i = 0; i < C::kQChunksPerLane; i += 2) {
        int r[2], t[2];
        CANOPY_UNROLL
        for (int k = 0; k < 2; ++k) {
          r[k] = tid / C::kChunks + (i + k) * (C::kProducerThreads / C::kChunks);
          t[k] = r[k] < rows ? __ldg(p.q_tokens + u.q_begin + r[k] / group) : 0;
        }
        CANOPY_UNROLL
        for (int k = 0; k < 2; ++k) {
          const bool valid = r[k] < rows;
          const uint16_t* src =
              valid ? p.q + (static_cast<size_t>(t[k]) * p.num_q_heads + head0 + r[k] % group) * kD + chunk * 8 : p.q;
          const int wg = r[k] / C::kWgRows;
          cp_async_16(qbase + wg * C::kQWgBytes + sw128_offset(r[k] % C::kWgRows, chunk, C::kWgRows), src, valid);
        }
      }
      cp_async_mbar_arrive_noinc(ctrl + C::kBarQFull + 8 * qbuf);
    }

    // ---- K/V tiles
    for (int t = 0; t < n_tiles; ++t) {
      const int stage = tiles % C::kStages;
      mbar_wait(ctrl + C::kBarEmpty + 8 * stage, ((tiles / C::kStages) & 1) ^ 1);
      const uint32_t kbase = base + C::kStageOffset + stage * C::kStageBytes;
      const int key0 = u.kv_begin + t * C::kTileKeys + row0;
      if (one_block && key0 + C::kRowsPerLane <= u.kv_end) {
        copy_full_tile_rows<kD, C::kRowsPerLane, C::kTileKeys>(p, u, key0, chunk, row0, page[0], kbase, C::kTileBytes);
      } else {  // rows past the segment's end (zero-filled), or rows across blocks
        copy_kv_rows<kD, C::kRowsPerLane, 1, C::kRowsPerLane, false, false>(
            p, u, key0, chunk, one_block, page,
            [&](int i) { return kbase + static_cast<uint32_t>(sw128_offset(row0 + i, chunk, C::kTileKeys)); },
            C::kTileBytes);
      }
      cp_async_mbar_arrive_noinc(ctrl + C::kBarFull + 8 * stage);
      ++tiles;
      page[0] = page_next;
      if (t + 2 < n_tiles) page_next = lookup(t + 2);
    }
  }
  // Every copy has landed by now (the consumers waited for each stage); this keeps the thread's
  // own view simple before the tile area changes hands.
  cp_async_commit();
  cp_async_wait<0>();
}

// =============================================================================================
// Wide mode: a consumer warpgroup (64 rows of every unit).
template <int kD>
struct WideAcc {
  static constexpr int kN = kD / 2;  // m64nD f32 accumulators per thread
  float o[kN];
};

template <int kD>
__device__ __forceinline__ void pv_mma(WideAcc<kD>& acc, const uint32_t (&a)[4], uint64_t desc) {
  if constexpr (kD == 128) {
    wgmma_m64n128k16_rs(acc.o, a, desc);
  } else {
    wgmma_m64n64k16_rs(acc.o, a, desc);
  }
}

// The fused-merge epilogue of a wide unit, by both consumer warpgroups together: every row with
// several slots is published (partial + LSE) and fenced, then one thread per token counts it; the
// tokens this unit completes are merged by the threads holding their rows.
template <int kD>
__device__ __forceinline__ void wide_epilogue(const ForestAttentionParams& p, const ForestUnit& u, Frag<kD> (&f)[2],
                                              float (&lse)[2], const int (&row)[2], uint8_t* last_flags, int ctid,
                                              int t4) {
  const int group = p.num_q_heads / p.num_kv_heads;
  const int rows = u.q_count * group;
  const int head0 = u.kv_head * group;
  int tok[2], n[2], off0[2];
  CANOPY_UNROLL
  for (int h = 0; h < 2; ++h) {
    tok[h] = -1;
    n[h] = 0;
    off0[h] = 0;
    if (row[h] < rows) {
      tok[h] = __ldg(p.q_tokens + u.q_begin + row[h] / group);
      off0[h] = __ldg(p.merge_offsets + tok[h]);
      n[h] = __ldg(p.merge_offsets + tok[h] + 1) - off0[h];
    }
  }
  CANOPY_UNROLL
  for (int h = 0; h < 2; ++h) {
    if (tok[h] < 0) continue;
    const int head = head0 + row[h] % group;
    const int slot = u.slot_base + row[h] / group;
    if (p.mode == ForestOutputMode::kPartials || n[h] > 1) {
      store_frag_f32<kD>(p.partial_o + (static_cast<size_t>(slot) * p.num_q_heads + head) * kD, f[h], t4);
      if (t4 == 0) p.partial_lse[static_cast<size_t>(slot) * p.num_q_heads + head] = lse[h];
    } else {
      store_frag_bf16<kD>(p.out + (static_cast<size_t>(tok[h]) * p.num_q_heads + head) * kD, f[h], t4);
      if (t4 == 0 && p.lse_out != nullptr) p.lse_out[static_cast<size_t>(tok[h]) * p.num_q_heads + head] = lse[h];
    }
  }
  if (p.mode == ForestOutputMode::kPartials) return;
  __threadfence();  // this thread's partials before the counts below
  named_barrier_sync(kBarrierConsumers, 256);
  if (ctid < u.q_count) {
    const int t = __ldg(p.q_tokens + u.q_begin + ctid);
    const int cnt = __ldg(p.merge_offsets + t + 1) - __ldg(p.merge_offsets + t);
    bool last = false;
    if (cnt > 1) {
      int32_t* counter = p.counters + static_cast<size_t>(t) * p.num_kv_heads + u.kv_head;
      last = atomicAdd(counter, 1) == cnt - 1;
      if (last) atomicExch(counter, 0);  // every unit of this token has counted: ready for the next launch
    }
    last_flags[ctid] = last ? 1 : 0;
  }
  named_barrier_sync(kBarrierConsumers, 256);
  CANOPY_UNROLL
  for (int h = 0; h < 2; ++h) {
    if (tok[h] < 0 || n[h] <= 1) continue;
    if (!last_flags[row[h] / group]) continue;
    __threadfence();  // acquire: the other units' partials, published before their counts
    const int head = head0 + row[h] % group;
    float l = 0.0f;
    merge_frag<kD>(f[h], l, false, p.merge_slots + off0[h], n[h], -1, p.partial_o, p.partial_lse, p.num_q_heads, head,
                   t4);
    store_frag_bf16<kD>(p.out + (static_cast<size_t>(tok[h]) * p.num_q_heads + head) * kD, f[h], t4);
    if (t4 == 0 && p.lse_out != nullptr) p.lse_out[static_cast<size_t>(tok[h]) * p.num_q_heads + head] = l;
  }
}

// v3 ping-pong: warpgroup wg may issue its GEMMs once the other one has issued its own (named
// barrier kBarrierTurn + wg: 128 threads wait, the other warpgroup's 128 arrive). Warpgroup 1
// lends warpgroup 0 the first turn; every unit runs 1 + n_tiles turns in both warpgroups (an idle
// warpgroup takes its turns too), and warpgroup 0 takes the last lent turn back when the wide
// mode ends, so that both barriers end balanced.
inline constexpr uint32_t kBarrierTurn = 4;  // ids 4 and 5
// (Immediate barrier ids: a register id makes ptxas reserve all 16 barriers.)
__device__ __forceinline__ void pingpong_wait(int wg) {
  if (wg == 0) {
    named_barrier_sync(kBarrierTurn, 256);
  } else {
    named_barrier_sync(kBarrierTurn + 1, 256);
  }
}
__device__ __forceinline__ void pingpong_pass(int wg) {
  if (wg == 0) {
    named_barrier_arrive(kBarrierTurn + 1, 256);
  } else {
    named_barrier_arrive(kBarrierTurn, 256);
  }
}

// Lazy rescaling (the wide consumers and the leaf warps): a row's reference maximum moves only when
// a tile's maximum exceeds it by more than this (log2 units; probabilities stay below 2^8 = 256,
// well inside bf16 and f32 range).
inline constexpr float kRescaleSlack = 8.0f;

__device__ __forceinline__ float exp2_approx(float x) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return exp2f(x);
#endif
}

// One tile of a row's online softmax with lazy rescaling: m_tile is the tile's maximum (log2
// units, already scaled). Moves the reference maximum row_m only when m_tile exceeds it by more
// than kRescaleSlack (also the row's first keys: row_m = -inf), sets alpha to the factor that
// rescales the row's O and sum (1 when the reference stayed), and returns the offset to
// exponentiate the tile's scores against (0 for a row with no key yet: exp2(-inf) = 0). Exact:
// every score of the row is exponentiated against the same reference, and the LSE uses it.
__device__ __forceinline__ float lazy_reference_max(float m_tile, float& row_m, float& alpha) {
  alpha = 1.0f;
  if (m_tile > row_m + kRescaleSlack) {
    alpha = exp2_approx(row_m - m_tile);
    row_m = m_tile;
  }
  return row_m == neg_inf_f32() ? 0.0f : row_m;
}

template <int kD, bool kV3>
__device__ __forceinline__ void wide_consumer(const ForestAttentionParams& p, uint32_t base, uint32_t ctrl,
                                              const int* ring, uint8_t* last_flags, int wg, int ctid) {
  using C = ForestConfigSm90<kD>;
  constexpr int kKSteps = kD / 16;       // k16 steps of S = Q K^T
  constexpr int kPSteps = C::kTileKeys / 16;  // k16 steps of O += P V
  static_assert(C::kTileKeys == 128, "S is one m64n128k16 wgmma per k16 step");
  constexpr int kSN = C::kTileKeys / 2;  // S accumulators per thread (m64 x kTileKeys)
  constexpr int kSCols = C::kTileKeys / 8;  // 8-key column blocks of S
  // k16 steps of S whose Q fragment stays in registers (the rest read Q from shared memory): all of
  // them at D = 64; none at D = 128 with 128-key tiles (ptxas -v, nvcc 13.0: two or three steps
  // spill in the tile loop, four serialize the wgmmas (C7512); with 64-key tiles three fitted).
  constexpr int kQRegSteps = kD == 64 ? kKSteps : 0;
  constexpr bool kQAllInRegs = kQRegSteps == kKSteps;
  const int wtid = ctid % 128;           // thread in the warpgroup
  const int warp = wtid / 32;
  const int lane = wtid % 32;
  const int gid = lane / 4;
  const int t4 = lane % 4;
  const int group = p.num_q_heads / p.num_kv_heads;
  const float neg_inf = neg_inf_f32();
  const int row[2] = {wg * C::kWgRows + warp * 16 + gid, wg * C::kWgRows + warp * 16 + gid + 8};

  // Stage 0's K (K-major) and V (N-major: LBO = the next 64 columns) descriptors.
  const uint64_t k_desc0 = wgmma_desc_sw128(base + C::kStageOffset, 16, 1024);
  const uint64_t v_desc0 = wgmma_desc_sw128(base + C::kStageOffset + C::kTileBytes, C::kTileRegionBytes, 1024);
  int units = 0, tiles = 0, qloads = 0;
  if (kV3 && wg == 1) pingpong_pass(wg);  // warpgroup 0 goes first
  for (;;) {
    // ---- the next unit
    const int slot = units & 1;
    mbar_wait(ctrl + C::kBarUnitFull + 8 * slot, (units >> 1) & 1);
    const int idx = *reinterpret_cast<const volatile int*>(ring + slot);
    __syncwarp();
    if (lane == 0) mbar_arrive(ctrl + C::kBarUnitEmpty + 8 * slot);
    ++units;
    if (idx < 0) {
      if (kV3 && wg == 0) pingpong_wait(wg);  // the turn warpgroup 1 passed last
      break;
    }
    const ForestUnit& u = p.units[idx];  // fields reloaded where used (L1): no registers across the tile loop
    const int n_tiles = unit_tiles(u, C::kTileKeys);
    const int rows = u.q_count * group;
    const bool active = wg * C::kWgRows < rows;  // warpgroup-uniform
    const int qbuf = qloads % C::kQBuffers;
    const uint32_t q_parity = (qloads / C::kQBuffers) & 1;
    ++qloads;
    const uint32_t q_addr = base + C::kQOffset + qbuf * C::kQBufBytes + wg * C::kQWgBytes;
    auto release_q = [&] {
      __syncwarp();
      if (lane == 0) mbar_arrive(ctrl + C::kBarQEmpty + 8 * qbuf);
    };
    auto stage_of = [&](int t) { return (tiles + t) % C::kStages; };
    // Waits for data the producer's cp.async landed (signalled by the hardware, no producer thread
    // fenced it): this thread's proxy fence makes it visible to its wgmma reads.
    auto wait_data = [&](uint32_t bar_offset, uint32_t parity) {
      mbar_wait(ctrl + bar_offset, parity);
      fence_proxy_async_shared();
    };
    auto full_parity = [&](int t) { return static_cast<uint32_t>(((tiles + t) / C::kStages) & 1); };
    auto release_stage = [&](int t) {
      __syncwarp();
      if (lane == 0) mbar_arrive(ctrl + C::kBarEmpty + 8 * stage_of(t));
    };

    if (!active) {
      // No rows here: keep the barriers' counts (and the pace of the producer) without computing.
      mbar_wait(ctrl + C::kBarQFull + 8 * qbuf, q_parity);
      release_q();
      if constexpr (kV3) {  // the active warpgroup's turns: 1 + n_tiles
        pingpong_wait(wg);
        pingpong_pass(wg);
      }
      for (int t = 0; t < n_tiles; ++t) {
        mbar_wait(ctrl + C::kBarFull + 8 * stage_of(t), full_parity(t));
        if constexpr (kV3) {
          pingpong_wait(wg);
          pingpong_pass(wg);
        }
        release_stage(t);
      }
      tiles += n_tiles;
      if (p.mode == ForestOutputMode::kFusedMerge) {  // take part in the epilogue's barriers
        Frag<kD> f[2];
        float lse[2] = {neg_inf, neg_inf};
        const int none[2] = {C::kWideRows, C::kWideRows};  // past every unit's rows: nothing written
        CANOPY_UNROLL
        for (int h = 0; h < 2; ++h)
          CANOPY_UNROLL
          for (int e = 0; e < Frag<kD>::kN; ++e) f[h].v[e] = 0.0f;
        wide_epilogue<kD>(p, u, f, lse, none, last_flags, ctid, t4);
      }
      continue;
    }

    // Tiles from first_masked on need the key / causal mask (the unit's last tile, or those past
    // mask_from); one register, so the tile loop reads no descriptor field from global memory
    // except in a masked tile. (v3 read kv_begin, kv_end and mask_from per tile until v3.3: ncu put
    // ~12% of the consumer warps' stall samples on those L1 hits, exposed right after the wgmma
    // wait.)
    const int first_masked = [&] {
      const int limit = (u.mask_from < u.kv_end ? u.mask_from : u.kv_end) - u.kv_begin;
      return limit > 0 ? limit / C::kTileKeys : 0;
    }();

    // Query positions of this thread's rows (causal units only).
    int qpos[2] = {kNoMask, kNoMask};
    if (u.mask_from != kNoMask) {
      CANOPY_UNROLL
      for (int h = 0; h < 2; ++h)
        if (row[h] < rows) qpos[h] = __ldg(p.q_positions + __ldg(p.q_tokens + u.q_begin + row[h] / group));
    }

    WideAcc<kD> acc;
    CANOPY_UNROLL
    for (int i = 0; i < WideAcc<kD>::kN; ++i) acc.o[i] = 0.0f;
    float row_m[2] = {neg_inf, neg_inf};
    float row_l[2] = {0.0f, 0.0f};
    float s[kSN];
    uint32_t pa[1][kPSteps][4];  // P of a tile as the bf16 A operand of P V

    // The first kQRegSteps k16 steps of this warp's 16 Q rows as A fragments (the mma.m16n8k16 A
    // fragment, read with ldmatrix from the 128-byte-swizzled Q buffer), so those steps of S = Q K^T
    // read only K from shared memory (SS wgmma re-reads Q for every instruction). All of them at
    // D = 64, none at D = 128 (kQRegSteps). Lane l addresses row l % 8 + 8 ((l / 8) % 2) of the
    // warp, chunk 2 ks + l / 16.
    uint32_t qf[kQRegSteps > 0 ? kQRegSteps : 1][4];
    auto load_q_frags = [&] {
      const int r = warp * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
      CANOPY_UNROLL
      for (int ks = 0; ks < kQRegSteps; ++ks) {
        const int chunk = 2 * ks + (lane >> 4);
        ldmatrix_x4(qf[ks], q_addr + static_cast<uint32_t>(sw128_offset(r, chunk, C::kWgRows)));
      }
    };
    // Descriptors: a per-stage base plus compile-time offsets (wgmma_desc_advance).
    const uint64_t q_desc = wgmma_desc_sw128(q_addr, 16, 1024);
    // A k16 step: 32 bytes into the rows of a region, the next region every 4 steps.
    auto q_step_offset = [](int ks) { return static_cast<uint32_t>((ks / 4) * C::kQRegionBytes + (ks % 4) * 32); };
    auto k_step_offset = [](int ks) { return static_cast<uint32_t>((ks / 4) * C::kTileRegionBytes + (ks % 4) * 32); };
    auto issue_s = [&](int t) {
      const uint64_t kd = wgmma_desc_advance(k_desc0, static_cast<uint32_t>(stage_of(t) * C::kStageBytes));
      CANOPY_UNROLL
      for (int i = 0; i < kSN; ++i) reg_fence(s[i]);
      wgmma_fence();
      CANOPY_UNROLL
      for (int ks = 0; ks < kKSteps; ++ks) {
        const uint32_t koff = k_step_offset(ks);
        if (ks < kQRegSteps) {
          wgmma_m64n128k16_rs_kmajor(s, qf[ks < kQRegSteps ? ks : 0], wgmma_desc_advance(kd, koff), ks > 0 ? 1 : 0);
        } else {
          wgmma_m64n128k16_ss(s, wgmma_desc_advance(q_desc, q_step_offset(ks)), wgmma_desc_advance(kd, koff),
                              ks > 0 ? 1 : 0);
        }
      }
      wgmma_commit();
    };
    auto issue_pv = [&](int t, uint32_t (&pb)[kPSteps][4]) {
      const uint64_t vd = wgmma_desc_advance(v_desc0, static_cast<uint32_t>(stage_of(t) * C::kStageBytes));
      CANOPY_UNROLL
      for (int i = 0; i < WideAcc<kD>::kN; ++i) reg_fence(acc.o[i]);
      CANOPY_UNROLL
      for (int kk = 0; kk < kPSteps; ++kk)
        CANOPY_UNROLL
        for (int i = 0; i < 4; ++i) reg_fence(pb[kk][i]);
      wgmma_fence();
      CANOPY_UNROLL
      for (int kk = 0; kk < kPSteps; ++kk)
        pv_mma<kD>(acc, pb[kk], wgmma_desc_advance(vd, static_cast<uint32_t>(kk * 16 * 128)));
      wgmma_commit();
    };
    auto settle_s = [&] {  // after a wgmma_wait that retired S: the scores are final
      CANOPY_UNROLL
      for (int i = 0; i < kSN; ++i) reg_fence(s[i]);
    };
    auto settle = [&] {  // after wgmma_wait<0>: every accumulator is final
      settle_s();
      CANOPY_UNROLL
      for (int i = 0; i < WideAcc<kD>::kN; ++i) reg_fence(acc.o[i]);
    };
    // The scores of a tile (m64n64 accumulator layout) -> bf16 A fragments of P V's four k16 steps.
    auto pack_p = [&](uint32_t (&pb)[kPSteps][4]) {
      CANOPY_UNROLL
      for (int kk = 0; kk < kPSteps; ++kk) {
        pb[kk][0] = pack_bf16x2(s[4 * (2 * kk) + 0], s[4 * (2 * kk) + 1]);
        pb[kk][1] = pack_bf16x2(s[4 * (2 * kk) + 2], s[4 * (2 * kk) + 3]);
        pb[kk][2] = pack_bf16x2(s[4 * (2 * kk + 1) + 0], s[4 * (2 * kk + 1) + 1]);
        pb[kk][3] = pack_bf16x2(s[4 * (2 * kk + 1) + 2], s[4 * (2 * kk + 1) + 3]);
      }
    };
    // Softmax of tile t's raw scores, in place (s = unnormalized probabilities): the scale is
    // folded into one FFMA per score (max taken on raw scores: the scale is positive), exp2 on the
    // fast path; O is not touched here: alpha[h] is the factor to rescale row h with (rescale_o)
    // before the tile's P V.
    auto softmax_tile = [&](int t, float (&alpha)[2]) {
      const float scale = p.scale_log2;
      if (t >= first_masked) {
        const int tile_key0 = u.kv_begin + t * C::kTileKeys;
        CANOPY_UNROLL
        for (int j = 0; j < kSCols; ++j)
          CANOPY_UNROLL
          for (int e = 0; e < 4; ++e) {
            const int key = tile_key0 + 8 * j + 2 * t4 + (e & 1);
            if (key >= u.kv_end || u.kv_pos0 + key > qpos[e >> 1]) s[4 * j + e] = neg_inf;
          }
      }
      CANOPY_UNROLL
      for (int h = 0; h < 2; ++h) {
        float mx = neg_inf;
        CANOPY_UNROLL
        for (int j = 0; j < kSCols; ++j) mx = fmaxf(mx, fmaxf(s[4 * j + 2 * h], s[4 * j + 2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        // Lazy rescaling: most tiles keep the reference maximum and skip the O rescale (64
        // multiplications) and its exp2.
        const float m_use = lazy_reference_max(mx * scale, row_m[h], alpha[h]);
        float sum = 0.0f;
        CANOPY_UNROLL
        for (int j = 0; j < kSCols; ++j)
          CANOPY_UNROLL
          for (int e = 0; e < 2; ++e) {
            float& x = s[4 * j + 2 * h + e];
            x = exp2_approx(fmaf(x, scale, -m_use));
            sum += x;
          }
        row_l[h] = row_l[h] * alpha[h] + sum;  // per-thread partial sum; the quad's are added at the end
      }
    };
    // O *= alpha per row, skipped for a thread whose rows kept their reference maximum (alpha ==
    // 1: most tiles, with the lazy rescaling of softmax_tile).
    auto rescale_o = [&](const float (&alpha)[2]) {
      if (alpha[0] == 1.0f && alpha[1] == 1.0f) return;
      CANOPY_UNROLL
      for (int j = 0; j < kD / 8; ++j) {
        acc.o[4 * j + 0] *= alpha[0];
        acc.o[4 * j + 1] *= alpha[0];
        acc.o[4 * j + 2] *= alpha[1];
        acc.o[4 * j + 3] *= alpha[1];
      }
    };

    wait_data(C::kBarQFull + 8 * qbuf, q_parity);
    wait_data(C::kBarFull + 8 * stage_of(0), full_parity(0));
    // The tile pipeline (v3.5, both wide pipelines): per tile, P V of this tile and then, once
    // P's registers are free, S of the next, in this warpgroup's turn at the tensor core (v3:
    // named barriers, ping-pong: one warpgroup issues its GEMMs while the other runs its softmax;
    // v2: no turns, the warpgroups overlap as far as they drift apart). With 128-key tiles, S (64
    // registers), P (32) and O (64) cannot all be pinned by in-flight wgmmas (ptxas serializes
    // every wgmma and spills at 232 registers), so v3.0-v3.4's overlap of the softmax with the
    // warpgroup's own P V (64-key tiles) gave way to the larger tiles: fewer instructions per key,
    // and the ping-pong covers the softmax. No non-wgmma instruction touches an accumulator while
    // a wgmma is in flight (ptxas would serialize every wgmma): P is packed and O rescaled after
    // the waits.
    auto take_turn = [&] {
      if constexpr (kV3) pingpong_wait(wg);
    };
    auto pass_turn = [&] {
      if constexpr (kV3) pingpong_pass(wg);
    };
    float alpha[2] = {1.0f, 1.0f};
    load_q_frags();
    if (kQAllInRegs) release_q();  // Q lives in registers now: the next unit's Q may load
    take_turn();
    issue_s(0);
    pass_turn();
    wgmma_wait<0>();
    settle_s();
    if (!kQAllInRegs && n_tiles == 1) release_q();  // S of the last tile has read Q
    softmax_tile(0, alpha);
    pack_p(pa[0]);
    // Every tile but the last (straight-line code between the issues and the waits: with an issue
    // under a condition ptxas cannot tell which wait retired it, and serializes every wgmma).
    for (int t = 0; t + 1 < n_tiles; ++t) {
      // The data first, then the turn: a warpgroup never holds the tensor core's turn while it
      // waits for a tile.
      wait_data(C::kBarFull + 8 * stage_of(t + 1), full_parity(t + 1));
      take_turn();
      issue_pv(t, pa[0]);
      wgmma_wait<0>();
      settle();
      issue_s(t + 1);
      pass_turn();
      release_stage(t);
      wgmma_wait<0>();
      settle_s();
      if (!kQAllInRegs && t + 2 == n_tiles) release_q();  // S of the last tile has read Q
      softmax_tile(t + 1, alpha);
      pack_p(pa[0]);
      rescale_o(alpha);  // by tile t + 1's factor, before its P V
    }
    take_turn();
    issue_pv(n_tiles - 1, pa[0]);
    pass_turn();
    wgmma_wait<0>();
    settle();
    release_stage(n_tiles - 1);
    tiles += n_tiles;

    // ---- normalize, LSE, output
    Frag<kD> f[2];
    float lse[2];
    CANOPY_UNROLL
    for (int h = 0; h < 2; ++h) {
      float l = row_l[h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      lse[h] = l > 0.0f ? row_m[h] + log2f(l) : neg_inf;
      CANOPY_UNROLL
      for (int j = 0; j < kD / 8; ++j) {
        f[h].v[2 * j] = acc.o[4 * j + 2 * h] * inv;
        f[h].v[2 * j + 1] = acc.o[4 * j + 2 * h + 1] * inv;
      }
    }
    wide_epilogue<kD>(p, u, f, lse, row, last_flags, ctid, t4);
  }
}

// =============================================================================================
// Narrow mode: one warp streams leaves through its own ring of 16-key tiles.
//
// A leaf warp is bound by the latency of its own instruction stream (two leaf warps per scheduler;
// ncu at 40/40 on 66 SMs: ~75% of its cycles stalled on fixed-latency dependencies, branches and
// MUFU, few on memory), so its tile loop keeps each leaf's descriptor fields in registers (the
// inline asm's memory clobbers would reload them from the unit list at every use), maps keys to
// blocks with shifts, splits S = Q K^T into two independent chains of mma and uses the fast exp2.

// Key -> (block, offset in the block) of the paged cache: shifts when the block size is a power
// of two (the engine's 16), division otherwise.
struct BlockGeometry {
  int size;
  int shift;  // log2(size) when `pow2`
  bool pow2;
  __device__ __forceinline__ explicit BlockGeometry(int block_size) : size(block_size), shift(0) {
    while ((1 << shift) < block_size) ++shift;
    pow2 = (1 << shift) == block_size;
  }
  __device__ __forceinline__ int block(int key) const { return pow2 ? key >> shift : key / size; }
  __device__ __forceinline__ int offset(int key) const { return pow2 ? key & (size - 1) : key % size; }
};

// A leaf being loaded (loader) or computed (computer), with the fields the loader needs.
struct LeafCursor {
  int idx = -1;    // unit index, -1: none
  int n_tiles = 0;  // -1: fields not read yet
  int tile = 0;    // next tile to load (loader) or compute (computer)
  int kv_begin = 0, kv_end = 0, kv_head = 0, page_begin = 0;
};

// Leaves are taken in two halves so that the atomic's latency hides behind a leaf's work: lane 0
// issues the atomic (its result stays in flight in a register), the warp reads it a leaf later.
__device__ __forceinline__ int leaf_take_issue(const ForestAttentionParams& p, int lane) {
  return lane == 0 ? atomicAdd(p.work_state + 1, 1) : 0;
}
__device__ __forceinline__ int leaf_take_resolve(const ForestAttentionParams& p, int issued_value) {
  const int i = __shfl_sync(0xffffffffu, issued_value, 0);
  return i < p.num_units - p.num_wide_units ? p.num_wide_units + i : -1;
}

// Fused/partial/direct output of one leaf's rows (this lane: rows gid and gid + 8).
template <int kD>
__device__ __forceinline__ void leaf_epilogue(const ForestAttentionParams& p, const ForestUnit& u, Frag<kD> (&f)[2],
                                              float (&lse)[2], int gid, int t4, int lane) {
  const int group = p.num_q_heads / p.num_kv_heads;
  const int rows = u.q_count * group;
  const int head0 = u.kv_head * group;
  for (int j = 0; j < u.q_count; ++j) {  // tokens of the leaf (warp-uniform loop)
    const int t = __ldg(p.q_tokens + u.q_begin + j);
    const int slot = u.slot_base + j;
    const int off0 = __ldg(p.merge_offsets + t);
    const int n = __ldg(p.merge_offsets + t + 1) - off0;
    bool mine[2];
    CANOPY_UNROLL
    for (int h = 0; h < 2; ++h) {
      const int r = gid + 8 * h;
      mine[h] = r < rows && r / group == j;
    }
    auto write_partials = [&] {
      CANOPY_UNROLL
      for (int h = 0; h < 2; ++h) {
        if (!mine[h]) continue;
        const int head = head0 + (gid + 8 * h) % group;
        store_frag_f32<kD>(p.partial_o + (static_cast<size_t>(slot) * p.num_q_heads + head) * kD, f[h], t4);
        if (t4 == 0) p.partial_lse[static_cast<size_t>(slot) * p.num_q_heads + head] = lse[h];
      }
    };
    auto write_out = [&] {
      CANOPY_UNROLL
      for (int h = 0; h < 2; ++h) {
        if (!mine[h]) continue;
        const int head = head0 + (gid + 8 * h) % group;
        store_frag_bf16<kD>(p.out + (static_cast<size_t>(t) * p.num_q_heads + head) * kD, f[h], t4);
        if (t4 == 0 && p.lse_out != nullptr) p.lse_out[static_cast<size_t>(t) * p.num_q_heads + head] = lse[h];
      }
    };
    if (p.mode == ForestOutputMode::kPartials) {
      write_partials();
      continue;
    }
    if (n <= 1) {
      write_out();
      continue;
    }
    int32_t* counter = p.counters + static_cast<size_t>(t) * p.num_kv_heads + u.kv_head;
    int seen = 0;
    if (lane == 0) seen = load_counter(counter);
    seen = __shfl_sync(0xffffffffu, seen, 0);
    bool last = seen == n - 1;  // every other unit has published: merge without writing this part
    if (!last) {
      write_partials();
      __threadfence();
      __syncwarp();
      int old = 0;
      if (lane == 0) old = atomicAdd(counter, 1);
      old = __shfl_sync(0xffffffffu, old, 0);
      last = old == n - 1;
    }
    if (!last) continue;
    __threadfence();
    CANOPY_UNROLL
    for (int h = 0; h < 2; ++h) {
      if (!mine[h]) continue;
      const int head = head0 + (gid + 8 * h) % group;
      merge_frag<kD>(f[h], lse[h], true, p.merge_slots + off0, n, slot, p.partial_o, p.partial_lse, p.num_q_heads,
                     head, t4);
    }
    write_out();
    __syncwarp();
    if (lane == 0) atomicExch(counter, 0);
  }
}

template <int kD>
__device__ __forceinline__ void leaf_warp(const ForestAttentionParams& p, unsigned char* wsmem, int lane) {
  using C = ForestConfigSm90<kD>;
  constexpr int kKeys = C::kLeafTileKeys;
  constexpr int kS = C::kLeafStages;
  constexpr int kKSteps = kD / 16;
  constexpr int kDTiles = kD / 8;
  constexpr uint32_t kRowBytes = 2 * kD;
  constexpr int kTileElems = kKeys * kD;
  const int gid = lane >> 2;
  const int t4 = lane & 3;
  const int group = p.num_q_heads / p.num_kv_heads;
  const float neg_inf = neg_inf_f32();
  const BlockGeometry geo(p.block_size);
  // A block size that is a multiple of 16 keeps a whole 16-key tile in one block.
  const bool tile_in_block = p.block_size % kKeys == 0;
  const size_t head_stride = static_cast<size_t>(p.block_size) * kD;

  uint16_t* s_q = reinterpret_cast<uint16_t*>(wsmem);
  uint16_t* s_k = s_q + C::kLeafRows * kD;  // [kS][kTileElems]
  uint16_t* s_v = s_k + kS * kTileElems;    // [kS][kTileElems]
  const int ld_chunk = lane % C::kChunks;
  const int ld_row0 = lane / C::kChunks;

  // Loader and computer walk the same sequence of leaves; the loader is at most one leaf ahead and
  // moves to the next leaf only once the computer holds the current leaf's Q in registers (one Q
  // buffer). `issued` and `computed` count tiles over the whole sequence: tile k uses stage k % kS.
  // The leaf after the loader's is known one leaf ahead (`nx`, its descriptor prefetched into L1)
  // and the one after that is being taken (`take`, an atomic in flight).
  const ForestUnit* units = p.units;
  LeafCursor ld, cp, nx;
  int take = 0;
  int issued = 0, computed = 0;
  int next_page = 0;  // block of the loader's next tile

  auto read_fields = [&](LeafCursor& c) {
    const ForestUnit& u = units[c.idx];
    c.kv_begin = u.kv_begin;
    c.kv_end = u.kv_end;
    c.kv_head = u.kv_head;
    c.page_begin = u.kv_page_begin;
    c.n_tiles = unit_tiles(u, kKeys);
  };
  auto open = [&](LeafCursor& c, int idx) {
    c.idx = idx;
    c.tile = 0;
    c.n_tiles = 0;
    if (idx >= 0) read_fields(c);
  };
  // The block of the loader's tile `tile` (0 past the leaf's end: never read then).
  auto tile_page = [&](int tile) {
    const int key = ld.kv_begin + tile * kKeys;
    return key < ld.kv_end ? __ldg(p.kv_pages + ld.page_begin + geo.block(key)) : 0;
  };
  // The loader moves to nx; nx to the leaf being taken; a new take starts.
  auto advance = [&] {
    ld = nx;
    if (ld.idx < 0) return;
    read_fields(ld);
    next_page = tile_page(0);
    const int idx = leaf_take_resolve(p, take);
    nx.idx = idx;
    nx.tile = 0;
    nx.n_tiles = -1;  // read when it becomes the loader's (its descriptor is only prefetched now)
    if (idx >= 0) {
      prefetch_l1(units + idx);
      take = leaf_take_issue(p, lane);
    }
  };

  auto load_q = [&](const ForestUnit& u) {
    const int rows = u.q_count * group;
    const int head0 = u.kv_head * group;
    CANOPY_UNROLL
    for (int i = 0; i < C::kLaneRows; ++i) {
      const int r = ld_row0 + i * C::kLaneRowStep;
      const bool valid = r < rows;
      const uint16_t* src = p.q;
      if (valid) {
        const int t = __ldg(p.q_tokens + u.q_begin + r / group);
        src = p.q + (static_cast<size_t>(t) * p.num_q_heads + head0 + r % group) * kD + ld_chunk * 8;
      }
      cp_async_16(smem_u32(s_q + swizzled_offset(r, ld_chunk, kD)), src, valid);
    }
  };
  auto load_tile = [&](int stage, int page) {
    const uint32_t dk = smem_u32(s_k + stage * kTileElems);
    const uint32_t v_off = static_cast<uint32_t>(kS * kTileElems * 2);
    const int key0 = ld.kv_begin + ld.tile * kKeys + ld_row0;
    if (tile_in_block && ld.kv_begin + (ld.tile + 1) * kKeys <= ld.kv_end) {
      // The whole tile lies before kv_end and in one block (the common case): one source pointer
      // per tensor, rows at immediate offsets (the general path below re-derives every row's
      // address and bounds).
      const size_t off = (static_cast<size_t>(page) * p.num_kv_heads + ld.kv_head) * head_stride +
                         static_cast<size_t>(geo.offset(key0)) * kD + ld_chunk * 8;
      const uint16_t* k = p.k_cache + off;
      const uint16_t* v = p.v_cache + off;
      const uint64_t policy = l2_policy_evict_first();
      CANOPY_UNROLL
      for (int i = 0; i < C::kLaneRows; ++i) {
        const uint32_t d = dk + static_cast<uint32_t>(2 * swizzled_offset(ld_row0 + i * C::kLaneRowStep, ld_chunk, kD));
        cp_async_16_full_hint(d, k + i * C::kLaneRowStep * kD, policy);
        cp_async_16_full_hint(d + v_off, v + i * C::kLaneRowStep * kD, policy);
      }
      return;
    }
    const int pages[1] = {page};
    copy_kv_rows<kD, C::kLaneRows, C::kLaneRowStep, C::kLaneRows, true, true>(
        p, units[ld.idx], key0, ld_chunk, tile_in_block, pages,
        [&](int i) { return dk + static_cast<uint32_t>(2 * swizzled_offset(ld_row0 + i * C::kLaneRowStep, ld_chunk, kD)); },
        v_off);
  };
  // Issues loads while a stage is free and there is something to load: up to kS tiles in flight
  // (the stage of tile k was last used by tile k - kS, computed by then).
  auto fill = [&] {
    while (issued - computed < kS) {
      if (ld.idx < 0) return;
      if (ld.tile == ld.n_tiles) {
        // The next leaf's Q goes to the one Q buffer: only once the computer is on this leaf and
        // has read its Q (after its tile 0).
        if (ld.idx != cp.idx || cp.tile == 0) return;
        advance();
        continue;
      }
      if (ld.tile == 0) load_q(units[ld.idx]);
      load_tile(issued % kS, next_page);
      cp_async_commit();
      ++ld.tile;
      ++issued;
      if (ld.tile < ld.n_tiles) next_page = tile_page(ld.tile);
    }
  };

  open(cp, leaf_take_resolve(p, leaf_take_issue(p, lane)));
  if (cp.idx < 0) return;
  ld = cp;
  next_page = tile_page(0);
  open(nx, leaf_take_resolve(p, leaf_take_issue(p, lane)));
  if (nx.idx >= 0) take = leaf_take_issue(p, lane);
  fill();

  const uint32_t q_addr0 = smem_u32(s_q) + ldsm_lane_offset_a(lane, kD);
  const uint32_t k_addr_base = smem_u32(s_k) + ldsm_lane_offset_b(lane, kD);
  const uint32_t v_addr_base = smem_u32(s_v) + ldsm_lane_offset_a(lane, kD);
  // Waits for tile `computed` (with a leaf's tile 0: its Q too); the groups issued after it may
  // stay in flight.
  auto wait_tile = [&] {
    switch (issued - computed - 1) {
      case 0: cp_async_wait<0>(); break;
      case 1: cp_async_wait<1>(); break;
      case 2: cp_async_wait<2>(); break;
      default: cp_async_wait<3>(); break;
    }
    __syncwarp();
  };

  for (;;) {  // one leaf per iteration: accumulators and Q fragments are born and die here
    const ForestUnit& u = units[cp.idx];
    const int rows = u.q_count * group;
    // In registers for the whole leaf (see the top of this section).
    const int kv_begin = cp.kv_begin;
    const int kv_end = cp.kv_end;
    const int mask_from = u.mask_from;
    const int kv_pos0 = u.kv_pos0;
    float acc_o[kDTiles][4];
    float row_m[2], row_l[2];
    int qpos[2];
    CANOPY_UNROLL
    for (int dt = 0; dt < kDTiles; ++dt)
      CANOPY_UNROLL
      for (int e = 0; e < 4; ++e) acc_o[dt][e] = 0.0f;
    CANOPY_UNROLL
    for (int h = 0; h < 2; ++h) {
      row_m[h] = neg_inf;
      row_l[h] = 0.0f;
      const int r = gid + 8 * h;
      qpos[h] = kNoMask;
      if (mask_from != kNoMask && r < rows) qpos[h] = __ldg(p.q_positions + __ldg(p.q_tokens + u.q_begin + r / group));
    }
    wait_tile();
    uint32_t qa[kKSteps][4];
    CANOPY_UNROLL
    for (int ks = 0; ks < kKSteps; ++ks) ldmatrix_x4(qa[ks], q_addr0 ^ (ks << 5));

    for (;;) {  // the leaf's tiles
      const int stage = computed % kS;
      const int tile_key0 = kv_begin + cp.tile * kKeys;
      const uint32_t k_addr0 = k_addr_base + stage * kKeys * kRowBytes;
      const uint32_t v_addr0 = v_addr_base + stage * kKeys * kRowBytes;
      // S = Q K^T as two independent chains (even and odd k16 steps): half the dependent mma
      // latency of one chain per 8-key column block.
      float s2[2][2][4];
      CANOPY_UNROLL
      for (int c = 0; c < 2; ++c)
        CANOPY_UNROLL
        for (int n = 0; n < 2; ++n)
          CANOPY_UNROLL
          for (int e = 0; e < 4; ++e) s2[c][n][e] = 0.0f;
      CANOPY_UNROLL
      for (int ks = 0; ks < kKSteps; ++ks) {
        uint32_t kb[4];
        ldmatrix_x4(kb, k_addr0 ^ (ks << 5));
        mma_bf16_16816(s2[ks & 1][0], qa[ks], kb[0], kb[1]);
        mma_bf16_16816(s2[ks & 1][1], qa[ks], kb[2], kb[3]);
      }
      float s[2][4];
      CANOPY_UNROLL
      for (int n = 0; n < 2; ++n)
        CANOPY_UNROLL
        for (int e = 0; e < 4; ++e) s[n][e] = s2[0][n][e] + s2[1][n][e];
      if (tile_key0 + kKeys > kv_end || tile_key0 + kKeys > mask_from) {  // one branch per tile
        CANOPY_UNROLL
        for (int n = 0; n < 2; ++n)
          CANOPY_UNROLL
          for (int e = 0; e < 4; ++e) {
            const int key = tile_key0 + n * 8 + 2 * t4 + (e & 1);
            if (key >= kv_end || kv_pos0 + key > qpos[e >> 1]) s[n][e] = neg_inf;
          }
      }
      CANOPY_UNROLL
      for (int h = 0; h < 2; ++h) {
        float v[4];  // raw scores: the scale is positive
        CANOPY_UNROLL
        for (int n = 0; n < 2; ++n) {
          v[2 * n] = s[n][2 * h];
          v[2 * n + 1] = s[n][2 * h + 1];
        }
        // Online softmax with the scale folded into one FFMA per score and the fast exp2 (as in
        // the wide v3 pipeline).
        float mx = fmaxf(fmaxf(v[0], v[1]), fmaxf(v[2], v[3]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float alpha;
        const float m_use = lazy_reference_max(mx * p.scale_log2, row_m[h], alpha);
        float sum = 0.0f;
        CANOPY_UNROLL
        for (int i = 0; i < 4; ++i) {
          v[i] = exp2_approx(fmaf(v[i], p.scale_log2, -m_use));
          sum += v[i];
        }
        row_l[h] = row_l[h] * alpha + sum;  // per-thread partial sum; the quad's are added at the end
        CANOPY_UNROLL
        for (int n = 0; n < 2; ++n) {
          s[n][2 * h] = v[2 * n];
          s[n][2 * h + 1] = v[2 * n + 1];
        }
        // Skipped while the row keeps its reference maximum (most tiles; always for the rows past
        // the leaf's, whose scores are all 0): 64 multiplications per tile.
        if (alpha != 1.0f) {
          CANOPY_UNROLL
          for (int dt = 0; dt < kDTiles; ++dt) {
            acc_o[dt][2 * h] *= alpha;
            acc_o[dt][2 * h + 1] *= alpha;
          }
        }
      }
      uint32_t pa[4];
      pa[0] = pack_bf16x2(s[0][0], s[0][1]);
      pa[1] = pack_bf16x2(s[0][2], s[0][3]);
      pa[2] = pack_bf16x2(s[1][0], s[1][1]);
      pa[3] = pack_bf16x2(s[1][2], s[1][3]);
      CANOPY_UNROLL
      for (int dj = 0; dj < kDTiles / 2; ++dj) {
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, v_addr0 ^ (dj << 5));
        mma_bf16_16816(acc_o[2 * dj], pa, vb[0], vb[1]);
        mma_bf16_16816(acc_o[2 * dj + 1], pa, vb[2], vb[3]);
      }
      __syncwarp();  // every lane is done with this stage (and, after tile 0, with the Q buffer)
      ++computed;
      ++cp.tile;
      fill();  // the next tiles (maybe the next leaf's) stream in, also during the epilogue below
      if (cp.tile == cp.n_tiles) break;
      wait_tile();
    }

    // ---- the leaf is done: normalize and output from registers
    Frag<kD> f[2];
    float lse[2];
    CANOPY_UNROLL
    for (int h = 0; h < 2; ++h) {
      float l = row_l[h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      lse[h] = l > 0.0f ? row_m[h] + log2f(l) : neg_inf;
      CANOPY_UNROLL
      for (int dt = 0; dt < kDTiles; ++dt) {
        f[h].v[2 * dt] = acc_o[dt][2 * h] * inv;
        f[h].v[2 * dt + 1] = acc_o[dt][2 * h + 1] * inv;
      }
    }
    leaf_epilogue<kD>(p, u, f, lse, gid, t4, lane);
    // After the leaf's last tile the loader has moved on (fill() advances once the leaf's tiles are
    // all issued and its tile 0 computed): to the next leaf, or to none.
    if (ld.idx < 0 || ld.idx == cp.idx) break;
    cp = ld;
    cp.tile = 0;
  }
  cp_async_wait<0>();
  __syncwarp();
}

// =============================================================================================
// Narrow mode, one warp of the feeding warpgroup (idle otherwise): pulls the K and V blocks of the
// leaves just ahead of the leaf queue into L2 (one bulk prefetch per block and KV head), so the
// leaf warps' copies hit L2 instead of DRAM. Leaves are taken from their own head (work_state[3])
// and prefetched only while at most leaf_prefetch_window units ahead of the leaf queue's head
// (work_state[1]): L2 keeps them until they are read. A leaf already taken is skipped.
template <int kD>
__device__ __forceinline__ void prefetch_leaves(const ForestAttentionParams& p, int lane) {
  const int n_narrow = p.num_units - p.num_wide_units;
  const size_t head_bytes = static_cast<size_t>(p.block_size) * kD * 2;  // one KV head of one block
  const size_t block_stride = static_cast<size_t>(p.num_kv_heads) * head_bytes;
  const volatile int32_t* leaf_head = p.work_state + 1;
  for (;;) {
    int i = 0;
    if (lane == 0) i = atomicAdd(p.work_state + 3, 1);
    i = __shfl_sync(0xffffffffu, i, 0);
    if (i >= n_narrow) return;
    int head = 0;
    for (;;) {  // wait until the leaf queue is close enough (lane 0 polls, the warp follows)
      if (lane == 0) head = *leaf_head;
      head = __shfl_sync(0xffffffffu, head, 0);
      if (head >= n_narrow || i < head + p.leaf_prefetch_window) break;
      backoff_ns(500);
    }
    if (head >= n_narrow) return;  // every leaf is taken
    if (i < head) continue;        // this one already is: too late to help
    const ForestUnit& u = p.units[p.num_wide_units + i];
    const int first = u.kv_begin / p.block_size;
    const int last = u.kv_end > u.kv_begin ? (u.kv_end - 1) / p.block_size : first - 1;
    const char* k = reinterpret_cast<const char*>(p.k_cache) + static_cast<size_t>(u.kv_head) * head_bytes;
    const char* v = reinterpret_cast<const char*>(p.v_cache) + static_cast<size_t>(u.kv_head) * head_bytes;
    for (int b = first + lane; b <= last; b += 32) {
      const size_t off = static_cast<size_t>(__ldg(p.kv_pages + u.kv_page_begin + b)) * block_stride;
      prefetch_l2_bulk(k + off, static_cast<uint32_t>(head_bytes));
      prefetch_l2_bulk(v + off, static_cast<uint32_t>(head_bytes));
    }
  }
}

// =============================================================================================
// kV3: the v3 wide-mode consumer (softmax under the GEMMs, ping-pong); false: v2's.
template <int kD, bool kV3>
__global__ void __launch_bounds__(ForestConfigSm90<kD>::kThreads, 1)
    forest_attention_sm90_kernel(const __grid_constant__ ForestAttentionParams p) {
#if defined(__CUDA_ARCH__) && !defined(CANOPY_SM90A)
  // Built for another architecture (e.g. sm_80 in CANOPY_CUDA_ARCHS="80;90a"): the host launches
  // this kernel on compute capability 9.0 only (forest_sm90_available).
  __trap();
#else
  using C = ForestConfigSm90<kD>;
  unsigned char* raw = dynamic_smem();
  const uint32_t raw_u32 = smem_u32(raw);
  const uint32_t pad = (1024u - (raw_u32 & 1023u)) & 1023u;  // wgmma tiles: 1024-byte aligned base
  unsigned char* smem = raw + pad;
  const uint32_t base = raw_u32 + pad;
  const uint32_t ctrl = base + C::kCtrlOffset;
  int* ring = reinterpret_cast<int*>(smem + C::kCtrlOffset + C::kRing);
  int* producer_unit = reinterpret_cast<int*>(smem + C::kCtrlOffset + C::kProducerUnit);
  uint8_t* last_flags = smem + C::kCtrlOffset + C::kLastFlags;
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32;

  if (tid == 0) {
    for (int s = 0; s < C::kStages; ++s) {
      mbar_init(ctrl + C::kBarFull + 8 * s, C::kProducerThreads);
      mbar_init(ctrl + C::kBarEmpty + 8 * s, C::kConsumerWarps);
    }
    for (int b = 0; b < 2; ++b) {
      mbar_init(ctrl + C::kBarQFull + 8 * b, C::kProducerThreads);
      mbar_init(ctrl + C::kBarQEmpty + 8 * b, C::kConsumerWarps);
      mbar_init(ctrl + C::kBarUnitFull + 8 * b, 1);
      mbar_init(ctrl + C::kBarUnitEmpty + 8 * b, C::kUnitReaderWarps);
    }
  }
  __syncthreads();

  // The warpgroups' roles are the two branches of one if/else (setmaxnreg gives each branch its
  // own register budget); the mode switch is a CTA-wide named barrier reached from both branches.
  const bool tensor_cta = static_cast<int>(blockIdx.x) < p.num_tensor_ctas;
  int64_t* timeline = p.timeline != nullptr ? p.timeline + 3 * static_cast<size_t>(blockIdx.x) : nullptr;
  if (timeline != nullptr && tid == 0) {
    timeline[0] = static_cast<int64_t>(global_timer_ns());
    timeline[1] = 0;
  }
  if (warp >= C::kConsumerThreads / 32) {
    setmaxnreg_dec<C::kFeederRegs>();
    if (tensor_cta) {
      wide_producer<kD>(p, base, ctrl, ring, producer_unit, tid - C::kConsumerThreads);
      cta_barrier(C::kThreads);
    }
    // Narrow mode: nothing to feed; one warp prefetches leaves into L2 (v3).
    if (kV3 && p.leaf_prefetch_window > 0 && warp == C::kConsumerThreads / 32) prefetch_leaves<kD>(p, tid % 32);
    cta_barrier(C::kThreads);
    return;
  }
  setmaxnreg_inc<C::kComputeRegs>();
  if (tensor_cta) {
    wide_consumer<kD, kV3>(p, base, ctrl, ring, last_flags, tid / 128, tid);
    cta_barrier(C::kThreads);  // the tile area changes hands
    if (timeline != nullptr && tid == 0) timeline[1] = static_cast<int64_t>(global_timer_ns());
  }
  if (warp < C::kLeafWarps) leaf_warp<kD>(p, smem + warp * C::kLeafWarpBytes, tid % 32);
  cta_barrier(C::kThreads);
  if (timeline != nullptr && tid == 0) timeline[2] = static_cast<int64_t>(global_timer_ns());

  // The last CTA to finish resets the queues for the next launch (all others have taken their
  // last unit), so no memset is needed between launches (CUDA-graph friendly).
  if (tid == 0) {
    __threadfence();
    const int done = atomicAdd(p.work_state + 2, 1);
    if (done == static_cast<int>(gridDim.x) - 1) {
      atomicExch(p.work_state + 0, 0);
      atomicExch(p.work_state + 1, 0);
      atomicExch(p.work_state + 2, 0);
      atomicExch(p.work_state + 3, 0);
    }
  }
#endif
}

}  // namespace canopy::kernels
