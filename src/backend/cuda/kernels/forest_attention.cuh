// The fused forest attention kernel (portable sm_80+ path: mma.sync m16n8k16, ldmatrix, cp.async).
// Interface and unit semantics: forest_attention.h. Tile geometry: forest_layout.h.
//
// One launch, one CTA (4 warps) per entry of the host's CTA list, in the host's order:
//   wide CTA:   one unit of up to 128 rows (a shared node's queries x GQA group). Warp w owns
//               rows [32w, 32w + 32); keys stream in 64-key tiles through a two-stage cp.async
//               pipeline shared by the CTA (compute-bound work: each K/V tile feeds 128 rows).
//   narrow CTA: up to four units of at most 16 rows (decode leaves), one per warp. Each warp
//               streams its unit's keys in 16-key tiles through its own three-stage pipeline and
//               never waits for the other warps, so that the start-up latencies of four leaves
//               overlap (memory-bound work: the leaves are the bulk of a decode step's bytes).
// Per tile: S = Q K^T on tensor cores, mask (unit end, causal), online softmax in base 2 (scale *
// log2 e folded into the scores), O += P V on tensor cores. Every K/V row is copied with its own
// block lookup in kv_pages, so any block_size works; block sizes that keep a thread's rows in one
// block (multiples of 8 or 16) take a fast path with one lookup per tile, prefetched a tile ahead.
// Then the normalized rows (f32) and their LSE are staged in shared memory and, per query token,
// written as partials, written as the output (a token with one slot), or merged by the last unit
// to finish that token (ForestOutputMode::kFusedMerge; protocol at unit_epilogue).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "forest_attention.h"
#include "forest_layout.h"
#include "merge_rows.cuh"
#include "mma_sm80.cuh"

