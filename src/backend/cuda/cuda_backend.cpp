#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/cuda_util.h"
#include "backend/cuda/forest_attention_runner.h"
#include "backend/cuda/op_profiler.h"
#include "backend/cuda/pinned_buffer.h"
#include "core/error.h"
#include "core/log.h"
#include "model_kernels.h"
#include "sampling.h"

namespace canopy {

namespace {

constexpr size_t kMiB = size_t{1} << 20;
// cudaMalloc hands out large allocations in 2 MiB pages: budgets count whole pages.
constexpr size_t kAllocationGranule = size_t{2} << 20;

size_t round_up(size_t bytes, size_t granule) { return (bytes + granule - 1) / granule * granule; }

int64_t rows_of(const TensorView& v) { return v.shape.rank() == 0 ? 1 : v.shape[0]; }
int64_t cols_of(const TensorView& v) { return v.numel() / std::max<int64_t>(rows_of(v), 1); }

uint16_t* bf16(const TensorView& v) {
  CANOPY_ASSERT(v.dtype == DType::BF16 && v.data != nullptr);
  return static_cast<uint16_t*>(v.data);
}
const float* f32(const TensorView& v) {
  CANOPY_ASSERT(v.dtype == DType::F32 && v.data != nullptr);
  return static_cast<const float*>(v.data);
}

bool same_geometry(const AttentionShape& a, const AttentionShape& b) {
  return a.num_q_heads == b.num_q_heads && a.num_kv_heads == b.num_kv_heads && a.head_dim == b.head_dim &&
         a.scale == b.scale;
}
bool same_layout(const KvLayout& a, const KvLayout& b) {
  return a.num_blocks == b.num_blocks && a.block_size == b.block_size && a.num_kv_heads == b.num_kv_heads &&
         a.head_dim == b.head_dim;
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& o) : options_(o) {
    CANOPY_CHECK(std::isfinite(o.gpu_memory_utilization) && o.gpu_memory_utilization > 0.0 &&
                     o.gpu_memory_utilization <= 1.0,
                 "--gpu-memory-utilization {} is out of range (0, 1]", o.gpu_memory_utilization);
    const int count = cuda_device_count();
    CANOPY_CHECK(count > 0, "device 'cuda': no CUDA device is present (or no NVIDIA driver); use --device cpu");
    CANOPY_CHECK(o.device >= 0 && o.device < count, "CUDA device {} does not exist ({} present)", o.device, count);
    CANOPY_CUDA_CHECK(cudaSetDevice(o.device));
    size_t free = 0;
    CANOPY_CUDA_CHECK(cudaMemGetInfo(&free, &total_bytes_));
    limit_bytes_ = static_cast<size_t>(o.gpu_memory_utilization * static_cast<double>(total_bytes_));
    CANOPY_CHECK(total_bytes_ - free < limit_bytes_,
                 "GPU memory: {} MiB of the GPU's {} MiB are already in use, at or above the {} MiB that "
                 "--gpu-memory-utilization {} allows (other processes on the GPU?)",
                 (total_bytes_ - free) / kMiB, total_bytes_ / kMiB, limit_bytes_ / kMiB, o.gpu_memory_utilization);
    CANOPY_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    gemm_ = std::make_unique<cuda::CublasLtGemm>();
    if (cuda::OpProfiler::enabled_by_environment()) profiler_ = std::make_unique<cuda::OpProfiler>();
    cudaDeviceProp prop{};
    CANOPY_CUDA_CHECK(cudaGetDeviceProperties(&prop, o.device));
    CANOPY_LOG_INFO("CUDA device {}: {}, {} MiB ({} MiB in use); canopy may hold {} MiB", o.device, prop.name,
                    total_bytes_ / kMiB, (total_bytes_ - free) / kMiB, limit_bytes_ / kMiB);
  }

  ~CudaBackend() override {
    profiler_.reset();  // prints the profile while the stream still exists
    clear_graphs();
    for (auto& [tensor, copy] : bias_bf16_) cudaFree(copy);
    attention_.reset();
    gemm_.reset();
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }
  DType weight_dtype() const override { return DType::BF16; }
  DType activation_dtype() const override { return DType::BF16; }

