// Decoding of GGML storage types to f32, written from the GGML block definitions.
//
// Every decoder reproduces the reference arithmetic exactly: f16 scales are widened to f32, and
// products and sums are rounded to f32 one operation at a time in the reference's order (the io
// layer is compiled with -ffp-contract=off so that no fused multiply-add changes a result).
// The tests compare against the gguf Python package bit for bit.
#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "io/tensor_source.h"

#ifdef __clang__
#pragma clang fp contract(off)
#endif

namespace canopy {
namespace {

constexpr int kQK = 32;   // elements per block of the 32-element formats
constexpr int kQKK = 256;  // elements per super-block of the K formats

// f16 bits to f32, exactly as core's f16_to_f32 (NaN payloads kept), but inline and branch-free
// so that the F16 loop vectorizes. No arithmetic on subnormal floats is involved, so the result
// does not depend on the FTZ/DAZ modes.
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7fffu;  // exponent and mantissa
  const uint32_t normal = (em << 13) + (112u << 23);  // rebias the exponent from 15 to 127
  const uint32_t special = (em << 13) | 0x7f800000u;  // inf or NaN
  const float subnormal = static_cast<float>(static_cast<int32_t>(em)) * 0x1p-24f;  // exact below 0x400
  const uint32_t subnormal_bits = std::bit_cast<uint32_t>(subnormal);
  // Selected with masks rather than ?: so that GCC if-converts the loop and vectorizes it (10x).
  const uint32_t is_special = 0u - static_cast<uint32_t>(em >= 0x7c00u);
  const uint32_t is_normal = 0u - static_cast<uint32_t>(em >= 0x0400u);
  const uint32_t bits =
      (special & is_special) | (normal & is_normal & ~is_special) | (subnormal_bits & ~is_normal);
  return std::bit_cast<float>(bits | sign);
}

// Loads of little-endian fields at any alignment (memcpy keeps unaligned access defined).
inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Decoders take restrict pointers (source bytes and f32 output never overlap), which lets the
// compiler vectorize without runtime alias checks.
using BlockDecoder = void (*)(const uint8_t* src, float* dst, int64_t blocks);

void decode_f32(const uint8_t* __restrict src, float* __restrict dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * 4);
}

void decode_f16(const uint8_t* __restrict src, float* __restrict dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = half_to_float(h);
  }
}

void decode_bf16(const uint8_t* __restrict src, float* __restrict dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = bf16_to_f32(h);
  }
}

// Q4_0 block (18 bytes): f16 d, 16 bytes of nibbles. Element j is the low nibble of byte j,
// element j + 16 the high nibble; value = d * (q - 8).
void decode_q4_0(const uint8_t* __restrict src, float* __restrict dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 18, dst += kQK) {
    const float d = load_f16(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < 16; ++j) dst[j] = d * static_cast<float>((qs[j] & 0x0f) - 8);
    for (int j = 0; j < 16; ++j) dst[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
  }
}

// Q4_1 block (20 bytes): f16 d, f16 m, 16 bytes of nibbles; value = d * q + m.
void decode_q4_1(const uint8_t* __restrict src, float* __restrict dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 20, dst += kQK) {
    const float d = load_f16(src);
    const float m = load_f16(src + 2);
    const uint8_t* qs = src + 4;
    for (int j = 0; j < 16; ++j) dst[j] = d * static_cast<float>(qs[j] & 0x0f) + m;
    for (int j = 0; j < 16; ++j) dst[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
  }
}

// Q5_0 block (22 bytes): f16 d, u32 qh (bit i is the fifth bit of element i), 16 bytes of
// nibbles as in Q4_0; value = d * (q - 16).
void decode_q5_0(const uint8_t* __restrict src, float* __restrict dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 22, dst += kQK) {
    const float d = load_f16(src);
    const uint32_t qh = load_u32(src + 2);
    const uint8_t* qs = src + 6;
    for (int j = 0; j < 16; ++j) {
      const int lo = static_cast<int>((qs[j] & 0x0f) | (((qh >> j) & 1u) << 4));
      const int hi = static_cast<int>((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
      dst[j] = d * static_cast<float>(lo - 16);
      dst[j + 16] = d * static_cast<float>(hi - 16);
    }
  }
}

// Q5_1 block (24 bytes): f16 d, f16 m, u32 qh, 16 bytes of nibbles; value = d * q + m.
void decode_q5_1(const uint8_t* __restrict src, float* __restrict dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 24, dst += kQK) {
    const float d = load_f16(src);
    const float m = load_f16(src + 2);
    const uint32_t qh = load_u32(src + 4);
    const uint8_t* qs = src + 8;
    for (int j = 0; j < 16; ++j) {
      const uint32_t lo = (qs[j] & 0x0fu) | (((qh >> j) & 1u) << 4);
      const uint32_t hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4);
      dst[j] = d * static_cast<float>(lo) + m;
      dst[j + 16] = d * static_cast<float>(hi) + m;
    }
  }
}

