#include "backend/cpu/cpu_backend.h"

#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "attention/cpu_attention.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"
#include "sampling/sampler.h"

namespace canopy {
namespace {

// Ops take f32 views only; a view of another dtype here is a bug in the caller.
float* f32(const TensorView& v) {
  CANOPY_ASSERT(v.dtype == DType::F32);
  return static_cast<float*>(v.data);
}

// Rows (outermost dimension) and the product of the other dimensions.
int64_t rows_of(const TensorView& v) { return v.shape.rank() == 0 ? 1 : v.shape[0]; }
int64_t cols_of(const TensorView& v) { return v.numel() / std::max<int64_t>(rows_of(v), 1); }

class CpuBackend final : public Backend {
 public:
  static constexpr size_t kMapThreshold = size_t{1} << 22;

  explicit CpuBackend(int threads) {
    if (threads > 0) omp_set_num_threads(threads);
  }

  std::string name() const override { return "cpu"; }
  DType weight_dtype() const override { return DType::F32; }
  DType activation_dtype() const override { return DType::F32; }

  DeviceTensor allocate(DType dtype, Shape shape) override {
    TensorView v{nullptr, dtype, shape};
    const size_t bytes = v.bytes();
    if (bytes >= kMapThreshold) {
      // Large buffers (the KV cache) are mapped: the kernel hands out zero pages as they are first
      // touched, so an unused cache costs no memory and no time.
      void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      CANOPY_CHECK(p != MAP_FAILED, "out of host memory mapping {} MiB for a tensor of shape {}", bytes >> 20,
                   shape.str());
      v.data = p;
      return DeviceTensor(this, v);
    }
    const size_t rounded = std::max<size_t>((bytes + 63) / 64 * 64, 64);
    v.data = std::aligned_alloc(64, rounded);
    CANOPY_CHECK(v.data != nullptr, "out of host memory allocating {} MiB for a tensor of shape {}",
                 bytes >> 20, shape.str());
    std::memset(v.data, 0, rounded);
    return DeviceTensor(this, v);
  }

  DeviceTensor upload(const float* host, Shape shape, DType dtype) override {
    DeviceTensor t = allocate(dtype, shape);
    convert_from_f32(dtype, host, t.view().data, static_cast<size_t>(shape.numel()));
    return t;
  }

  void download(const TensorView& src, float* host) override {
    convert_to_f32(src.dtype, src.data, host, static_cast<size_t>(src.numel()));
  }

  void release(const TensorView& tensor) override {
    if (tensor.bytes() >= kMapThreshold)
      ::munmap(tensor.data, tensor.bytes());
    else
      std::free(tensor.data);
  }

  void begin_step(const StepInput& step) override {
    CANOPY_ASSERT(step.plan != nullptr);
    CANOPY_ASSERT(step.plan->num_tokens == static_cast<int32_t>(step.tokens.size()));
    CANOPY_ASSERT(step.plan->q_positions.size() == step.tokens.size());
    CANOPY_ASSERT(step.kv_slots.size() == step.tokens.size());
    tokens_.assign(step.tokens.begin(), step.tokens.end());
    kv_slots_.assign(step.kv_slots.begin(), step.kv_slots.end());
    logit_rows_.assign(step.logit_rows.begin(), step.logit_rows.end());
    plan_ = *step.plan;
    for (int32_t r : logit_rows_) CANOPY_ASSERT(r >= 0 && r < plan_.num_tokens);
  }

  void embed(const TensorView& table, const TensorView& out) override {
    const int64_t V = rows_of(table), H = cols_of(table);
    const int64_t T = static_cast<int64_t>(tokens_.size());
    CANOPY_ASSERT(rows_of(out) == T && cols_of(out) == H);
    const float* src = f32(table);
    float* dst = f32(out);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t id = tokens_[static_cast<size_t>(t)];
      CANOPY_ASSERT(id >= 0 && id < V);
      std::memcpy(dst + t * H, src + id * H, static_cast<size_t>(H) * sizeof(float));
    }
  }

