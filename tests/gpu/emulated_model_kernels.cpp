// Host build of the model kernels for the emulator (emulated_model_kernels.h): the CUDA builtins
// and the primitives of device_common.cuh re-implemented on kernel_emulator.h.
#include "emulated_model_kernels.h"

#include <cuda_runtime_api.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/dtype.h"
#include "kernel_emulator.h"

// The emulated kernels live in canopy::kernels_emu_model and use the real params types.
namespace canopy::kernels_emu_model {
using namespace ::canopy::kernels;
}
#define CANOPY_KERNEL_EMULATION 1
#define kernels kernels_emu_model
#define __launch_bounds__(...)
#define threadIdx (::canopy::emu::thread_idx())
#define blockIdx (::canopy::emu::block_idx())

// ---- CUDA builtins (internal linkage: other emulated translation units have their own)
namespace {

template <typename T>
uint64_t bits_of(T v) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8);
  if constexpr (sizeof(T) == 4) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    return b;
  } else {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    return b;
  }
}
template <typename T>
T value_of(uint64_t b) {
  T v;
  if constexpr (sizeof(T) == 4) {
    const auto w = static_cast<uint32_t>(b);
    std::memcpy(&v, &w, 4);
  } else {
    std::memcpy(&v, &b, 8);
  }
  return v;
}

// Collective inputs per lane: [0] low word, [1] high word, [2] lane argument.
void xor_compute(const uint32_t (*in)[16], uint32_t (*out)[16]) {
  for (int l = 0; l < 32; ++l) {
    const int src = (l ^ static_cast<int>(in[l][2])) & 31;
    out[l][0] = in[src][0];
    out[l][1] = in[src][1];
  }
}
void up_compute(const uint32_t (*in)[16], uint32_t (*out)[16]) {
  for (int l = 0; l < 32; ++l) {
    const int src = l - static_cast<int>(in[l][2]);
    const int from = src >= 0 ? src : l;  // lanes below the offset keep their own value
    out[l][0] = in[from][0];
    out[l][1] = in[from][1];
  }
}
void idx_compute(const uint32_t (*in)[16], uint32_t (*out)[16]) {
  for (int l = 0; l < 32; ++l) {
    const int src = static_cast<int>(in[l][2]) & 31;
    out[l][0] = in[src][0];
    out[l][1] = in[src][1];
  }
}
void ballot_compute(const uint32_t (*in)[16], uint32_t (*out)[16]) {
  uint32_t mask = 0;
  for (int l = 0; l < 32; ++l)
    if (in[l][0] != 0) mask |= 1u << l;
  for (int l = 0; l < 32; ++l) out[l][0] = mask;
}

template <typename T>
T shuffle(T v, uint32_t arg, ::canopy::emu::CollectiveFn fn) {
  const uint64_t b = bits_of(v);
  const uint32_t in[3] = {static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32), arg};
  uint32_t out[2] = {0, 0};
  ::canopy::emu::warp_collective(in, 3, out, 2, fn);
  return value_of<T>(static_cast<uint64_t>(out[0]) | (static_cast<uint64_t>(out[1]) << 32));
}

void __syncthreads() { ::canopy::emu::syncthreads(); }
template <typename T>
T __shfl_xor_sync(unsigned, T v, int mask) {
  return shuffle(v, static_cast<uint32_t>(mask), xor_compute);
}
template <typename T>
T __shfl_up_sync(unsigned, T v, unsigned offset) {
  return shuffle(v, offset, up_compute);
}
template <typename T>
T __shfl_sync(unsigned, T v, int src) {
  return shuffle(v, static_cast<uint32_t>(src), idx_compute);
}
unsigned __ballot_sync(unsigned, int predicate) {
  const uint32_t in[1] = {predicate != 0 ? 1u : 0u};
  uint32_t out[1] = {0};
  ::canopy::emu::warp_collective(in, 1, out, 1, ballot_compute);
  return out[0];
}
int __ffs(int x) { return x == 0 ? 0 : __builtin_ctz(static_cast<unsigned>(x)) + 1; }
unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  ::canopy::emu::yield();  // let other threads interleave, as on the GPU
  const unsigned long long old = *p;
  *p = old + v;
  return old;
}
float __uint_as_float(uint32_t u) { return value_of<float>(u); }
uint32_t __float_as_uint(float f) { return static_cast<uint32_t>(bits_of(f)); }
float __fadd_rn(float a, float b) { return a + b; }
float __fmul_rn(float a, float b) { return a * b; }
int min(int a, int b) { return a < b ? a : b; }

}  // namespace