// Q8_0 block (34 bytes): f16 d, 32 signed bytes; value = q * d.
void decode_q8_0(const uint8_t* __restrict src, float* __restrict dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 34, dst += kQK) {
    const float d = load_f16(src);
    const auto* qs = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(qs[j]) * d;
  }
}

// Q2_K super-block (84 bytes): 16 scale bytes (low nibble scale, high nibble min, one per 16
// elements), 64 bytes of 2-bit values, f16 d, f16 dmin. Element h*128 + s*32 + l (h < 2, s < 4,
// l < 32) is bits 2s..2s+1 of qs[h*32 + l]; value = (d * sc) * q - (dmin * m).
void decode_q2_k(const uint8_t* __restrict src, float* __restrict dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 84, dst += kQKK) {
    const uint8_t* scales = src;
    const uint8_t* qs = src + 16;
    const float d = load_f16(src + 80);
    const float dmin = load_f16(src + 82);
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        for (int half = 0; half < 2; ++half) {  // 16 elements share a scale
          const int first = h * 128 + s * 32 + half * 16;
          const uint8_t sc = scales[first / 16];
          const float dl = d * static_cast<float>(sc & 0x0f);
          const float ml = dmin * static_cast<float>(sc >> 4);
          const uint8_t* q = qs + h * 32 + half * 16;
          for (int l = 0; l < 16; ++l)
            dst[first + l] = dl * static_cast<float>((q[l] >> (2 * s)) & 3) - ml;
        }
      }
    }
  }
}

// Q3_K super-block (110 bytes): 32 bytes hmask, 64 bytes of 2-bit values, 12 bytes of packed
// 6-bit scales, f16 d. Low bits as in Q2_K; the third bit of element i is bit i/32 of
// hmask[i % 32], and a set bit means no offset: q = low - (bit ? 0 : 4). Scale k (k < 16) is the
// nibble k of bytes 0..7 (low nibbles first) plus two high bits from bytes 8..11; it is stored
// biased by 32. value = (d * (scale - 32)) * q.
void decode_q3_k(const uint8_t* __restrict src, float* __restrict dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 110, dst += kQKK) {
    const uint8_t* hmask = src;
    const uint8_t* qs = src + 32;
    const uint8_t* packed = src + 96;
    const float d = load_f16(src + 108);
    float dl[16];
    for (int k = 0; k < 16; ++k) {
      const int low = (packed[k % 8] >> (4 * (k / 8))) & 0x0f;
      const int high = (packed[8 + k % 4] >> (2 * (k / 4))) & 0x03;
      const int scale = static_cast<int8_t>(static_cast<uint8_t>(low | (high << 4))) - 32;
      dl[k] = d * static_cast<float>(scale);
    }
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        const int bit = h * 4 + s;  // element i's third bit is bit i / 32 of hmask[i % 32]
        for (int half = 0; half < 2; ++half) {
          const int first = h * 128 + s * 32 + half * 16;
          const float scale = dl[first / 16];
          const uint8_t* q = qs + h * 32 + half * 16;
          const uint8_t* m = hmask + half * 16;
          for (int l = 0; l < 16; ++l) {
            const int low = (q[l] >> (2 * s)) & 3;
            const int offset = ((m[l] >> bit) & 1) != 0 ? 0 : 4;
            dst[first + l] = scale * static_cast<float>(low - offset);
          }
        }
      }
    }
  }
}

// The 6-bit scales and mins of Q4_K and Q5_K, eight of each packed into 12 bytes: sub-blocks
// 0..3 use the low six bits of bytes 0..3 (scales) and 4..7 (mins); sub-blocks 4..7 take their
// low four bits from bytes 8..11 and their top two bits from the top of bytes 0..7.
inline void unpack_k_scales(const uint8_t* p, uint8_t sc[8], uint8_t mn[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = p[j] & 0x3f;
    mn[j] = p[j + 4] & 0x3f;
    sc[j + 4] = static_cast<uint8_t>((p[j + 8] & 0x0f) | ((p[j] >> 2) & 0x30));
    mn[j + 4] = static_cast<uint8_t>((p[j + 8] >> 4) | ((p[j + 4] >> 2) & 0x30));
  }
}