  void add_rms_norm(const TensorView& residual, const TensorView& delta, const TensorView& weight, float eps,
                    const TensorView& out) override {
    const int64_t T = rows_of(residual), H = cols_of(residual);
    CANOPY_ASSERT(weight.numel() == H && rows_of(out) == T && cols_of(out) == H);
    CANOPY_ASSERT(delta.data == nullptr || delta.numel() == T * H);
    cpu::add_rms_norm_f32(f32(residual), delta.data != nullptr ? f32(delta) : nullptr, f32(weight), eps,
                          f32(out), T, H);
  }

  void linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) override {
    const int64_t T = rows_of(x), K = cols_of(x), N = rows_of(w);
    CANOPY_ASSERT(w.shape.rank() == 2 && w.shape[1] == K);
    CANOPY_ASSERT(rows_of(y) == T && cols_of(y) == N);
    CANOPY_ASSERT(bias.data == nullptr || bias.numel() == N);
    cpu::linear_f32(f32(x), f32(w), bias.data != nullptr ? f32(bias) : nullptr, f32(y), T, N, K);
  }

  void split_qkv_rope(const TensorView& qkv, const TensorView& inv_freq, const TensorView& q, const TensorView& k,
                      const TensorView& v) override {
    CANOPY_ASSERT(q.shape.rank() == 3 && k.shape.rank() == 3 && v.shape == k.shape);
    const int64_t T = q.shape[0], D = q.shape[2];
    const int64_t QD = q.shape[1] * D, KVD = k.shape[1] * D;
    CANOPY_ASSERT(T == plan_.num_tokens && k.shape[0] == T && k.shape[2] == D && inv_freq.numel() == D / 2);
    CANOPY_ASSERT(qkv.numel() == T * (QD + 2 * KVD));
    const float* src = f32(qkv);
    float *qd = f32(q), *kd = f32(k), *vd = f32(v);
    for (int64_t t = 0; t < T; ++t) {
      const float* row = src + t * (QD + 2 * KVD);
      std::memcpy(qd + t * QD, row, static_cast<size_t>(QD) * sizeof(float));
      std::memcpy(kd + t * KVD, row + QD, static_cast<size_t>(KVD) * sizeof(float));
      std::memcpy(vd + t * KVD, row + QD + KVD, static_cast<size_t>(KVD) * sizeof(float));
    }
    cpu::rope_f32(qd, plan_.q_positions.data(), f32(inv_freq), T, q.shape[1], D);
    cpu::rope_f32(kd, plan_.q_positions.data(), f32(inv_freq), T, k.shape[1], D);
  }

  void copy_blocks(const TensorView& cache, const KvLayout& layout, std::span<const int32_t> src,
                   std::span<const int32_t> dst) override {
    CANOPY_ASSERT(src.size() == dst.size() && static_cast<size_t>(cache.numel()) == layout.layer_elems());
    float* c = f32(cache);
    const size_t block = layout.block_elems();
    for (size_t i = 0; i < src.size(); ++i) {
      CANOPY_ASSERT(src[i] >= 0 && src[i] < layout.num_blocks && dst[i] >= 0 && dst[i] < layout.num_blocks);
      std::memmove(c + static_cast<size_t>(dst[i]) * block, c + static_cast<size_t>(src[i]) * block,
                   block * sizeof(float));
    }
  }