// ---- the primitives of device_common.cuh
namespace canopy::kernels {
inline float bf16_bits_to_f32(uint32_t h) { return ::canopy::bf16_to_f32(static_cast<uint16_t>(h)); }
inline uint32_t pack_bf16_pair(float lo, float hi) {
  return static_cast<uint32_t>(::canopy::f32_to_bf16(lo)) | (static_cast<uint32_t>(::canopy::f32_to_bf16(hi)) << 16);
}
inline uint16_t f32_to_bf16_bits(float f) { return ::canopy::f32_to_bf16(f); }
inline unsigned char* model_kernel_smem() { return ::canopy::emu::smem_base(); }
}  // namespace canopy::kernels

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#include "embed.cuh"
#include "kv_cache.cuh"
#include "norm.cuh"
#include "random_fill.cuh"
#include "rope.cuh"
#include "sampling.cuh"
#include "swiglu.cuh"
#pragma GCC diagnostic pop

#undef kernels
#undef threadIdx
#undef blockIdx

namespace canopy::testing {

namespace emk = ::canopy::kernels_emu_model;

namespace {
// A few CTAs at a time, so that CTAs interleave (their shared memory is separate).
constexpr int kConcurrent = 2;
int grid_of(int64_t n) {
  if (n <= 0 || n > 0x7fffffff) std::abort();
  return static_cast<int>(n);
}
}  // namespace

void emulate_embed(const kernels::EmbedParams& p) {
  ::canopy::emu::launch(grid_of(p.num_tokens * emk::embed_chunks(p)), emk::kEmbedThreads, 0, kConcurrent,
                        [&] { emk::embed_kernel(p); });
}

void emulate_rms_norm(const kernels::RmsNormParams& p) {
  ::canopy::emu::launch(grid_of(p.rows), emk::kNormThreads, emk::kNormSmemBytes, kConcurrent,
                        [&] { emk::rms_norm_kernel(p); });
}

void emulate_rope(const kernels::RopeParams& p) {
  ::canopy::emu::launch(grid_of(p.num_tokens), emk::kRopeThreads, 0, kConcurrent, [&] { emk::rope_kernel(p); });
}

void emulate_kv_write(const kernels::KvWriteParams& p) {
  ::canopy::emu::launch(grid_of(p.num_tokens), emk::kKvWriteThreads, 0, kConcurrent,
                        [&] { emk::kv_write_kernel(p); });
}

void emulate_swiglu(const kernels::SwigluParams& p) {
  ::canopy::emu::launch(grid_of(p.num_tokens * emk::swiglu_chunks(p)), emk::kSwigluThreads, 0, kConcurrent,
                        [&] { emk::swiglu_kernel(p); });
}

void emulate_copy_blocks(const kernels::CopyBlocksParams& p) {
  ::canopy::emu::launch(grid_of(p.num_pairs * emk::copy_blocks_chunks(p)), emk::kCopyThreads, 0, kConcurrent,
                        [&] { emk::copy_blocks_kernel(p); });
}

void emulate_random_fill(const kernels::RandomFillParams& p) {
  ::canopy::emu::launch(grid_of((p.count + emk::kFillPerCta - 1) / emk::kFillPerCta), emk::kFillThreads, 0,
                        kConcurrent, [&] { emk::random_fill_kernel(p); });
}

void emulate_sample(const kernels::SampleParams& p) {
  ::canopy::emu::launch(grid_of(p.num_samples), emk::kSampleThreads, emk::kSampleSmemBytes, 1,
                        [&] { emk::sample_kernel(p); });
}

}  // namespace canopy::testing