namespace canopy::kernels {

__device__ __forceinline__ float neg_inf_f32() { return -__int_as_float(0x7f800000); }

// Relaxed read of a counter that other CTAs update atomically.
__device__ __forceinline__ int load_counter(const int32_t* p) {
  return *reinterpret_cast<const volatile int32_t*>(p);
}

template <int kD>
__device__ __forceinline__ void write_partial_rows(const ForestAttentionParams& p, const float* stage_rows,
                                                   const float* stage_lse, int group, int head0, int slot,
                                                   int lane) {
  using C = ForestConfig<kD>;
  constexpr int kVec = RowVec<kD>::kVec;
  for (int i = 0; i < group; ++i) {
    RowVec<kD> x;
    load_row_vec_shared<kD>(x, stage_rows + i * C::kStagingStride + lane * kVec);
    store_row_vec_f32<kD>(p.partial_o + (static_cast<size_t>(slot) * p.num_q_heads + head0 + i) * kD + lane * kVec,
                          x);
  }
  for (int i = lane; i < group; i += 32)
    p.partial_lse[static_cast<size_t>(slot) * p.num_q_heads + head0 + i] = stage_lse[i];
}

// Epilogue of one unit, by one warp: the staged rows of query tokens j = j_begin, j_begin +
// j_step, ... (group rows each) go to partials or to out.
//
// Fused merge protocol, per (token t, KV head h), whose partials come from n = |slots of t| units
// of this launch (one per slot; each unit covers all `group` heads of h for t):
//   - a unit that reads counter == n - 1 knows every other unit has published its partials: it is
//     the last; it merges its own rows (from shared memory) with the others' and writes out;
//   - otherwise it writes its partials, fences, and increments the counter; the unit whose
//     increment returns n - 1 is the last and merges (after a fence; partials are read through L2).
//   - the last unit resets the counter to 0, so that every launch starts from zero without a memset.
template <int kD>
__device__ __forceinline__ void unit_epilogue(const ForestAttentionParams& p, const ForestUnit& unit,
                                              const float* staging, const float* s_lse, int group, int j_begin,
                                              int j_step, int lane) {
  using C = ForestConfig<kD>;
  const int head0 = unit.kv_head * group;
  for (int j = j_begin; j < unit.q_count; j += j_step) {
    const int t = __ldg(p.q_tokens + unit.q_begin + j);
    const int slot = unit.slot_base + j;
    const float* rows = staging + static_cast<size_t>(j) * group * C::kStagingStride;
    const float* lses = s_lse + j * group;
    if (p.mode == ForestOutputMode::kPartials) {
      write_partial_rows<kD>(p, rows, lses, group, head0, slot, lane);
      continue;
    }
    const int off0 = __ldg(p.merge_offsets + t);
    const int n = __ldg(p.merge_offsets + t + 1) - off0;
    bool last = n <= 1;
    int32_t* counter = p.counters + static_cast<size_t>(t) * p.num_kv_heads + unit.kv_head;
    if (!last) {
      int seen = 0;
      if (lane == 0) seen = load_counter(counter);
      seen = __shfl_sync(0xffffffffu, seen, 0);
      last = seen == n - 1;
      if (!last) {
        write_partial_rows<kD>(p, rows, lses, group, head0, slot, lane);
        __threadfence();
        __syncwarp();
        int old = 0;
        if (lane == 0) old = atomicAdd(counter, 1);
        old = __shfl_sync(0xffffffffu, old, 0);
        last = old == n - 1;
      }
      if (last) __threadfence();
    }
    if (!last) continue;
    for (int i = 0; i < group; ++i) {
      const int head = head0 + i;
      merge_row<kD>(rows + i * C::kStagingStride, lses[i], p.merge_slots + off0, n, slot, p.partial_o,
                    p.partial_lse, p.num_q_heads, head,
                    p.out + (static_cast<size_t>(t) * p.num_q_heads + head) * kD,
                    p.lse_out != nullptr ? p.lse_out + static_cast<size_t>(t) * p.num_q_heads + head : nullptr,
                    lane);
    }
    if (n > 1) {
      __syncwarp();
      if (lane == 0) atomicExch(counter, 0);
    }
  }
}

// One step of the online softmax over a row's new scores (base 2). `s` holds the thread's scores
// of the row (kN values); on return it holds exp2(s - m). Returns the factor by which the row's
// accumulator must be rescaled.
template <int kN>
__device__ __forceinline__ float online_softmax_step(float (&s)[kN], float& row_m, float& row_l) {
  const float neg_inf = neg_inf_f32();
  float mx = neg_inf;
  CANOPY_UNROLL
  for (int i = 0; i < kN; ++i) mx = fmaxf(mx, s[i]);
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  const float m_new = fmaxf(row_m, mx);
  const float m_use = m_new == neg_inf ? 0.0f : m_new;  // a row with no key yet: exp2(-inf) = 0
  const float alpha = exp2f(row_m - m_use);
  row_m = m_new;
  float sum = 0.0f;
  CANOPY_UNROLL
  for (int i = 0; i < kN; ++i) {
    s[i] = exp2f(s[i] - m_use);
    sum += s[i];
  }
  row_l = row_l * alpha + sum;  // per-thread partial sum; the quad's are added at the end
  return alpha;
}

// =============================================================================================
// Wide unit: the whole CTA, up to 128 rows.
template <int kD>
__device__ __forceinline__ void wide_unit(const ForestAttentionParams& p, const ForestUnit& unit, unsigned char* smem) {
  using C = ForestConfig<kD>;
  constexpr int kMTiles = 2;                             // m16 row tiles per warp
  constexpr int kWarpKeys = 32;                          // keys per sub-tile (bounds live scores)
  constexpr int kSubTiles = C::kTileKeys / kWarpKeys;
  constexpr int kNTiles = kWarpKeys / 8;                 // n8 tiles of S per sub-tile
  constexpr int kKSteps = kD / 16;                       // k16 steps of Q K^T
  constexpr int kDTiles = kD / 8;                        // n8 tiles of O
  constexpr int kPSteps = kWarpKeys / 16;                // k16 steps of P V
  constexpr int kRpt = C::kRowsPerThread;
  constexpr uint32_t kRowBytes = 2 * kD;

  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int gid = lane >> 2;
  const int tid4 = lane & 3;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int rows = unit.q_count * group;
  const int head0 = unit.kv_head * group;
  const float neg_inf = neg_inf_f32();

  uint16_t* s_q = reinterpret_cast<uint16_t*>(smem);
  uint16_t* s_k = s_q + C::kWideRows * kD;           // [kStages][kTileKeys * kD]
  uint16_t* s_v = s_k + C::kStages * C::kTileElems;  // [kStages][kTileKeys * kD]
  float* staging = reinterpret_cast<float*>(smem);   // aliases the above after the key loop
  float* s_lse = reinterpret_cast<float*>(smem + C::kLseOffset);
  int* s_qpos = reinterpret_cast<int*>(smem + C::kQposOffset);

  // ---- query rows -> s_q (rows >= `rows` are zero: their scores are 0 and they are never written)
  for (int idx = tid; idx < C::kWideRows * C::kChunks; idx += C::kThreads) {
    const int r = idx / C::kChunks;
    const int c = idx % C::kChunks;
    const bool valid = r < rows;
    const uint16_t* src = p.q;
    if (valid) {
      const int t = __ldg(p.q_tokens + unit.q_begin + r / group);
      src = p.q + (static_cast<size_t>(t) * p.num_q_heads + head0 + r % group) * kD + c * 8;
    }
    cp_async_16(smem_u32(s_q + swizzled_offset(r, c, kD)), src, valid);
  }

  // ---- key/value tiles
  const int bs = p.block_size;
  const int kv_begin = unit.kv_begin;
  const int kv_end = unit.kv_end;
  const int n_tiles = kv_end > kv_begin ? (kv_end - kv_begin + C::kTileKeys - 1) / C::kTileKeys : 0;
  const int ld_chunk = tid % C::kChunks;
  const int ld_row0 = (tid / C::kChunks) * kRpt;
  const int32_t* pages = p.kv_pages + unit.kv_page_begin;
  const size_t head_stride = static_cast<size_t>(bs) * kD;
  const size_t block_stride = static_cast<size_t>(p.num_kv_heads) * head_stride;
  const uint16_t* k_head = p.k_cache + static_cast<size_t>(unit.kv_head) * head_stride + ld_chunk * 8;
  const uint16_t* v_head = p.v_cache + static_cast<size_t>(unit.kv_head) * head_stride + ld_chunk * 8;
  // Fast path: block_size a multiple of kRpt keeps a thread's kRpt rows in one block (unit key
  // ranges start at multiples of 64 keys of a segment that starts at a block boundary).
  const bool rows_in_one_block = bs % kRpt == 0;

  // Block of this thread's first row of `tile` (looked up one tile ahead so the copy never waits).
  auto first_page = [&](int tile) -> int {
    const int key = kv_begin + tile * C::kTileKeys + ld_row0;
    return key < kv_end ? __ldg(pages + key / bs) : 0;
  };
  auto load_tile = [&](int tile, int stage, int page) {
    const int key0 = kv_begin + tile * C::kTileKeys + ld_row0;
    uint16_t* dk = s_k + stage * C::kTileElems;
    uint16_t* dv = s_v + stage * C::kTileElems;
    if (rows_in_one_block) {
      const size_t off0 = static_cast<size_t>(page) * block_stride + static_cast<size_t>(key0 % bs) * kD;
      CANOPY_UNROLL
      for (int i = 0; i < kRpt; ++i) {
        const bool valid = key0 + i < kv_end;
        const size_t off = off0 + static_cast<size_t>(i) * kD;
        const int dst = swizzled_offset(ld_row0 + i, ld_chunk, kD);
        cp_async_16(smem_u32(dk + dst), valid ? k_head + off : p.k_cache, valid);
        cp_async_16(smem_u32(dv + dst), valid ? v_head + off : p.v_cache, valid);
      }
    } else {  // small or odd block sizes: look every row's block up
      CANOPY_NO_UNROLL
      for (int i = 0; i < kRpt; ++i) {
        const int key = key0 + i;
        const bool valid = key < kv_end;
        const int blk = valid ? __ldg(pages + key / bs) : 0;
        const size_t off = static_cast<size_t>(blk) * block_stride + static_cast<size_t>(key % bs) * kD;
        const int dst = swizzled_offset(ld_row0 + i, ld_chunk, kD);
        cp_async_16(smem_u32(dk + dst), valid ? k_head + off : p.k_cache, valid);
        cp_async_16(smem_u32(dv + dst), valid ? v_head + off : p.v_cache, valid);
      }
    }
  };

  if (n_tiles > 0) load_tile(0, 0, first_page(0));
  cp_async_commit();  // group: Q and tile 0
  if (n_tiles > 1) load_tile(1, 1, first_page(1));
  cp_async_commit();  // group: tile 1
  int next_page = n_tiles > 2 ? first_page(2) : 0;

  // Query positions of the rows, for the causal mask (never read in a unit without one).
  const bool causal = unit.mask_from != kNoMask;
  for (int r = tid; r < C::kWideRows; r += C::kThreads) {
    int pos = kNoMask;
    if (causal && r < rows) pos = __ldg(p.q_positions + __ldg(p.q_tokens + unit.q_begin + r / group));
    s_qpos[r] = pos;
  }

  const int wrow0 = warp * (kMTiles * 16);
  const bool warp_active = wrow0 < rows;  // warps past the last row only copy
  float acc_o[kMTiles][kDTiles][4];
  float row_m[kMTiles][2];
  float row_l[kMTiles][2];
  CANOPY_UNROLL
  for (int mi = 0; mi < kMTiles; ++mi) {
    CANOPY_UNROLL
    for (int dt = 0; dt < kDTiles; ++dt) {
      CANOPY_UNROLL
      for (int e = 0; e < 4; ++e) acc_o[mi][dt][e] = 0.0f;
    }
    CANOPY_UNROLL
    for (int h = 0; h < 2; ++h) {
      row_m[mi][h] = neg_inf;
      row_l[mi][h] = 0.0f;
    }
  }

  // ldmatrix addresses: per-lane bases, stepped by XOR with constants (forest_layout.h).
  const uint32_t q_addr0 = smem_u32(s_q) + wrow0 * kRowBytes + ldsm_lane_offset_a(lane, kD);
  const uint32_t k_lane = ldsm_lane_offset_b(lane, kD);
  const uint32_t v_lane = ldsm_lane_offset_a(lane, kD);

  for (int tile = 0; tile < n_tiles; ++tile) {
    const int stage = tile & 1;
    cp_async_wait<1>();  // every group but the newest (tile + 1) has landed
    __syncthreads();
    const int tile_key0 = kv_begin + tile * C::kTileKeys;
    const uint32_t k_addr0 = smem_u32(s_k + stage * C::kTileElems) + k_lane;
    const uint32_t v_addr0 = smem_u32(s_v + stage * C::kTileElems) + v_lane;
    // Masks are needed only in a tile that reaches past the unit's end or into the causal zone.
    const bool need_mask = tile_key0 + C::kTileKeys > kv_end || tile_key0 + C::kTileKeys > unit.mask_from;
    CANOPY_NO_UNROLL
    for (int sub = 0; sub < kSubTiles; ++sub) {  // not unrolled: one sub-tile's scores live at a time
      if (!warp_active) break;
      const int wkey = sub * kWarpKeys;  // first key of this sub-tile, within the tile
      float s[kMTiles][kNTiles][4];
      CANOPY_UNROLL
      for (int mi = 0; mi < kMTiles; ++mi) {
        CANOPY_UNROLL
        for (int n = 0; n < kNTiles; ++n) {
          CANOPY_UNROLL
          for (int e = 0; e < 4; ++e) s[mi][n][e] = 0.0f;
        }
      }
      // S = Q K^T
      CANOPY_UNROLL
      for (int ks = 0; ks < kKSteps; ++ks) {
        uint32_t qa[kMTiles][4];
        CANOPY_UNROLL
        for (int mi = 0; mi < kMTiles; ++mi) ldmatrix_x4(qa[mi], (q_addr0 + mi * 16 * kRowBytes) ^ (ks << 5));
        CANOPY_UNROLL
        for (int nj = 0; nj < kNTiles / 2; ++nj) {
          uint32_t kb[4];
          ldmatrix_x4(kb, (k_addr0 + (wkey + nj * 16) * kRowBytes) ^ (ks << 5));
          CANOPY_UNROLL
          for (int mi = 0; mi < kMTiles; ++mi) {
            mma_bf16_16816(s[mi][2 * nj], qa[mi], kb[0], kb[1]);
            mma_bf16_16816(s[mi][2 * nj + 1], qa[mi], kb[2], kb[3]);
          }
        }
      }
      // scale, mask, online softmax: s[mi][n][e] is row gid + 8 (e / 2), key 8n + 2 tid4 + e % 2
      CANOPY_UNROLL
      for (int mi = 0; mi < kMTiles; ++mi) {
        CANOPY_UNROLL
        for (int h = 0; h < 2; ++h) {
          float v[2 * kNTiles];
          CANOPY_UNROLL
          for (int n = 0; n < kNTiles; ++n) {
            CANOPY_UNROLL
            for (int e = 0; e < 2; ++e) {
              float x = s[mi][n][2 * h + e] * p.scale_log2;
              if (need_mask) {
                const int key = tile_key0 + wkey + n * 8 + 2 * tid4 + e;
                if (key >= kv_end || unit.kv_pos0 + key > s_qpos[wrow0 + mi * 16 + gid + 8 * h]) x = neg_inf;
              }
              v[2 * n + e] = x;
            }
          }
          const float alpha = online_softmax_step(v, row_m[mi][h], row_l[mi][h]);
          CANOPY_UNROLL
          for (int n = 0; n < kNTiles; ++n) {
            s[mi][n][2 * h] = v[2 * n];
            s[mi][n][2 * h + 1] = v[2 * n + 1];
          }
          CANOPY_UNROLL
          for (int dt = 0; dt < kDTiles; ++dt) {
            acc_o[mi][dt][2 * h] *= alpha;
            acc_o[mi][dt][2 * h + 1] *= alpha;
          }
        }
      }
      // O += P V (P re-packed from the S accumulators as A fragments)
      CANOPY_UNROLL
      for (int kk = 0; kk < kPSteps; ++kk) {
        uint32_t pa[kMTiles][4];
        CANOPY_UNROLL
        for (int mi = 0; mi < kMTiles; ++mi) {
          pa[mi][0] = pack_bf16x2(s[mi][2 * kk][0], s[mi][2 * kk][1]);
          pa[mi][1] = pack_bf16x2(s[mi][2 * kk][2], s[mi][2 * kk][3]);
          pa[mi][2] = pack_bf16x2(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
          pa[mi][3] = pack_bf16x2(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
        }
        CANOPY_UNROLL
        for (int dj = 0; dj < kDTiles / 2; ++dj) {
          uint32_t vb[4];
          ldmatrix_x4_trans(vb, (v_addr0 + (wkey + kk * 16) * kRowBytes) ^ (dj << 5));
          CANOPY_UNROLL
          for (int mi = 0; mi < kMTiles; ++mi) {
            mma_bf16_16816(acc_o[mi][2 * dj], pa[mi], vb[0], vb[1]);
            mma_bf16_16816(acc_o[mi][2 * dj + 1], pa[mi], vb[2], vb[3]);
          }
        }
      }
    }
    __syncthreads();  // every warp is done with this stage
    if (tile + 2 < n_tiles) load_tile(tile + 2, stage, next_page);
    cp_async_commit();
    if (tile + 3 < n_tiles) next_page = first_page(tile + 3);
  }
  cp_async_wait<0>();
  __syncthreads();  // the buffers become the staging area

  // ---- normalized rows and LSE -> staging
  CANOPY_UNROLL
  for (int mi = 0; mi < kMTiles; ++mi) {
    CANOPY_UNROLL
    for (int h = 0; h < 2; ++h) {
      float l = row_l[mi][h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      const int r = wrow0 + mi * 16 + gid + 8 * h;
      float* dst = staging + r * C::kStagingStride + 2 * tid4;
      CANOPY_UNROLL
      for (int dt = 0; dt < kDTiles; ++dt)
        *reinterpret_cast<float2*>(dst + dt * 8) = make_float2(acc_o[mi][dt][2 * h] * inv, acc_o[mi][dt][2 * h + 1] * inv);
      if (tid4 == 0) s_lse[r] = l > 0.0f ? row_m[mi][h] + log2f(l) : neg_inf;
    }
  }
  __syncthreads();

  // ---- partials / output: warp w takes tokens w, w + 4, ...
  unit_epilogue<kD>(p, unit, staging, s_lse, group, warp, C::kWarps, lane);
}

// =============================================================================================
// Narrow unit: one warp, up to 16 rows (one m16 tile), its own shared memory and pipeline.
template <int kD>
__device__ __forceinline__ void narrow_unit(const ForestAttentionParams& p, const ForestUnit& unit,
                                            unsigned char* wsmem, float* w_lse, int lane) {
  using C = ForestConfig<kD>;
  constexpr int kKeys = C::kNarrowTileKeys;  // 16: one k16 step of P V, two n8 tiles of S
  constexpr int kS = C::kNarrowStages;
  constexpr int kKSteps = kD / 16;
  constexpr int kDTiles = kD / 8;
  constexpr uint32_t kRowBytes = 2 * kD;
  constexpr int kTileElems = kKeys * kD;

  const int gid = lane >> 2;
  const int tid4 = lane & 3;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int rows = unit.q_count * group;
  const int head0 = unit.kv_head * group;
  const float neg_inf = neg_inf_f32();

  uint16_t* s_q = reinterpret_cast<uint16_t*>(wsmem);
  uint16_t* s_k = s_q + C::kNarrowRows * kD;  // [kS][kTileElems]
  uint16_t* s_v = s_k + kS * kTileElems;      // [kS][kTileElems]
  float* staging = reinterpret_cast<float*>(wsmem + C::kNarrowQBytes);  // aliases K/V after the loop

  // Lane l copies chunk l % kChunks of rows l / kChunks + i * kLaneRowStep.
  const int ld_chunk = lane % C::kChunks;
  const int ld_row0 = lane / C::kChunks;

  // ---- query rows -> s_q
  CANOPY_UNROLL
  for (int i = 0; i < C::kLaneRows; ++i) {
    const int r = ld_row0 + i * C::kLaneRowStep;
    const bool valid = r < rows;
    const uint16_t* src = p.q;
    if (valid) {
      const int t = __ldg(p.q_tokens + unit.q_begin + r / group);
      src = p.q + (static_cast<size_t>(t) * p.num_q_heads + head0 + r % group) * kD + ld_chunk * 8;
    }
    cp_async_16(smem_u32(s_q + swizzled_offset(r, ld_chunk, kD)), src, valid);
  }

  // ---- key/value tiles
  const int bs = p.block_size;
  const int kv_begin = unit.kv_begin;
  const int kv_end = unit.kv_end;
  const int n_tiles = kv_end > kv_begin ? (kv_end - kv_begin + kKeys - 1) / kKeys : 0;
  const int32_t* pages = p.kv_pages + unit.kv_page_begin;
  const size_t head_stride = static_cast<size_t>(bs) * kD;
  const size_t block_stride = static_cast<size_t>(p.num_kv_heads) * head_stride;
  const uint16_t* k_head = p.k_cache + static_cast<size_t>(unit.kv_head) * head_stride + ld_chunk * 8;
  const uint16_t* v_head = p.v_cache + static_cast<size_t>(unit.kv_head) * head_stride + ld_chunk * 8;
  // Fast path: a block_size multiple of 16 keeps a 16-key tile in one block (tiles start at
  // multiples of 16 keys of a segment that starts at a block boundary): one lookup per tile.
  const bool tile_in_one_block = bs % kKeys == 0;

  auto tile_page = [&](int tile) -> int {
    const int key = kv_begin + tile * kKeys;
    return key < kv_end ? __ldg(pages + key / bs) : 0;
  };
  auto load_tile = [&](int tile, int stage, int page) {
    const int key0 = kv_begin + tile * kKeys;
    uint16_t* dk = s_k + stage * kTileElems;
    uint16_t* dv = s_v + stage * kTileElems;
    if (tile_in_one_block) {
      const size_t off0 = static_cast<size_t>(page) * block_stride + static_cast<size_t>(key0 % bs) * kD;
      CANOPY_UNROLL
      for (int i = 0; i < C::kLaneRows; ++i) {
        const int r = ld_row0 + i * C::kLaneRowStep;
        const bool valid = key0 + r < kv_end;
        const size_t off = off0 + static_cast<size_t>(r) * kD;
        const int dst = swizzled_offset(r, ld_chunk, kD);
        cp_async_16(smem_u32(dk + dst), valid ? k_head + off : p.k_cache, valid);
        cp_async_16(smem_u32(dv + dst), valid ? v_head + off : p.v_cache, valid);
      }
    } else {
      CANOPY_NO_UNROLL
      for (int i = 0; i < C::kLaneRows; ++i) {
        const int r = ld_row0 + i * C::kLaneRowStep;
        const int key = key0 + r;
        const bool valid = key < kv_end;
        const int blk = valid ? __ldg(pages + key / bs) : 0;
        const size_t off = static_cast<size_t>(blk) * block_stride + static_cast<size_t>(key % bs) * kD;
        const int dst = swizzled_offset(r, ld_chunk, kD);
        cp_async_16(smem_u32(dk + dst), valid ? k_head + off : p.k_cache, valid);
        cp_async_16(smem_u32(dv + dst), valid ? v_head + off : p.v_cache, valid);
      }
    }
  };

  // Prologue: tiles 0 .. kS - 2 in flight (Q travels with tile 0).
  CANOPY_UNROLL
  for (int i = 0; i < kS - 1; ++i) {
    if (i < n_tiles) load_tile(i, i, tile_page(i));
    cp_async_commit();
  }
  int next_page = n_tiles > kS - 1 ? tile_page(kS - 1) : 0;

  // Rows of this thread: gid and gid + 8; their positions for the causal mask.
  const bool causal = unit.mask_from != kNoMask;
  int qpos[2];
  CANOPY_UNROLL
  for (int h = 0; h < 2; ++h) {
    const int r = gid + 8 * h;
    qpos[h] = kNoMask;
    if (causal && r < rows) qpos[h] = __ldg(p.q_positions + __ldg(p.q_tokens + unit.q_begin + r / group));
  }

  float acc_o[kDTiles][4];
  float row_m[2] = {neg_inf, neg_inf};
  float row_l[2] = {0.0f, 0.0f};
  CANOPY_UNROLL
  for (int dt = 0; dt < kDTiles; ++dt) {
    CANOPY_UNROLL
    for (int e = 0; e < 4; ++e) acc_o[dt][e] = 0.0f;
  }
  uint32_t qa[kKSteps][4];  // the unit's Q fragments, loaded once

  const uint32_t q_addr0 = smem_u32(s_q) + ldsm_lane_offset_a(lane, kD);
  const uint32_t k_addr_base = smem_u32(s_k) + ldsm_lane_offset_b(lane, kD);
  const uint32_t v_addr_base = smem_u32(s_v) + ldsm_lane_offset_a(lane, kD);

  for (int tile = 0; tile < n_tiles; ++tile) {
    const int stage = tile % kS;
    cp_async_wait<kS - 2>();  // tile `tile` has landed (and Q, with tile 0)
    __syncwarp();
    if (tile == 0) {
      CANOPY_UNROLL
      for (int ks = 0; ks < kKSteps; ++ks) ldmatrix_x4(qa[ks], q_addr0 ^ (ks << 5));
    }
    const int tile_key0 = kv_begin + tile * kKeys;
    const uint32_t k_addr0 = k_addr_base + stage * kKeys * kRowBytes;
    const uint32_t v_addr0 = v_addr_base + stage * kKeys * kRowBytes;
    // S = Q K^T over the tile's 16 keys: two n8 tiles.
    float s[2][4];
    CANOPY_UNROLL
    for (int n = 0; n < 2; ++n) {
      CANOPY_UNROLL
      for (int e = 0; e < 4; ++e) s[n][e] = 0.0f;
    }
    CANOPY_UNROLL
    for (int ks = 0; ks < kKSteps; ++ks) {
      uint32_t kb[4];
      ldmatrix_x4(kb, k_addr0 ^ (ks << 5));
      mma_bf16_16816(s[0], qa[ks], kb[0], kb[1]);
      mma_bf16_16816(s[1], qa[ks], kb[2], kb[3]);
    }
    const bool need_mask = tile_key0 + kKeys > kv_end || tile_key0 + kKeys > unit.mask_from;
    CANOPY_UNROLL
    for (int h = 0; h < 2; ++h) {
      float v[4];
      CANOPY_UNROLL
      for (int n = 0; n < 2; ++n) {
        CANOPY_UNROLL
        for (int e = 0; e < 2; ++e) {
          float x = s[n][2 * h + e] * p.scale_log2;
          if (need_mask) {
            const int key = tile_key0 + n * 8 + 2 * tid4 + e;
            if (key >= kv_end || unit.kv_pos0 + key > qpos[h]) x = neg_inf;
          }
          v[2 * n + e] = x;
        }
      }
      const float alpha = online_softmax_step(v, row_m[h], row_l[h]);
      CANOPY_UNROLL
      for (int n = 0; n < 2; ++n) {
        s[n][2 * h] = v[2 * n];
        s[n][2 * h + 1] = v[2 * n + 1];
      }
      CANOPY_UNROLL
      for (int dt = 0; dt < kDTiles; ++dt) {
        acc_o[dt][2 * h] *= alpha;
        acc_o[dt][2 * h + 1] *= alpha;
      }
    }
    // O += P V: P (16 rows x 16 keys) is one A fragment.
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
    __syncwarp();  // every lane is done with this stage before it is refilled
    if (tile + kS - 1 < n_tiles) load_tile(tile + kS - 1, (tile + kS - 1) % kS, next_page);
    cp_async_commit();
    if (tile + kS < n_tiles) next_page = tile_page(tile + kS);
  }
  cp_async_wait<0>();
  __syncwarp();  // the K/V stages become the staging area

  CANOPY_UNROLL
  for (int h = 0; h < 2; ++h) {
    float l = row_l[h];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const int r = gid + 8 * h;
    float* dst = staging + r * C::kStagingStride + 2 * tid4;
    CANOPY_UNROLL
    for (int dt = 0; dt < kDTiles; ++dt)
      *reinterpret_cast<float2*>(dst + dt * 8) = make_float2(acc_o[dt][2 * h] * inv, acc_o[dt][2 * h + 1] * inv);
    if (tid4 == 0) w_lse[r] = l > 0.0f ? row_m[h] + log2f(l) : neg_inf;
  }
  __syncwarp();
  unit_epilogue<kD>(p, unit, staging, w_lse, group, 0, 1, lane);
}

// =============================================================================================
template <int kD>
__global__ void __launch_bounds__(ForestConfig<kD>::kThreads, ForestConfig<kD>::kMinBlocks)
    forest_attention_kernel(const __grid_constant__ ForestAttentionParams p) {
  using C = ForestConfig<kD>;
  unsigned char* smem = dynamic_smem();
  // The XOR addressing of ldmatrix needs 256-byte aligned tiles (forest_layout.h).
  if ((smem_u32(smem) & 255u) != 0) __trap();
  const int first = p.cta_offsets[blockIdx.x];
  const int count = p.cta_offsets[blockIdx.x + 1] - first;
  if (count <= 0) return;
  const ForestUnit unit0 = p.units[first];
  if (!(unit0.flags & kUnitNarrow)) {
    wide_unit<kD>(p, unit0, smem);
    return;
  }
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  if (warp >= count) return;
  const ForestUnit unit = p.units[first + warp];
  narrow_unit<kD>(p, unit, smem + warp * C::kNarrowWarpBytes,
                  reinterpret_cast<float*>(smem + C::kNarrowLseOffset) + warp * C::kNarrowRows,
                  static_cast<int>(threadIdx.x) & 31);
}

// One warp per (token, query head).
template <int kD>
__global__ void __launch_bounds__(128) merge_partials_kernel(const __grid_constant__ MergePartialsParams p) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * 4 + threadIdx.x / 32;
  if (row >= static_cast<int64_t>(p.num_tokens) * p.num_q_heads) return;
  const int t = static_cast<int>(row / p.num_q_heads);
  const int head = static_cast<int>(row % p.num_q_heads);
  const int off0 = p.merge_offsets[t];
  const int n = p.merge_offsets[t + 1] - off0;
  merge_row<kD>(nullptr, 0.0f, p.merge_slots + off0, n, -1, p.partial_o, p.partial_lse, p.num_q_heads, head,
                p.out + static_cast<size_t>(row) * kD, p.lse_out != nullptr ? p.lse_out + row : nullptr,
                static_cast<int>(threadIdx.x & 31));
}

}  // namespace canopy::kernels
