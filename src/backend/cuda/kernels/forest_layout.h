// Tile geometry of the forest attention kernel, shared by the kernel and by host code (planner
// cost model, tests of the shared-memory layout). No CUDA types.
#pragma once

#if defined(__CUDACC__)
#define CANOPY_HD __host__ __device__
#define CANOPY_UNROLL _Pragma("unroll")
#define CANOPY_NO_UNROLL _Pragma("unroll 1")
#else  // host builds of the kernel source (tests' emulator)
#define CANOPY_HD
#define CANOPY_UNROLL
#define CANOPY_NO_UNROLL
#endif

namespace canopy::kernels {

template <int kD>
struct ForestConfig {
  static_assert(kD == 64 || kD == 128, "head_dim 64 and 128 are instantiated");
  static constexpr int kThreads = 128;
  static constexpr int kWarps = 4;
  static constexpr int kChunks = kD / 8;  // 16-byte chunks per row of D bf16
  // After the key loop the K/V buffers hold the f32 result rows (stride padded by 8 floats so
  // that fragment stores of 8 rows hit distinct banks).
  static constexpr int kStagingStride = kD + 8;

  // ---- wide units: one per CTA, up to 128 rows (4 warps x 2 m16 tiles), 64-key tiles
  static constexpr int kWideRows = 128;
  static constexpr int kTileKeys = 64;
  static constexpr int kStages = 2;  // one tile computing, one loading
  // Each thread copies kRowsPerThread consecutive rows (one chunk column) of a K and a V tile.
  static constexpr int kRowsPerThread = kTileKeys * kChunks / kThreads;
  static constexpr int kTileElems = kTileKeys * kD;
  static constexpr int kQBytes = kWideRows * kD * 2;
  static constexpr int kTileBytes = kTileElems * 2;
  static constexpr int kMainBytes = kQBytes + 2 * kStages * kTileBytes;  // Q, K stages, V stages
  static constexpr int kStagingBytes = kWideRows * kStagingStride * 4;
  static constexpr int kLseOffset = kMainBytes;                   // float [kWideRows]
  static constexpr int kQposOffset = kLseOffset + kWideRows * 4;  // int [kWideRows]
  static constexpr int kWideSmemBytes = kQposOffset + kWideRows * 4;

  // ---- narrow units: one per warp (four per CTA), up to 16 rows, 16-key tiles, own pipeline
  static constexpr int kNarrowRows = 16;
  static constexpr int kNarrowTileKeys = 16;
  static constexpr int kNarrowStages = 3;
  static constexpr int kNarrowTileBytes = kNarrowTileKeys * kD * 2;
  static constexpr int kNarrowQBytes = kNarrowRows * kD * 2;
  static constexpr int kNarrowWarpBytes = kNarrowQBytes + 2 * kNarrowStages * kNarrowTileBytes;
  static constexpr int kNarrowLseOffset = kWarps * kNarrowWarpBytes;  // float [kWarps][16]
  static constexpr int kNarrowSmemBytes = kNarrowLseOffset + kWarps * kNarrowRows * 4;
  static constexpr int kLaneRows = kNarrowTileKeys * kChunks / 32;  // rows of a tile each lane copies
  static constexpr int kLaneRowStep = 32 / kChunks;

  static constexpr int kSmemBytes = kWideSmemBytes > kNarrowSmemBytes ? kWideSmemBytes : kNarrowSmemBytes;
  // Register cap: 2 CTAs of 128 threads per SM at D = 128 (<= 255 registers), 3 at D = 64.
  static constexpr int kMinBlocks = kD == 64 ? 3 : 2;

  static_assert(kStagingBytes <= kMainBytes, "wide staging must fit in the wide buffers");
  static_assert(kNarrowRows * kStagingStride * 4 <= 2 * kNarrowStages * kNarrowTileBytes,
                "narrow staging must fit in the warp's K/V stages");
  static_assert(kRowsPerThread * kThreads == kTileKeys * kChunks, "tile copy covers the tile");
  static_assert(kLaneRows * 32 == kNarrowTileKeys * kChunks, "narrow tile copy covers the tile");
  static_assert(kNarrowWarpBytes % 1024 == 0 && kQBytes % 1024 == 0, "tiles stay 256-byte aligned");
};

// Shared-memory element offset of the 16-byte chunk `chunk` of row `row` in a tile of rows of
// `head_dim` bf16. The chunk index is XORed with row % 8, so that the 8 rows an ldmatrix reads at
// one logical chunk land in 8 distinct 16-byte bank groups (no bank conflicts).
CANOPY_HD constexpr int swizzled_offset(int row, int chunk, int head_dim) {
  return row * head_dim + ((chunk ^ (row & 7)) << 3);
}

// ldmatrix addressing. For an x4 ldmatrix over a 16 x 16 block (rows R..R+15, chunks 2c..2c+1),
// lane l supplies the address of one 8-element row of one of the four 8x8 matrices. Two orders:
//   "A" order (the Q operand, and V read with .trans): matrix m = l / 8 covers rows
//       R + 8 * (m % 2) .., chunk 2c + m / 2;
//   "B" order (K read without .trans): rows R + 8 * (m / 2) .., chunk 2c + m % 2.
// Because R is a multiple of 16 and a row is 2 * head_dim >= 128 bytes, the swizzled byte address
// is (tile_base + 2 * R * head_dim + lane_offset) ^ (c << 5): one XOR with a compile-time constant
// per step instead of one live register per step.
CANOPY_HD constexpr unsigned ldsm_lane_offset_a(int lane, int head_dim) {
  const int row = ((lane >> 3) & 1) * 8 + (lane & 7);
  const int chunk_bit = (lane >> 4) & 1;
  return static_cast<unsigned>(row * 2 * head_dim + ((chunk_bit ^ (lane & 7)) << 4));
}
CANOPY_HD constexpr unsigned ldsm_lane_offset_b(int lane, int head_dim) {
  const int row = ((lane >> 4) & 1) * 8 + (lane & 7);
  const int chunk_bit = (lane >> 3) & 1;
  return static_cast<unsigned>(row * 2 * head_dim + ((chunk_bit ^ (lane & 7)) << 4));
}

}  // namespace canopy::kernels