  // ---- memory --------------------------------------------------------------------------------
  DeviceTensor allocate(DType dtype, Shape shape) override {
    CANOPY_ASSERT(!capturing_);
    TensorView v{nullptr, dtype, shape};
    const size_t bytes = std::max<size_t>(v.bytes(), 1);
    check_budget(round_up(bytes, kAllocationGranule), fmt::format("a tensor of shape {}", shape.str()));
    const cudaError_t err = cudaMalloc(&v.data, bytes);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      size_t free = 0, total = 0;
      (void)cudaMemGetInfo(&free, &total);
      fail("GPU memory: allocating {} MiB for a tensor of shape {} failed ({}); {} MiB of {} MiB are free", bytes / kMiB,
           shape.str(), cudaGetErrorString(err), free / kMiB, total / kMiB);
    }
    CANOPY_CUDA_CHECK(cudaMemsetAsync(v.data, 0, bytes, stream_));
    return DeviceTensor(this, v);
  }

  DeviceTensor upload(const float* host, Shape shape, DType dtype) override {
    DeviceTensor t = allocate(dtype, shape);
    const size_t n = static_cast<size_t>(shape.numel());
    std::vector<unsigned char> staging(t.view().bytes());
    convert_from_f32(dtype, host, staging.data(), n);
    copy_to_device(t.view().data, staging.data(), staging.size());
    // Biases are f32 vectors by the Backend convention; cuBLASLt's bias epilogue takes the
    // output's dtype, so every f32 vector gets a bf16 copy (vectors are small).
    if (dtype == DType::F32 && shape.rank() == 1) make_bias_copy(t.view().data, host, n);
    return t;
  }