// Q4_K super-block (144 bytes): f16 d, f16 dmin, 12 bytes of scales, 128 bytes of nibbles.
// Element c*64 + s*32 + l (c < 4, s < 2, l < 32) is nibble s of qs[c*32 + l] and belongs to
// sub-block c*2 + s; value = (d * sc) * q - (dmin * m).
void decode_q4_k(const uint8_t* __restrict src, float* __restrict dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 144, dst += kQKK) {
    const float d = load_f16(src);
    const float dmin = load_f16(src + 2);
    uint8_t sc[8], mn[8];
    unpack_k_scales(src + 4, sc, mn);
    const uint8_t* qs = src + 16;
    for (int j = 0; j < 8; ++j) {
      const float dl = d * static_cast<float>(sc[j]);
      const float ml = dmin * static_cast<float>(mn[j]);
      const int shift = 4 * (j % 2);
      const uint8_t* q = qs + 32 * (j / 2);
      float* out = dst + 32 * j;
      for (int l = 0; l < 32; ++l) out[l] = dl * static_cast<float>((q[l] >> shift) & 0x0f) - ml;
    }
  }
}

// Q5_K super-block (176 bytes): as Q4_K with 32 bytes qh before the nibbles; the fifth bit of
// element i is bit i/32 of qh[i % 32].
void decode_q5_k(const uint8_t* __restrict src, float* __restrict dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 176, dst += kQKK) {
    const float d = load_f16(src);
    const float dmin = load_f16(src + 2);
    uint8_t sc[8], mn[8];
    unpack_k_scales(src + 4, sc, mn);
    const uint8_t* qh = src + 16;
    const uint8_t* qs = src + 48;
    for (int j = 0; j < 8; ++j) {
      const float dl = d * static_cast<float>(sc[j]);
      const float ml = dmin * static_cast<float>(mn[j]);
      const int shift = 4 * (j % 2);
      const uint8_t* q = qs + 32 * (j / 2);
      float* out = dst + 32 * j;
      for (int l = 0; l < 32; ++l) {
        const int v = ((q[l] >> shift) & 0x0f) | (((qh[l] >> j) & 1) << 4);
        out[l] = dl * static_cast<float>(v) - ml;
      }
    }
  }
}

// Q6_K super-block (210 bytes): 128 bytes ql (low nibbles), 64 bytes qh (2 high bits), 16 signed
// scales (one per 16 elements), f16 d. In each half c (128 elements), element c*128 + s*64 + l
// (s < 2, l < 64) has low nibble s of ql[c*64 + l]; element c*128 + t*32 + l (t < 4, l < 32) has
// high bits 2t..2t+1 of qh[c*32 + l]; value = (d * scale) * (q - 32).
void decode_q6_k(const uint8_t* __restrict src, float* __restrict dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 210, dst += kQKK) {
    const uint8_t* ql = src;
    const uint8_t* qh = src + 128;
    const auto* scales = reinterpret_cast<const int8_t*>(src + 192);
    const float d = load_f16(src + 208);
    for (int c = 0; c < 2; ++c) {
      for (int t = 0; t < 4; ++t) {  // quarter t of half c: elements c*128 + t*32 + l
        for (int half = 0; half < 2; ++half) {
          const int first = c * 128 + t * 32 + half * 16;
          const float dl = d * static_cast<float>(scales[first / 16]);
          const uint8_t* low = ql + c * 64 + (t % 2) * 32 + half * 16;
          const uint8_t* high = qh + c * 32 + half * 16;
          const int low_shift = 4 * (t / 2), high_shift = 2 * t;
          for (int l = 0; l < 16; ++l) {
            const int q = (((low[l] >> low_shift) & 0x0f) | (((high[l] >> high_shift) & 0x03) << 4)) - 32;
            dst[first + l] = dl * static_cast<float>(q);
          }
        }
      }
    }
  }
}

