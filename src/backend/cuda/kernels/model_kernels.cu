// Host launchers of the model kernels (model_kernels.h). Grid shapes live next to each kernel in
// its .cuh, so that the host emulator (tests/gpu) launches them the same way.
#include "embed.cuh"
#include "kv_cache.cuh"
#include "model_kernels.h"
#include "norm.cuh"
#include "random_fill.cuh"
#include "rope.cuh"
#include "swiglu.cuh"

namespace canopy::kernels {

namespace {

constexpr int64_t kMaxGrid = 0x7fffffff;

bool grid_ok(int64_t grid) { return grid >= 1 && grid <= kMaxGrid; }

}  // namespace

cudaError_t launch_embed(const EmbedParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  if (p.hidden <= 0 || p.hidden % 8 != 0 || p.num_tokens < 0) return cudaErrorInvalidValue;
  const int64_t grid = p.num_tokens * embed_chunks(p);
  if (!grid_ok(grid)) return cudaErrorInvalidValue;
  embed_kernel<<<static_cast<unsigned>(grid), kEmbedThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_rms_norm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.rows < 0 || p.hidden <= 0 || p.hidden % 8 != 0) return cudaErrorInvalidValue;
  if (p.row_map != nullptr && p.write_residual != 0) return cudaErrorInvalidValue;
  rms_norm_kernel<<<static_cast<unsigned>(p.rows), kNormThreads, kNormSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_rope(const RopeParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  if (p.num_tokens < 0 || p.head_dim <= 0 || p.head_dim % 2 != 0 || p.num_q_heads < 0 || p.num_kv_heads < 0)
    return cudaErrorInvalidValue;
  if (p.head_dim / 2 > kRopeThreads) return cudaErrorInvalidValue;
  rope_kernel<<<static_cast<unsigned>(p.num_tokens), kRopeThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_kv_write(const KvWriteParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  if (p.num_tokens < 0 || p.head_dim <= 0 || p.head_dim % 8 != 0 || p.block_size <= 0 || p.num_blocks < 0)
    return cudaErrorInvalidValue;
  kv_write_kernel<<<static_cast<unsigned>(p.num_tokens), kKvWriteThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_swiglu(const SwigluParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  if (p.num_tokens < 0 || p.inter <= 0 || p.inter % 8 != 0) return cudaErrorInvalidValue;
  const int64_t grid = p.num_tokens * swiglu_chunks(p);
  if (!grid_ok(grid)) return cudaErrorInvalidValue;
  swiglu_kernel<<<static_cast<unsigned>(grid), kSwigluThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_copy_blocks(uint16_t* cache, int64_t block_elems, int32_t num_blocks, const int32_t* src,
                               const int32_t* dst, int64_t count, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  if (block_elems <= 0 || block_elems % 8 != 0) return cudaErrorInvalidValue;
  for (int64_t begin = 0; begin < count; begin += kMaxCopyPairs) {
    CopyBlocksParams p;
    p.cache = cache;
    p.block_elems = block_elems;
    p.num_blocks = num_blocks;
    p.num_pairs = static_cast<int32_t>(count - begin < kMaxCopyPairs ? count - begin : kMaxCopyPairs);
    for (int32_t i = 0; i < p.num_pairs; ++i) {
      p.src[i] = src[begin + i];
      p.dst[i] = dst[begin + i];
    }
    const int64_t grid = p.num_pairs * copy_blocks_chunks(p);
    if (!grid_ok(grid)) return cudaErrorInvalidValue;
    copy_blocks_kernel<<<static_cast<unsigned>(grid), kCopyThreads, 0, stream>>>(p);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

cudaError_t launch_random_fill(const RandomFillParams& p, cudaStream_t stream) {
  if (p.count == 0) return cudaSuccess;
  if (p.count < 0) return cudaErrorInvalidValue;
  const int64_t grid = (p.count + kFillPerCta - 1) / kFillPerCta;
  if (!grid_ok(grid)) return cudaErrorInvalidValue;
  random_fill_kernel<<<static_cast<unsigned>(grid), kFillThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace canopy::kernels
