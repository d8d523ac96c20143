// Geometry of the v2 (sm_90a) forest attention kernel, shared by the kernel, the host launch plan
// and the tests of its shared-memory layout. No CUDA types.
//
// One persistent CTA per SM, 384 threads = 3 warpgroups. Warpgroups 0 and 1 compute and run with
// 232 registers per thread, warpgroup 2 only feeds them and runs with 40 (setmaxnreg; 384 threads
// alone would cap every thread at 168, too few for 64 accumulators + 32 Q registers of a leaf).
// A CTA is in one of two modes at a time:
//
//   wide mode (shared nodes, tensor-core bound): warpgroups 0 and 1 are consumers of 64 rows each
//     (wgmma: S = Q K^T from shared memory, O += P V with P from registers), warpgroup 2 the
//     producer (cp.async of Q rows and K/V tiles into shared memory, signalled through mbarriers).
//     Up to 128 rows per unit; 128-key tiles; kStages stages.
//   narrow mode (unique leaves, bandwidth bound): warps 0-7 each stream leaves (up to 16 rows,
//     mma.sync m16n8k16 as in v1) through their own kLeafStages-deep cp.async ring of 16-key
//     tiles; the ring runs across consecutive leaves, so a warp never drains between two leaves.
//
// Shared-memory tiles of the wide mode use the 128-byte swizzle of wgmma (PTX ISA "Shared Memory
// Matrix Layout"): a tile of R rows x D bf16 is stored as D/64 column blocks ("regions") of
// R rows x 128 bytes; within a region the 16-byte chunk c (0..7) of row r sits at chunk position
// c ^ (r % 8); regions start on 1024-byte boundaries. The same bytes serve as
//   - a K-major operand (Q as A, K as B of S = Q K^T): descriptor SBO = 1024 (8 rows x 128 B),
//     LBO unused; the k-step of 16 columns advances the start address by 32 bytes inside a row,
//     the next region after 4 k-steps;
//   - an N-major operand (V as B of O = P V, "transposed"): rows are keys (the K dimension of this
//     product), columns D (its N dimension): SBO = 1024 (8 keys), LBO = region size (the next 64
//     columns of N); the k-step of 16 keys advances the start address by 16 x 128 bytes.
// Accumulators of wgmma m64nNk16 (f32): warp w of the warpgroup holds rows 16w..16w+15; lane
// (gid = lane / 4, t = lane % 4) holds d[4j + e] = D[16w + gid + 8 (e / 2)][8j + 2t + e % 2], the
// mma.m16n8k16 C layout repeated over N / 8 column blocks. The register A operand (P) is the
// mma.m16n8k16 A fragment of the warp's 16 rows.
#pragma once

#include "forest_layout.h"

namespace canopy::kernels {

template <int kD>
struct ForestConfigSm90 {
  static_assert(kD == 64 || kD == 128, "head_dim 64 and 128 are instantiated");
  static constexpr int kThreads = 384;
  static constexpr int kWarps = kThreads / 32;
  static constexpr int kConsumerThreads = 256;  // warps 0-7: two warpgroups
  // setmaxnreg: 2 x 128 x compute + 128 x feeder <= 168 x 384. 232/40 (v3; was 224/56): the v3
  // consumer needs the extra registers (224 spilled in its tile loop), and so did v2 at D = 128
  // (64 bytes of spills at 224); the producer's copy loop fits 40 (ptxas -v: no spills).
  static constexpr int kComputeRegs = 232;
  static constexpr int kFeederRegs = 40;
  static constexpr int kChunks = kD / 8;        // 16-byte chunks per row
  static constexpr int kRegions = kD / 64;      // 128-byte column blocks per row

  // ---- wide mode
  static constexpr int kWideRows = 128;         // 2 consumer warpgroups x 64 rows
  static constexpr int kWgRows = 64;
  // 128-key tiles (v3.5; 64 before): S = Q K^T is one m64n128k16 wgmma per k16 step and every
  // per-tile cost (barrier waits, ping-pong turns, descriptors, the mask test, the loop) is paid
  // once per 128 keys. The producer looks ahead kStages - 2 tiles (two are in use by the
  // consumers), as many keys as 4 stages of 64 did.
  static constexpr int kTileKeys = 128;
  // D = 128: 3 stages of 64 KB and one Q buffer of 32 KB (224 KB); D = 64: 4 stages of 32 KB and two.
  static constexpr int kStages = kD == 128 ? 3 : 4;
  static constexpr int kQBuffers = kD == 128 ? 1 : 2;        // units alternate between them
  static constexpr int kQRegionBytes = kWgRows * 128;        // a region of a warpgroup's Q (64 rows)
  static constexpr int kTileRegionBytes = kTileKeys * 128;   // a region of a K or V tile
  static constexpr int kQWgBytes = kWgRows * kD * 2;         // one warpgroup's Q rows
  static constexpr int kQBufBytes = 2 * kQWgBytes;           // a unit's Q (both warpgroups)
  static constexpr int kTileBytes = kTileKeys * kD * 2;      // a K (or V) tile
  static constexpr int kStageBytes = 2 * kTileBytes;         // K then V
  static constexpr int kQOffset = 0;                         // kQBuffers Q buffers
  static constexpr int kStageOffset = kQBuffers * kQBufBytes;
  static constexpr int kWideBytes = kStageOffset + kStages * kStageBytes;
  // Producer copy geometry: the 128 threads of warpgroup 2 (one warp per scheduler: the address
  // arithmetic of 2 x kTileKeys x kChunks 16-byte copies per tile is spread over the SM) copy a
  // tile, each kRowsPerLane consecutive rows of one chunk column, with one block lookup when the
  // block size is a multiple of kRowsPerLane.
  static constexpr int kProducerThreads = 128;
  static constexpr int kRowsPerLane = kTileKeys * kChunks / kProducerThreads;
  static constexpr int kQChunksPerLane = kWideRows * kChunks / kProducerThreads;

