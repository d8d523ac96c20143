// The fused forest attention kernel (portable sm_80+ path: mma.sync m16n8k16, ldmatrix, cp.async).
// Interface and unit semantics: forest_attention.h. Tile geometry: forest_layout.h.
//
// One CTA (4 warps) per unit, units in the host's order. Per unit:
//   1. gather the unit's query rows (tokens x GQA group) into shared memory, padded rows zeroed;
//   2. stream the segment's keys in tiles of 64 through a two-stage cp.async pipeline: each thread
//      copies 16-byte chunks of whole key rows, looking the block of every row up in kv_pages, so
//      any block_size works and segments need not be contiguous;
//   3. per tile: S = Q K^T on tensor cores, mask (segment end, causal), online softmax in base 2
//      (scale * log2 e folded into the scores), O += P V on tensor cores;
//        wide unit:   warp w owns rows [32w, 32w+32) and all 64 keys of the tile;
//        narrow unit: every warp owns the 16 rows and keys [16w, 16w+16) of the tile; the four
//                     partial softmax states are combined through shared memory at the end;
//   4. stage the normalized rows (f32) and their LSE in shared memory, then per query token either
//      write partials, write the output directly (a token with one slot), or take part in the
//      fused merge (ForestOutputMode::kFusedMerge; the protocol is described at the epilogue).
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