  void download(const TensorView& src, float* host) override {
    CANOPY_ASSERT(!capturing_);
    std::vector<unsigned char> staging(src.bytes());
    if (!staging.empty()) {
      CANOPY_CUDA_CHECK(cudaMemcpyAsync(staging.data(), src.data, staging.size(), cudaMemcpyDeviceToHost, stream_));
      CANOPY_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    convert_to_f32(src.dtype, staging.data(), host, static_cast<size_t>(src.numel()));
  }

  void release(const TensorView& tensor) override {
    if (capturing_) abort_capture();
    clear_graphs();  // a graph may point at it
    auto shadow = bias_bf16_.find(tensor.data);
    if (shadow != bias_bf16_.end()) {
      cudaFree(shadow->second);
      bias_bf16_.erase(shadow);
    }
    cudaFree(tensor.data);
  }

  DeviceTensor random_tensor(DType dtype, Shape shape, float scale, uint64_t seed) override {
    if (dtype != DType::BF16) return Backend::random_tensor(dtype, shape, scale, seed);  // small f32 vectors
    DeviceTensor t = allocate(dtype, shape);
    kernels::RandomFillParams p;
    p.out = t.view().data;
    p.count = shape.numel();
    p.seed = seed;
    p.scale = scale;
    p.out_bf16 = 1;
    CANOPY_CUDA_CHECK(kernels::launch_random_fill(p, stream_));
    return t;
  }

  std::optional<int64_t> kv_cache_budget_bytes() const override {
    size_t free = 0, total = 0;
    CANOPY_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    const auto used = static_cast<int64_t>(total - free);
    const int64_t budget =
        static_cast<int64_t>(limit_bytes_) - used - static_cast<int64_t>(options_.workspace_reserve_bytes);
    return std::max<int64_t>(budget, 0);
  }

  // ---- per step ------------------------------------------------------------------------------
  void set_attention_geometry(const AttentionShape& shape, const KvLayout& layout) override {
    if (attention_ != nullptr && same_geometry(shape, attn_shape_) && same_layout(layout, attn_layout_)) return;
    CANOPY_ASSERT(!capturing_);
    clear_graphs();
    attention_.reset();
    attention_ = std::make_unique<cuda::ForestAttention>(shape, layout);
    attn_shape_ = shape;
    attn_layout_ = layout;
    attention_prepared_ = false;
  }

  void begin_step(const StepInput& step) override {
    CANOPY_ASSERT(!capturing_);
    CANOPY_ASSERT(step.plan != nullptr);
    const auto T = static_cast<int64_t>(step.tokens.size());
    const auto R = static_cast<int64_t>(step.logit_rows.size());
    CANOPY_ASSERT(step.plan->num_tokens == T && static_cast<int64_t>(step.plan->q_positions.size()) == T);
    CANOPY_ASSERT(static_cast<int64_t>(step.kv_slots.size()) == T);
    for (int32_t r : step.logit_rows) CANOPY_ASSERT(r >= 0 && r < T);
    const auto host_start = cuda::OpProfiler::Clock::now();
    reserve_step_buffers(std::max(T, R));
    const size_t cap = static_cast<size_t>(meta_capacity_);
    int32_t* h = meta_host_.data();
    std::copy(step.tokens.begin(), step.tokens.end(), h);
    std::copy(step.plan->q_positions.begin(), step.plan->q_positions.end(), h + cap);
    std::copy(step.kv_slots.begin(), step.kv_slots.end(), h + 2 * cap);
    std::copy(step.logit_rows.begin(), step.logit_rows.end(), h + 3 * cap);
    const auto copy = [&](int32_t* dst, const int32_t* src, int64_t n) {
      if (n > 0)
        CANOPY_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                          stream_));
    };
    copy(tokens_.data(), h, T);
    copy(positions_.data(), h + cap, T);
    copy(slots_.data(), h + 2 * cap, T);
    copy(logit_rows_.data(), h + 3 * cap, R);
    attention_prepared_ = false;
    if (profiler_ != nullptr) {  // the previous step's GPU work, apart from the preparation below
      const auto wait_start = cuda::OpProfiler::Clock::now();
      CANOPY_CUDA_CHECK(cudaStreamSynchronize(stream_));
      profiler_->add_host_since(fmt::format("begin_step {} tokens: wait for the previous step", T), wait_start);
    }
    if (attention_ != nullptr) {
      attention_->prepare(*step.plan, stream_);  // synchronizes the stream
      attention_prepared_ = true;
    } else {
      CANOPY_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the pinned staging is reused next step
    }
    if (profiler_ != nullptr) profiler_->add_host_since(fmt::format("begin_step {} tokens", T), host_start);
    step_tokens_ = T;
    step_rows_ = R;
  }

  // ---- ops -----------------------------------------------------------------------------------
  void embed(const TensorView& table, const TensorView& out) override {
    CANOPY_ASSERT(rows_of(out) == step_tokens_ && cols_of(out) == cols_of(table));
    check_multiple_of_8(cols_of(table), "hidden size");
    const OpScope scope = op_scope([&] { return fmt::format("embed {}x{}", step_tokens_, cols_of(table)); });
    kernels::EmbedParams p;
    p.table = bf16(table);
    p.tokens = tokens_.data();
    p.out = bf16(out);
    p.num_tokens = static_cast<int32_t>(step_tokens_);
    p.vocab = rows_of(table);
    p.hidden = cols_of(table);
    check_launch(kernels::launch_embed(p, stream_), "embed");
  }

  void add_rms_norm(const TensorView& residual, const TensorView& delta, const TensorView& weight, float eps,
                    const TensorView& out) override {
    const int64_t T = rows_of(residual), H = cols_of(residual);
    CANOPY_ASSERT(weight.numel() == H && rows_of(out) == T && cols_of(out) == H);
    CANOPY_ASSERT(delta.data == nullptr || delta.numel() == T * H);
    check_multiple_of_8(H, "hidden size");
    const OpScope scope = op_scope([&] { return fmt::format("add_rms_norm {}x{}", T, H); });
    kernels::RmsNormParams p;
    p.residual = bf16(residual);
    p.delta = delta.data != nullptr ? bf16(delta) : nullptr;
    p.weight = f32(weight);
    p.out = bf16(out);
    p.rows = static_cast<int32_t>(T);
    p.hidden = static_cast<int32_t>(H);
    p.eps = eps;
    p.write_residual = 1;
    check_launch(kernels::launch_rms_norm(p, stream_), "add_rms_norm");
  }

  void linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) override {
    const int64_t T = rows_of(x), K = cols_of(x), N = rows_of(w);
    CANOPY_ASSERT(w.shape.rank() == 2 && w.shape[1] == K);
    CANOPY_ASSERT(rows_of(y) == T && cols_of(y) == N);
    const void* bias_bf16 = nullptr;
    if (bias.data != nullptr) {
      CANOPY_ASSERT(bias.numel() == N);
      const auto it = bias_bf16_.find(bias.data);
      CANOPY_ASSERT(it != bias_bf16_.end());  // every f32 vector upload has its bf16 copy
      bias_bf16 = it->second;
    }
    if (T == 0) return;
    const OpScope scope = op_scope([&] { return fmt::format("linear {}x{}x{}{}", T, N, K, bias_bf16 ? " +bias" : ""); });
    gemm_->matmul(bf16(x), bf16(w), bias_bf16, bf16(y), T, N, K, CUDA_R_16BF, CUDA_R_16BF, stream_);
  }

  void split_qkv_rope(const TensorView& qkv, const TensorView& inv_freq, const TensorView& q, const TensorView& k,
                      const TensorView& v) override {
    CANOPY_ASSERT(q.shape.rank() == 3 && k.shape.rank() == 3 && v.shape == k.shape);
    const int64_t T = q.shape[0], D = q.shape[2];
    CANOPY_ASSERT(T == step_tokens_ && k.shape[0] == T && k.shape[2] == D && inv_freq.numel() == D / 2);
    CANOPY_ASSERT(qkv.numel() == T * (q.shape[1] + 2 * k.shape[1]) * D);
    const OpScope scope = op_scope([&] { return fmt::format("split_qkv_rope {} tokens", T); });
    kernels::RopeParams p;
    p.qkv = bf16(qkv);
    p.q = bf16(q);
    p.k = bf16(k);
    p.v = bf16(v);
    p.positions = positions_.data();
    p.inv_freq = f32(inv_freq);
    p.num_tokens = static_cast<int32_t>(T);
    p.num_q_heads = static_cast<int32_t>(q.shape[1]);
    p.num_kv_heads = static_cast<int32_t>(k.shape[1]);
    p.head_dim = static_cast<int32_t>(D);
    check_launch(kernels::launch_rope(p, stream_), "rope");
  }

  void copy_blocks(const TensorView& cache, const KvLayout& layout, std::span<const int32_t> src,
                   std::span<const int32_t> dst) override {
    CANOPY_ASSERT(!capturing_);
    CANOPY_ASSERT(src.size() == dst.size() && static_cast<size_t>(cache.numel()) == layout.layer_elems());
    for (size_t i = 0; i < src.size(); ++i)
      CANOPY_ASSERT(src[i] >= 0 && src[i] < layout.num_blocks && dst[i] >= 0 && dst[i] < layout.num_blocks);
    // Pairs run in order: a pair that reads or writes a block an earlier pair of the batch writes
    // (or writes a block it reads) starts a new launch, so the copies behave as sequential ones.
    std::vector<int32_t> batch_src, batch_dst;
    std::set<int32_t> written, read;
    const auto flush = [&] {
      CANOPY_CUDA_CHECK(kernels::launch_copy_blocks(bf16(cache), static_cast<int64_t>(layout.block_elems()),
                                                    layout.num_blocks, batch_src.data(), batch_dst.data(),
                                                    static_cast<int64_t>(batch_src.size()), stream_));
      batch_src.clear();
      batch_dst.clear();
      written.clear();
      read.clear();
    };
    for (size_t i = 0; i < src.size(); ++i) {
      if (written.count(src[i]) != 0 || written.count(dst[i]) != 0 || read.count(dst[i]) != 0) flush();
      batch_src.push_back(src[i]);
      batch_dst.push_back(dst[i]);
      read.insert(src[i]);
      written.insert(dst[i]);
    }
    if (!batch_src.empty()) flush();
  }

  void kv_write(const TensorView& k, const TensorView& v, const TensorView& k_cache, const TensorView& v_cache,
                const KvLayout& layout) override {
    CANOPY_ASSERT(k.shape.rank() == 3 && k.shape[0] == step_tokens_ && k.shape[1] == layout.num_kv_heads &&
                  k.shape[2] == layout.head_dim && v.shape == k.shape);
    CANOPY_ASSERT(static_cast<size_t>(k_cache.numel()) == layout.layer_elems() && v_cache.numel() == k_cache.numel());
    const OpScope scope = op_scope([&] { return fmt::format("kv_write {} tokens", rows_of(k)); });
    kernels::KvWriteParams p;
    p.k = bf16(k);
    p.v = bf16(v);
    p.k_cache = bf16(k_cache);
    p.v_cache = bf16(v_cache);
    p.slots = slots_.data();
    p.num_tokens = static_cast<int32_t>(step_tokens_);
    p.num_kv_heads = layout.num_kv_heads;
    p.head_dim = layout.head_dim;
    p.block_size = layout.block_size;
    p.num_blocks = layout.num_blocks;
    check_launch(kernels::launch_kv_write(p, stream_), "kv_write");
  }

  void attention(const TensorView& q, const TensorView& k_cache, const TensorView& v_cache, const KvLayout& layout,
                 const AttentionShape& shape, const TensorView& out) override {
    CANOPY_ASSERT(attention_ != nullptr && attention_prepared_);
    CANOPY_ASSERT(same_geometry(shape, attn_shape_) && same_layout(layout, attn_layout_));
    CANOPY_ASSERT(rows_of(q) == step_tokens_ && q.numel() == out.numel());
    CANOPY_ASSERT(cols_of(q) == static_cast<int64_t>(shape.num_q_heads) * shape.head_dim);
    CANOPY_ASSERT(static_cast<size_t>(k_cache.numel()) == layout.layer_elems() && v_cache.numel() == k_cache.numel());
    const cudaGraphNode_t before = capturing_ ? capture_frontier() : nullptr;
    const OpScope scope = op_scope([&] { return fmt::format("attention {} rows", rows_of(q)); });
    attention_->run(bf16(q), bf16(k_cache), bf16(v_cache), bf16(out), nullptr, stream_);
    if (capturing_) record_attention_node(before, bf16(q), bf16(k_cache), bf16(v_cache), bf16(out));
  }

  void swiglu(const TensorView& gate_up, const TensorView& out) override {
    const int64_t T = rows_of(out), I = cols_of(out);
    CANOPY_ASSERT(rows_of(gate_up) == T && cols_of(gate_up) == 2 * I);
    check_multiple_of_8(I, "intermediate size");
    const OpScope scope = op_scope([&] { return fmt::format("swiglu {}x{}", T, I); });
    kernels::SwigluParams p;
    p.gate_up = bf16(gate_up);
    p.out = bf16(out);
    p.num_tokens = static_cast<int32_t>(T);
    p.inter = I;
    check_launch(kernels::launch_swiglu(p, stream_), "swiglu");
  }

  void final_logits(const TensorView& residual, const TensorView& delta, const TensorView& norm_weight, float eps,
                    const TensorView& lm_head, const TensorView& logits) override {
    const int64_t H = cols_of(residual), V = rows_of(lm_head);
    const int64_t R = step_rows_;
    CANOPY_ASSERT(rows_of(logits) == R && cols_of(logits) == V && cols_of(lm_head) == H);
    CANOPY_ASSERT(logits.dtype == DType::F32 && norm_weight.numel() == H);
    check_multiple_of_8(H, "hidden size");
    if (R == 0) return;
    // The gathered, normalized rows [R, H]; sized for the step capacity at once, so that a graph
    // capture (which cannot allocate) finds it big enough.
    const size_t need = static_cast<size_t>(meta_capacity_) * static_cast<size_t>(H);
    if (final_rows_.capacity() < need) {
      if (capturing_) {
        capture_ok_ = false;  // run this step eagerly; the next capture finds the buffer
        return;
      }
      clear_graphs();  // they point at the old buffer
      final_rows_.reserve(need);
    }
    const OpScope scope = op_scope([&] { return fmt::format("final norm + lm_head {}x{}x{}", R, V, H); });
    kernels::RmsNormParams p;
    p.residual = bf16(residual);
    p.delta = delta.data != nullptr ? bf16(delta) : nullptr;
    p.weight = f32(norm_weight);
    p.row_map = logit_rows_.data();
    p.out = final_rows_.data();
    p.rows = static_cast<int32_t>(R);
    p.hidden = static_cast<int32_t>(H);
    p.eps = eps;
    p.write_residual = 0;
    check_launch(kernels::launch_rms_norm(p, stream_), "final norm");
    gemm_->matmul(final_rows_.data(), bf16(lm_head), nullptr, logits.data, R, V, H, CUDA_R_16BF, CUDA_R_32F, stream_);
  }

  void sample(const TensorView& logits, std::span<const int32_t> logits_row, std::span<const SamplingRow> rows,
              std::span<SampledToken> out) override {
    CANOPY_ASSERT(!capturing_);
    CANOPY_ASSERT(logits_row.size() == rows.size() && out.size() == rows.size());
    const OpScope scope = op_scope([&] { return fmt::format("sample {} rows", rows.size()); });
    const auto S = static_cast<int64_t>(rows.size());
    if (S == 0) return;
    const int64_t R = rows_of(logits), V = cols_of(logits);
    CANOPY_ASSERT(logits.dtype == DType::F32 && R >= 1 && V >= 1 && V <= INT32_MAX);
    for (int32_t r : logits_row) CANOPY_ASSERT(r >= 0 && r < R);
    const auto n = static_cast<size_t>(S);
    sampler_rows_host_.reserve(n);
    sample_index_host_.reserve(n);
    samples_host_.reserve(n);
    sampler_rows_.reserve(n);
    sample_index_.reserve(n);
    samples_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      kernels::SamplerRow& k = sampler_rows_host_.data()[i];
      k.temperature = rows[i].temperature;
      k.top_k = rows[i].top_k;
      k.top_p = rows[i].top_p;
      k.reserved = 0;
      k.seed = rows[i].seed;
      k.counter = rows[i].counter;
      sample_index_host_.data()[i] = logits_row[i];
    }
    CANOPY_CUDA_CHECK(cudaMemcpyAsync(sampler_rows_.data(), sampler_rows_host_.data(), n * sizeof(kernels::SamplerRow),
                                      cudaMemcpyHostToDevice, stream_));
    CANOPY_CUDA_CHECK(cudaMemcpyAsync(sample_index_.data(), sample_index_host_.data(), n * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, stream_));
    kernels::SampleParams p;
    p.logits = f32(logits);
    p.logits_row = sample_index_.data();
    p.rows = sampler_rows_.data();
    p.out = samples_.data();
    p.num_samples = static_cast<int32_t>(S);
    p.num_rows = static_cast<int32_t>(R);
    p.vocab = static_cast<int32_t>(V);
    p.mass_shift = kernels::sampling_mass_shift(p.vocab);
    CANOPY_CUDA_CHECK(kernels::launch_sample(p, stream_));
    CANOPY_CUDA_CHECK(cudaMemcpyAsync(samples_host_.data(), samples_.data(), n * sizeof(kernels::SampleResult),
                                      cudaMemcpyDeviceToHost, stream_));
    CANOPY_CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (size_t i = 0; i < n; ++i) {
      const kernels::SampleResult& r = samples_host_.data()[i];
      CANOPY_ASSERT(r.token >= 0 && r.token < V);
      out[i] = SampledToken{r.token, r.logprob};
    }
  }

  // ---- CUDA graphs ---------------------------------------------------------------------------
  bool supports_graphs() const override { return options_.cuda_graphs; }

  void begin_capture() override {
    CANOPY_ASSERT(options_.cuda_graphs && !capturing_ && attention_prepared_);
    CANOPY_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
    capturing_ = true;
    capture_ok_ = true;
    recording_.clear();
  }

  bool end_capture(int64_t key) override {
    CANOPY_ASSERT(capturing_);
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    const cudaError_t err = cudaStreamEndCapture(stream_, &graph);
    if (err != cudaSuccess || graph == nullptr || !capture_ok_) {
      if (err != cudaSuccess) {
        (void)cudaGetLastError();
        CANOPY_LOG_WARN("CUDA graph capture failed ({}); the step runs op by op", cudaGetErrorString(err));
      }
      if (graph != nullptr) cudaGraphDestroy(graph);
      return false;
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    if (inst != cudaSuccess) {
      (void)cudaGetLastError();
      CANOPY_LOG_WARN("CUDA graph instantiation failed ({}); the step runs op by op", cudaGetErrorString(inst));
      cudaGraphDestroy(graph);
      return false;
    }
    key = variant_graph_key(key);
    drop_graph(key);
    graphs_[key] = Graph{graph, exec, std::move(recording_)};
    recording_.clear();
    return true;
  }

  void abort_capture() override {
    if (!capturing_) return;
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    (void)cudaStreamEndCapture(stream_, &graph);
    if (graph != nullptr) cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    recording_.clear();
  }

  bool replay(int64_t key) override {
    CANOPY_ASSERT(!capturing_);
    const auto it = graphs_.find(variant_graph_key(key));
    if (it == graphs_.end()) return false;
    CANOPY_ASSERT(attention_prepared_);
    // The attention launches read this step's launch lists: new grid and pointers per step.
    const auto host_start = cuda::OpProfiler::Clock::now();
    for (const AttentionNode& a : it->second.attention)
      attention_->update_graph_nodes(it->second.exec, a.node, a.merge_node, a.q, a.k_cache, a.v_cache, a.out,
                                     nullptr);
    if (profiler_ != nullptr)
      profiler_->add_host_since(fmt::format("graph node updates {} tokens", step_tokens_), host_start);
    const OpScope scope = op_scope([&] { return fmt::format("graph replay {} tokens", step_tokens_); });
    CANOPY_CUDA_CHECK(cudaGraphLaunch(it->second.exec, stream_));
    return true;
  }

  void clear_graphs() override {
    for (auto& [key, g] : graphs_) destroy(g);
    graphs_.clear();
  }

 private:
  struct AttentionNode {
    cudaGraphNode_t node;
    cudaGraphNode_t merge_node;  // the merge launch after it (partials mode), or null
    const uint16_t* q;
    const uint16_t* k_cache;
    const uint16_t* v_cache;
    uint16_t* out;
  };
  struct Graph {
    cudaGraph_t graph = nullptr;  // kept: the nodes updated on replay belong to it
    cudaGraphExec_t exec = nullptr;
    std::vector<AttentionNode> attention;
  };

  static void destroy(Graph& g) {
    if (g.exec != nullptr) cudaGraphExecDestroy(g.exec);
    if (g.graph != nullptr) cudaGraphDestroy(g.graph);
    g = Graph{};
  }
  void drop_graph(int64_t key) {
    const auto it = graphs_.find(key);
    if (it == graphs_.end()) return;
    destroy(it->second);
    graphs_.erase(it);
  }

  // The capture's frontier when it is one node (the last op's), else null.
  cudaGraphNode_t capture_frontier() {
    cudaStreamCaptureStatus status{};
    const cudaGraphNode_t* deps = nullptr;
    size_t count = 0;
    if (cudaStreamGetCaptureInfo(stream_, &status, nullptr, nullptr, &deps, nullptr, &count) != cudaSuccess) {
      (void)cudaGetLastError();
      return nullptr;
    }
    return status == cudaStreamCaptureStatusActive && count == 1 ? deps[0] : nullptr;
  }

  // The node the attention launch just added (in kFusedMerge mode run() launches one kernel): the
  // capture's frontier, if it is a new kernel node. Anything else abandons the capture.
  void record_attention_node(cudaGraphNode_t before, const uint16_t* q, const uint16_t* k, const uint16_t* v,
                             uint16_t* out) {
    // The frontier is the last launch run() added: the attention kernel, or in partials mode the
    // merge kernel, whose one dependency is the attention kernel.
    const auto is_new_kernel = [&](cudaGraphNode_t n) {
      cudaGraphNodeType type{};
      return n != nullptr && n != before && cudaGraphNodeGetType(n, &type) == cudaSuccess &&
             type == cudaGraphNodeTypeKernel;
    };
    const cudaGraphNode_t last = capture_frontier();
    cudaGraphNode_t node = last, merge = nullptr;
    if (is_new_kernel(last) && attention_->mode() == kernels::ForestOutputMode::kPartials) {
      merge = last;
      size_t count = 0;
      node = nullptr;
#if CUDART_VERSION >= 13000
      if (cudaGraphNodeGetDependencies(merge, nullptr, nullptr, &count) == cudaSuccess && count == 1)
        (void)cudaGraphNodeGetDependencies(merge, &node, nullptr, &count);
#else
      if (cudaGraphNodeGetDependencies(merge, nullptr, &count) == cudaSuccess && count == 1)
        (void)cudaGraphNodeGetDependencies(merge, &node, &count);
#endif
    }
    if (!is_new_kernel(node)) {
      (void)cudaGetLastError();
      capture_ok_ = false;
      return;
    }
    recording_.push_back(AttentionNode{node, merge, q, k, v, out});
  }

  // Graphs are keyed by the model's key and the attention variant of the step (kernel, mode): a
  // captured node keeps its kernel function and launch count.
  int64_t variant_graph_key(int64_t key) const {
    return key * 8 + (attention_ != nullptr ? attention_->variant_key() : 0);
  }


  // A launch error outside a capture is a bug (sizes are checked before); inside one, the capture
  // is abandoned and the step runs eagerly, where the error shows again if it is real.
  // Brackets one op with CUDA events while CANOPY_CUDA_PROFILE=1 (op_profiler.h); `name` makes the
  // op's label and runs only then. Nothing is recorded while a graph is being captured.
  struct OpScope {
    cuda::OpProfiler* profiler;
    cudaStream_t stream;
    ~OpScope() {
      if (profiler != nullptr) profiler->end(stream);
    }
  };
  template <typename NameFn>
  OpScope op_scope(NameFn&& name) {
    if (profiler_ == nullptr || capturing_) return OpScope{nullptr, stream_};
    profiler_->begin(name(), stream_);
    return OpScope{profiler_.get(), stream_};
  }

  void check_launch(cudaError_t err, const char* what) {
    if (err == cudaSuccess) return;
    if (capturing_) {
      (void)cudaGetLastError();
      capture_ok_ = false;
      return;
    }
    fail("CUDA {} launch failed: {} ({})", what, cudaGetErrorName(err), cudaGetErrorString(err));
  }

  // The element-wise kernels move 8 bf16 (16 bytes) at a time; every supported model qualifies.
  static void check_multiple_of_8(int64_t n, const char* what) {
    CANOPY_CHECK(n % 8 == 0, "the CUDA backend needs a {} that is a multiple of 8; this model's is {}", what, n);
  }

  void check_budget(size_t bytes, const std::string& what) const {
    size_t free = 0, total = 0;
    CANOPY_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    const size_t used = total - free;
    CANOPY_CHECK(used + bytes <= limit_bytes_,
                 "GPU memory: {} ({} MiB) does not fit: {} MiB of the GPU's {} MiB are in use and "
                 "--gpu-memory-utilization {} allows {} MiB (the model's weights and step buffers must fit, "
                 "with room left for the KV cache)",
                 what, bytes / kMiB, used / kMiB, total / kMiB, options_.gpu_memory_utilization, limit_bytes_ / kMiB);
  }

  void copy_to_device(void* dst, const void* src, size_t bytes) {
    if (bytes == 0) return;
    CANOPY_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    CANOPY_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the pageable source goes away after
  }

  void make_bias_copy(const void* tensor, const float* host, size_t n) {
    std::vector<uint16_t> staging(n);
    convert_from_f32(DType::BF16, host, staging.data(), n);
    void* copy = nullptr;
    CANOPY_CUDA_CHECK(cudaMalloc(&copy, std::max<size_t>(n, 1) * sizeof(uint16_t)));
    bias_bf16_[tensor] = copy;
    copy_to_device(copy, staging.data(), n * sizeof(uint16_t));
  }

  // Step metadata buffers of fixed capacity: growing them moves them, so recorded graphs go.
  void reserve_step_buffers(int64_t rows) {
    if (rows <= meta_capacity_) return;
    const int64_t cap = std::max<int64_t>({rows, 2 * static_cast<int64_t>(meta_capacity_), 1024});
    CANOPY_ASSERT(cap <= INT32_MAX);
    clear_graphs();
    const auto n = static_cast<size_t>(cap);
    tokens_.reserve(n);
    positions_.reserve(n);
    slots_.reserve(n);
    logit_rows_.reserve(n);
    meta_host_.reserve(4 * n);
    meta_capacity_ = static_cast<int32_t>(cap);
  }

  CudaBackendOptions options_;
  size_t total_bytes_ = 0;
  size_t limit_bytes_ = 0;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::CublasLtGemm> gemm_;
  std::unique_ptr<cuda::OpProfiler> profiler_;  // only with CANOPY_CUDA_PROFILE=1
  std::unordered_map<const void*, void*> bias_bf16_;  // f32 vector -> its bf16 copy

  // The step: metadata on the device (fixed capacity), its sizes.
  int32_t meta_capacity_ = 0;
  cuda::DeviceBuffer<int32_t> tokens_, positions_, slots_, logit_rows_;
  cuda::PinnedBuffer<int32_t> meta_host_;  // [4, capacity] staging
  int64_t step_tokens_ = 0;
  int64_t step_rows_ = 0;
  cuda::DeviceBuffer<uint16_t> final_rows_;  // gathered normalized rows of the logits

  std::unique_ptr<cuda::ForestAttention> attention_;
  AttentionShape attn_shape_{};
  KvLayout attn_layout_{};
  bool attention_prepared_ = false;

  cuda::DeviceBuffer<kernels::SamplerRow> sampler_rows_;
  cuda::DeviceBuffer<int32_t> sample_index_;
  cuda::DeviceBuffer<kernels::SampleResult> samples_;
  cuda::PinnedBuffer<kernels::SamplerRow> sampler_rows_host_;
  cuda::PinnedBuffer<int32_t> sample_index_host_;
  cuda::PinnedBuffer<kernels::SampleResult> samples_host_;

  std::map<int64_t, Graph> graphs_;
  bool capturing_ = false;
  bool capture_ok_ = false;
  std::vector<AttentionNode> recording_;
};

}  // namespace

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options) {
  return std::make_unique<CudaBackend>(options);
}

}  // namespace canopy