  // ---- narrow mode
  static constexpr int kLeafRows = 16;
  static constexpr int kLeafTileKeys = 16;
  static constexpr int kLeafStages = kD == 128 ? 3 : 6;
  static constexpr int kLeafQBytes = kLeafRows * kD * 2;
  static constexpr int kLeafTileBytes = kLeafTileKeys * kD * 2;
  static constexpr int kLeafWarpBytes = kLeafQBytes + 2 * kLeafStages * kLeafTileBytes;
  static constexpr int kLeafWarps = 8;
  static constexpr int kNarrowBytes = kLeafWarps * kLeafWarpBytes;
  static constexpr int kLaneRows = kLeafTileKeys * kChunks / 32;  // rows of a leaf tile each lane copies
  static constexpr int kLaneRowStep = 32 / kChunks;

  // ---- control block (after the tiles): mbarriers, the unit ring, flags
  static constexpr int kTileAreaBytes = kWideBytes > kNarrowBytes ? kWideBytes : kNarrowBytes;
  static constexpr int kCtrlOffset = kTileAreaBytes;
  static constexpr int kBarFull = 0;                   // [kStages] mbarriers
  static constexpr int kBarEmpty = kBarFull + 8 * kStages;
  static constexpr int kBarQFull = kBarEmpty + 8 * kStages;   // [2]
  static constexpr int kBarQEmpty = kBarQFull + 16;           // [2]
  static constexpr int kBarUnitFull = kBarQEmpty + 16;        // [2]
  static constexpr int kBarUnitEmpty = kBarUnitFull + 16;     // [2]
  static constexpr int kRing = kBarUnitEmpty + 16;            // int [2]: unit index, -1 = no more
  static constexpr int kProducerUnit = kRing + 8;             // int [2]: thread 0's unit for the producer warps
  static constexpr int kLastFlags = kProducerUnit + 8;        // uint8 [128]: tokens merged by this unit
  static constexpr int kCtrlBytes = kLastFlags + 128;
  static constexpr int kAlignSlack = 1024;  // the tiles need a 1024-byte aligned base
  static constexpr int kSmemBytes = kCtrlOffset + kCtrlBytes + kAlignSlack;

  // Arrivals per phase.
  static constexpr int kConsumerWarps = 8;
  static constexpr int kUnitReaderWarps = kConsumerWarps;  // consumer warps read ring entries

  static_assert(kSmemBytes <= 227 * 1024, "one CTA per SM must fit the 227 KB limit");
  static_assert(kRowsPerLane * kProducerThreads == kTileKeys * kChunks, "tile copy covers the tile");
  static_assert(kQChunksPerLane * kProducerThreads == kWideRows * kChunks, "Q copy covers the rows");
  static_assert(kLaneRows * 32 == kLeafTileKeys * kChunks, "leaf tile copy covers the tile");
  static_assert(kStageOffset % 1024 == 0 && kStageBytes % 1024 == 0 && kQWgBytes % 1024 == 0,
                "wgmma tiles start on 1024-byte boundaries");
  static_assert(kLeafWarpBytes % 1024 == 0, "leaf tiles stay 256-byte aligned (ldmatrix XOR addressing)");
  static_assert(kLeafWarps * 32 <= kConsumerThreads, "leaf warps are the computing warpgroups' warps");
  // setmaxnreg moves registers within the CTA's launch allocation (168 x 384 = 64512 with
  // __launch_bounds__(384, 1)), not the whole register file: more would block setmaxnreg.inc.
  static_assert(2 * 128 * kComputeRegs + 128 * kFeederRegs <= 168 * kThreads, "registers of the launch");
};

// Byte offset of the 16-byte chunk `chunk` of row `row` in a 128-byte-swizzled tile of `rows`
// rows (forest_layout_sm90.h header comment): region chunk / 8, row line, chunk position XOR row.
CANOPY_HD constexpr int sw128_offset(int row, int chunk, int rows) {
  return (chunk >> 3) * rows * 128 + row * 128 + (((chunk & 7) ^ (row & 7)) << 4);
}

// A wgmma shared-memory descriptor (sm90_primitives.h: start address >> 4 in bits 0-13) moved on
// by `bytes` (a multiple of 16): only the start-address field changes, and it cannot carry into
// the next field while the address stays below 256 KB (all of shared memory). One 32-bit add, so a
// tile's descriptors are a base descriptor per stage plus constants, not rebuilt from addresses
// (v3.2: the consumer spent ~100 of its ~400 instructions per tile building descriptors).
CANOPY_HD constexpr uint64_t wgmma_desc_advance(uint64_t desc, uint32_t bytes) {
  return (desc & 0xFFFFFFFF00000000ull) | static_cast<uint32_t>(static_cast<uint32_t>(desc) + (bytes >> 4));
}

}  // namespace canopy::kernels