  void kv_write(const TensorView& k, const TensorView& v, const TensorView& k_cache, const TensorView& v_cache,
                const KvLayout& layout) override {
    const int64_t T = static_cast<int64_t>(kv_slots_.size());
    CANOPY_ASSERT(k.shape.rank() == 3 && k.shape[0] == T && k.shape[1] == layout.num_kv_heads &&
                  k.shape[2] == layout.head_dim && v.shape == k.shape);
    CANOPY_ASSERT(static_cast<size_t>(k_cache.numel()) == layout.layer_elems() && v_cache.numel() == k_cache.numel());
    const int64_t capacity = static_cast<int64_t>(layout.num_blocks) * layout.block_size;
    const size_t row_bytes = static_cast<size_t>(layout.head_dim) * sizeof(float);
    const float* ks = f32(k);
    const float* vs = f32(v);
    float* kc = f32(k_cache);
    float* vc = f32(v_cache);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t slot = kv_slots_[static_cast<size_t>(t)];
      if (slot == -1) continue;  // a padding token (backend.h)
      CANOPY_ASSERT(slot >= 0 && slot < capacity);
      const auto block = static_cast<int32_t>(slot / layout.block_size);
      const auto offset = static_cast<int32_t>(slot % layout.block_size);
      for (int32_t h = 0; h < layout.num_kv_heads; ++h) {
        const size_t src = (static_cast<size_t>(t) * static_cast<size_t>(layout.num_kv_heads) + static_cast<size_t>(h)) *
                           static_cast<size_t>(layout.head_dim);
        std::memcpy(kc + layout.offset(block, h, offset), ks + src, row_bytes);
        std::memcpy(vc + layout.offset(block, h, offset), vs + src, row_bytes);
      }
    }
  }

  void attention(const TensorView& q, const TensorView& k_cache, const TensorView& v_cache, const KvLayout& layout,
                 const AttentionShape& shape, const TensorView& out) override {
    CANOPY_ASSERT(rows_of(q) == plan_.num_tokens && q.numel() == out.numel());
    CANOPY_ASSERT(cols_of(q) == static_cast<int64_t>(shape.num_q_heads) * shape.head_dim);
    run_attention_plan_cpu(plan_, shape, layout, f32(q), f32(k_cache), f32(v_cache), partials_, f32(out));
  }

  void swiglu(const TensorView& gate_up, const TensorView& out) override {
    const int64_t T = rows_of(out), I = cols_of(out);
    CANOPY_ASSERT(rows_of(gate_up) == T && cols_of(gate_up) == 2 * I);
    cpu::swiglu_f32(f32(gate_up), f32(out), T, I);
  }

  void final_logits(const TensorView& residual, const TensorView& delta, const TensorView& norm_weight, float eps,
                    const TensorView& lm_head, const TensorView& logits) override {
    const int64_t H = cols_of(residual), V = rows_of(lm_head);
    const auto R = static_cast<int64_t>(logit_rows_.size());
    CANOPY_ASSERT(rows_of(logits) == R && cols_of(logits) == V && cols_of(lm_head) == H);
    // Gather the selected rows (with the pending residual add) and normalize them.
    gathered_.resize(static_cast<size_t>(R * H));
    normed_.resize(static_cast<size_t>(R * H));
    const float* res = f32(residual);
    const float* del = delta.data != nullptr ? f32(delta) : nullptr;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t t = logit_rows_[static_cast<size_t>(r)];
      std::memcpy(gathered_.data() + r * H, res + t * H, static_cast<size_t>(H) * sizeof(float));
      if (del != nullptr)
        for (int64_t i = 0; i < H; ++i) gathered_[static_cast<size_t>(r * H + i)] += del[t * H + i];
    }
    cpu::add_rms_norm_f32(gathered_.data(), nullptr, f32(norm_weight), eps, normed_.data(), R, H);
    cpu::linear_f32(normed_.data(), f32(lm_head), nullptr, f32(logits), R, V, H);
  }

  void sample(const TensorView& logits, std::span<const int32_t> logits_row, std::span<const SamplingRow> rows,
              std::span<SampledToken> out) override {
    const int64_t R = rows_of(logits), V = cols_of(logits);
    const auto S = static_cast<int64_t>(rows.size());
    CANOPY_ASSERT(logits_row.size() == rows.size() && out.size() == rows.size());
    for (int32_t r : logits_row) CANOPY_ASSERT(r >= 0 && r < R);
    const float* l = f32(logits);
#pragma omp parallel if (S > 1)
    {
      SamplerScratch scratch;
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < S; ++i) {
        const float* row = l + static_cast<int64_t>(logits_row[static_cast<size_t>(i)]) * V;
        out[static_cast<size_t>(i)] =
            sample_row(std::span<const float>(row, static_cast<size_t>(V)), rows[static_cast<size_t>(i)], scratch);
      }
    }
  }

 private:
  std::vector<int32_t> tokens_;
  std::vector<int32_t> kv_slots_;
  std::vector<int32_t> logit_rows_;
  AttentionPlan plan_;
  AttentionPartials partials_;
  std::vector<float> gathered_, normed_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace canopy