// The decoder of a type, working in whole blocks (plain types: blocks of one element).
BlockDecoder decoder_for(TensorType t) {
  switch (t) {
    case TensorType::F32: return decode_f32;
    case TensorType::F16: return decode_f16;
    case TensorType::BF16: return decode_bf16;
    case TensorType::Q4_0: return decode_q4_0;
    case TensorType::Q4_1: return decode_q4_1;
    case TensorType::Q5_0: return decode_q5_0;
    case TensorType::Q5_1: return decode_q5_1;
    case TensorType::Q8_0: return decode_q8_0;
    case TensorType::Q2_K: return decode_q2_k;
    case TensorType::Q3_K: return decode_q3_k;
    case TensorType::Q4_K: return decode_q4_k;
    case TensorType::Q5_K: return decode_q5_k;
    case TensorType::Q6_K: return decode_q6_k;
  }
  return nullptr;
}

}  // namespace

void dequantize_row(TensorType t, const uint8_t* src, float* dst, int64_t n) {
  const BlockDecoder decode = decoder_for(t);
  CANOPY_CHECK(decode != nullptr, "cannot dequantize tensor type {}: canopy does not support it",
               tensor_type_label(t));
  const int64_t block = tensor_type_block_elems(t);
  CANOPY_CHECK(n >= 0 && n % block == 0,
               "cannot dequantize {} elements of {}: not a whole number of {}-element blocks", n,
               tensor_type_name(t), block);
  decode(src, dst, n / block);
}

namespace {

// One piece of work: `blocks` whole blocks of one tensor, decoded from src to dst.
struct Chunk {
  BlockDecoder decode;
  const uint8_t* src;
  float* dst;
  int64_t blocks;
  int64_t elems;  // blocks times the type's block size
};

// Checks `info` against its type and size and appends its chunks of about `chunk_elems` elements.
void plan_chunks(const TensorInfo& info, float* dst, int64_t chunk_elems, std::vector<Chunk>& out) {
  const BlockDecoder decode = decoder_for(info.type);
  CANOPY_CHECK(decode != nullptr,
               "tensor '{}' in '{}' has type {}, which canopy cannot dequantize (supported: F32, "
               "F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)",
               info.name, info.file, tensor_type_label(info.type));
  const int64_t numel = info.numel();
  const uint64_t expected = tensor_type_bytes(info.type, numel);
  CANOPY_CHECK(info.bytes.size() == expected,
               "tensor '{}' in '{}' holds {} bytes but its shape and type {} need {}", info.name,
               info.file, info.bytes.size(), tensor_type_name(info.type), expected);
  const int64_t block_elems = tensor_type_block_elems(info.type);
  const int64_t block_bytes = tensor_type_block_bytes(info.type);
  const int64_t blocks = numel / block_elems;
  const int64_t chunk_blocks = std::max<int64_t>(1, chunk_elems / block_elems);
  for (int64_t first = 0; first < blocks; first += chunk_blocks) {
    const int64_t count = std::min(chunk_blocks, blocks - first);
    out.push_back({decode, info.bytes.data() + first * block_bytes, dst + first * block_elems, count,
                   count * block_elems});
  }
}

void run_chunks(const std::vector<Chunk>& chunks, bool parallel) {
  const auto n = static_cast<int64_t>(chunks.size());
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int64_t i = 0; i < n; ++i) chunks[i].decode(chunks[i].src, chunks[i].dst, chunks[i].blocks);
}

// Chunks of 256K elements: about a quarter of a millisecond of work each.
constexpr int64_t kChunkElems = int64_t{1} << 18;
// A parallel region ends in a barrier where OpenMP threads spin; on a busy machine each region
// costs about a scheduling delay (measured: SmolLM2's 272 tensors decoded one region each took
// 3.5 s instead of 0.26 s on 2 loaded cores). dequantize_to_f32 therefore splits only tensors of
// at least 16 chunks, and dequantize_many uses one region for all its tensors.
constexpr int64_t kMinChunksToSplit = 16;

}  // namespace

void dequantize_to_f32(const TensorInfo& info, float* dst) {
  std::vector<Chunk> chunks;
  plan_chunks(info, dst, kChunkElems, chunks);
  run_chunks(chunks, static_cast<int64_t>(chunks.size()) >= kMinChunksToSplit);
}

void dequantize_many(std::span<const DequantizeJob> jobs) {
  std::vector<Chunk> chunks;
  for (const DequantizeJob& job : jobs) {
    CANOPY_ASSERT(job.info != nullptr);
    plan_chunks(*job.info, job.dst, kChunkElems, chunks);
  }
  // Largest first, so that no big chunk starts last while the other threads idle.
  std::stable_sort(chunks.begin(), chunks.end(), [](const Chunk& a, const Chunk& b) { return a.elems > b.elems; });
  run_chunks(chunks, chunks.size() > 1);
}

}  // namespace canopy