// Epilogue of one unit: the staged rows of query token j (group rows) go to partials or to out.
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
                                              const float* staging, const float* s_lse, int group, int warp,
                                              int lane) {
  using C = ForestConfig<kD>;
  const int head0 = unit.kv_head * group;
  for (int j = warp; j < unit.q_count; j += C::kWarps) {
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

template <int kD, bool kNarrow>
__device__ __forceinline__ void forest_unit(const ForestAttentionParams& p, const ForestUnit& unit,
                                            unsigned char* smem) {
  using C = ForestConfig<kD>;
  constexpr int kMTiles = kNarrow ? 1 : 2;     // m16 row tiles per warp
  // A warp scores a tile in sub-tiles of kWarpKeys keys (wide: both halves of the tile in turn;
  // narrow: its own quarter), which bounds the live score registers.
  constexpr int kWarpKeys = kNarrow ? 16 : 32;
  constexpr int kSubTiles = kNarrow ? 1 : C::kTileKeys / kWarpKeys;
  constexpr int kNTiles = kWarpKeys / 8;        // n8 tiles of S per warp
  constexpr int kKSteps = kD / 16;              // k16 steps of Q K^T
  constexpr int kDTiles = kD / 8;               // n8 tiles of O
  constexpr int kPSteps = kWarpKeys / 16;       // k16 steps of P V
  constexpr int kQRows = kNarrow ? C::kNarrowRows : C::kWideRows;
  constexpr int kRpt = C::kRowsPerThread;

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
  uint16_t* s_k = s_q + C::kWideRows * kD;               // [kStages][kTileKeys * kD]
  uint16_t* s_v = s_k + C::kStages * C::kTileElems;      // [kStages][kTileKeys * kD]
  float* staging = reinterpret_cast<float*>(smem);       // aliases the above after the key loop
  float* s_lse = reinterpret_cast<float*>(smem + C::kLseOffset);
  float* s_m = reinterpret_cast<float*>(smem + C::kStatOffset);
  float* s_l = s_m + C::kWarps * C::kNarrowRows;
  int* s_qpos = reinterpret_cast<int*>(smem + C::kQposOffset);

  // ---- 1. query rows -> s_q (rows >= `rows` are zero: their scores are 0 and they are never written)
  for (int idx = tid; idx < kQRows * C::kChunks; idx += C::kThreads) {
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

  // ---- 2. key/value tiles
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

  // Block of this thread's first row of `tile` (looked up one tile ahead so the copy never waits).
  auto first_page = [&](int tile) -> int {
    const int key = kv_begin + tile * C::kTileKeys + ld_row0;
    return key < kv_end ? __ldg(pages + key / bs) : 0;
  };
  // Fast path: when block_size is a multiple of kRpt, a thread's kRpt rows never cross a block
  // (unit key ranges start at multiples of 64 keys of a segment that starts at a block boundary).
  const bool rows_in_one_block = bs % kRpt == 0;
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

  // ---- per-thread rows and softmax state
  const int wrow0 = kNarrow ? 0 : warp * (kMTiles * 16);
  const int wkey0 = kNarrow ? warp * kWarpKeys : 0;  // first key of the warp's sub-tile 0
  // Query positions of the rows, for the causal mask (never read in a unit without one).
  const bool causal = unit.mask_from != kNoMask;
  for (int r = tid; r < kQRows; r += C::kThreads) {
    int pos = kNoMask;
    if (causal && r < rows) pos = __ldg(p.q_positions + __ldg(p.q_tokens + unit.q_begin + r / group));
    s_qpos[r] = pos;
  }
  const bool warp_active = wrow0 < rows;  // a wide unit's warps past the last row only copy
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

  // ---- 3. the key loop
  // ldmatrix addresses: per-lane bases, stepped by XOR with constants (forest_layout.h).
  constexpr uint32_t kRowBytes = 2 * kD;
  const uint32_t q_addr0 = smem_u32(s_q) + wrow0 * kRowBytes + ldsm_lane_offset_a(lane, kD);
  const uint32_t k_lane = wkey0 * kRowBytes + ldsm_lane_offset_b(lane, kD);
  const uint32_t v_lane = wkey0 * kRowBytes + ldsm_lane_offset_a(lane, kD);
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
      const int wkey = wkey0 + sub * kWarpKeys;  // first key of this sub-tile, within the tile
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
          ldmatrix_x4(kb, (k_addr0 + (sub * kWarpKeys + nj * 16) * kRowBytes) ^ (ks << 5));
CANOPY_UNROLL
          for (int mi = 0; mi < kMTiles; ++mi) {
            mma_bf16_16816(s[mi][2 * nj], qa[mi], kb[0], kb[1]);
            mma_bf16_16816(s[mi][2 * nj + 1], qa[mi], kb[2], kb[3]);
          }
        }
      }
      // mask, online softmax (base 2)
CANOPY_UNROLL
      for (int mi = 0; mi < kMTiles; ++mi) {
CANOPY_UNROLL
        for (int h = 0; h < 2; ++h) {
          float mx = neg_inf;
CANOPY_UNROLL
          for (int n = 0; n < kNTiles; ++n) {
CANOPY_UNROLL
            for (int e = 0; e < 2; ++e) {
              float v = s[mi][n][2 * h + e] * p.scale_log2;
              if (need_mask) {
                const int key = tile_key0 + wkey + n * 8 + 2 * tid4 + e;
                if (key >= kv_end || unit.kv_pos0 + key > s_qpos[wrow0 + mi * 16 + gid + 8 * h]) v = neg_inf;
              }
              s[mi][n][2 * h + e] = v;
              mx = fmaxf(mx, v);
            }
          }
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float m_new = fmaxf(row_m[mi][h], mx);
          const float m_use = m_new == neg_inf ? 0.0f : m_new;  // a row with no key yet: exp2(-inf) = 0
          const float alpha = exp2f(row_m[mi][h] - m_use);
          row_m[mi][h] = m_new;
          float sum = 0.0f;
CANOPY_UNROLL
          for (int n = 0; n < kNTiles; ++n) {
CANOPY_UNROLL
            for (int e = 0; e < 2; ++e) {
              const float pv = exp2f(s[mi][n][2 * h + e] - m_use);
              s[mi][n][2 * h + e] = pv;
              sum += pv;
            }
          }
          row_l[mi][h] = row_l[mi][h] * alpha + sum;  // per-thread partial sum; reduced at the end
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
          ldmatrix_x4_trans(vb, (v_addr0 + (sub * kWarpKeys + kk * 16) * kRowBytes) ^ (dj << 5));
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

  // ---- 4. normalized rows and LSE -> staging
  if constexpr (!kNarrow) {
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
          *reinterpret_cast<float2*>(dst + dt * 8) =
              make_float2(acc_o[mi][dt][2 * h] * inv, acc_o[mi][dt][2 * h + 1] * inv);
        if (tid4 == 0) s_lse[r] = l > 0.0f ? row_m[mi][h] + log2f(l) : neg_inf;
      }
    }
  } else {
    // Each warp saw a quarter of the keys: publish its unnormalized state, then combine.
CANOPY_UNROLL
    for (int h = 0; h < 2; ++h) {
      float l = row_l[0][h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int r = gid + 8 * h;
      float* dst = staging + (C::kNarrowRows + warp * C::kNarrowRows + r) * C::kStagingStride + 2 * tid4;
CANOPY_UNROLL
      for (int dt = 0; dt < kDTiles; ++dt)
        *reinterpret_cast<float2*>(dst + dt * 8) = make_float2(acc_o[0][dt][2 * h], acc_o[0][dt][2 * h + 1]);
      if (tid4 == 0) {
        s_m[warp * C::kNarrowRows + r] = row_m[0][h];
        s_l[warp * C::kNarrowRows + r] = l;
      }
    }
    __syncthreads();
    for (int idx = tid; idx < C::kNarrowRows * kD; idx += C::kThreads) {
      const int r = idx / kD;
      const int c = idx % kD;
      float m = neg_inf;
CANOPY_UNROLL
      for (int w = 0; w < C::kWarps; ++w) m = fmaxf(m, s_m[w * C::kNarrowRows + r]);
      float num = 0.0f;
      float den = 0.0f;
      if (m != neg_inf) {
CANOPY_UNROLL
        for (int w = 0; w < C::kWarps; ++w) {
          const float wm = s_m[w * C::kNarrowRows + r];
          if (wm == neg_inf) continue;
          const float scale = exp2f(wm - m);
          num += scale * staging[(C::kNarrowRows + w * C::kNarrowRows + r) * C::kStagingStride + c];
          den += scale * s_l[w * C::kNarrowRows + r];
        }
      }
      staging[r * C::kStagingStride + c] = den > 0.0f ? num / den : 0.0f;
      if (c == 0) s_lse[r] = den > 0.0f ? m + log2f(den) : neg_inf;
    }
  }
  __syncthreads();

  // ---- 5. partials / output
  unit_epilogue<kD>(p, unit, staging, s_lse, group, warp, lane);
}

template <int kD>
__global__ void __launch_bounds__(ForestConfig<kD>::kThreads, ForestConfig<kD>::kMinBlocks)
    forest_attention_kernel(const __grid_constant__ ForestAttentionParams p) {
  unsigned char* smem = dynamic_smem();
  // The XOR addressing of ldmatrix needs 256-byte aligned tiles (forest_layout.h).
  if ((smem_u32(smem) & 255u) != 0) __trap();
  const ForestUnit unit = p.units[blockIdx.x];
  if (unit.flags & kUnitNarrow) {
    forest_unit<kD, true>(p, unit, smem);
  } else {
    forest_unit<kD, false>(p, unit, smem);
  }
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
