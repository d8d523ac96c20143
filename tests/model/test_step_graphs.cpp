// LlamaModel's graph steps (model/step_graphs.cpp) on the CPU: a backend that records the ops
// issued between begin_capture and end_capture and replays them later, as CUDA graphs do (the
// recorded ops read the step metadata that begin_step set, like a replayed graph reads the
// device's step buffers). Padded steps must give the same logits, bit for bit, as plain steps,
// since the CPU kernels are batch-invariant. Also: random-weight models.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "model/llama.h"
#include "model/step_runner.h"

namespace canopy {
namespace {

class RecordingBackend final : public Backend {
 public:
  RecordingBackend() : inner_(make_cpu_backend()) {}

  int captures = 0;
  int replays = 0;

  std::string name() const override { return "recording-cpu"; }
  DType weight_dtype() const override { return inner_->weight_dtype(); }
  DType activation_dtype() const override { return inner_->activation_dtype(); }
  // Host memory of its own (the CPU ops take any f32 pointers).
  DeviceTensor allocate(DType dtype, Shape shape) override {
    EXPECT_FALSE(capturing_) << "allocation inside a capture";
    TensorView v{nullptr, dtype, shape};
    const size_t bytes = std::max<size_t>((v.bytes() + 63) / 64 * 64, 64);
    v.data = std::aligned_alloc(64, bytes);
    std::memset(v.data, 0, bytes);
    return DeviceTensor(this, v);
  }
  DeviceTensor upload(const float* host, Shape shape, DType dtype) override {
    DeviceTensor t = allocate(dtype, shape);
    convert_from_f32(dtype, host, t.view().data, static_cast<size_t>(shape.numel()));
    return t;
  }
  void download(const TensorView& src, float* host) override {
    EXPECT_FALSE(capturing_) << "download inside a capture";
    convert_to_f32(src.dtype, src.data, host, static_cast<size_t>(src.numel()));
  }
  void release(const TensorView& tensor) override { std::free(tensor.data); }
  void begin_step(const StepInput& step) override {
    EXPECT_FALSE(capturing_) << "begin_step inside a capture";
    inner_->begin_step(step);
  }

  void embed(const TensorView& table, const TensorView& out) override {
    op([=, this] { inner_->embed(table, out); });
  }
  void add_rms_norm(const TensorView& residual, const TensorView& delta, const TensorView& weight, float eps,
                    const TensorView& out) override {
    op([=, this] { inner_->add_rms_norm(residual, delta, weight, eps, out); });
  }
  void linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) override {
    op([=, this] { inner_->linear(x, w, bias, y); });
  }
  void split_qkv_rope(const TensorView& qkv, const TensorView& inv_freq, const TensorView& q, const TensorView& k,
                      const TensorView& v) override {
    op([=, this] { inner_->split_qkv_rope(qkv, inv_freq, q, k, v); });
  }
  void copy_blocks(const TensorView& cache, const KvLayout& layout, std::span<const int32_t> src,
                   std::span<const int32_t> dst) override {
    EXPECT_FALSE(capturing_);
    inner_->copy_blocks(cache, layout, src, dst);
  }
  void kv_write(const TensorView& k, const TensorView& v, const TensorView& k_cache, const TensorView& v_cache,
                const KvLayout& layout) override {
    op([=, this] { inner_->kv_write(k, v, k_cache, v_cache, layout); });
  }
  void attention(const TensorView& q, const TensorView& k_cache, const TensorView& v_cache, const KvLayout& layout,
                 const AttentionShape& shape, const TensorView& out) override {
    op([=, this] { inner_->attention(q, k_cache, v_cache, layout, shape, out); });
  }
  void swiglu(const TensorView& gate_up, const TensorView& out) override {
    op([=, this] { inner_->swiglu(gate_up, out); });
  }
  void final_logits(const TensorView& residual, const TensorView& delta, const TensorView& norm_weight, float eps,
                    const TensorView& lm_head, const TensorView& logits) override {
    op([=, this] { inner_->final_logits(residual, delta, norm_weight, eps, lm_head, logits); });
  }
  void sample(const TensorView& logits, std::span<const int32_t> logits_row, std::span<const SamplingRow> rows,
              std::span<SampledToken> out) override {
    inner_->sample(logits, logits_row, rows, out);
  }

  bool supports_graphs() const override { return true; }
  void begin_capture() override {
    ASSERT_FALSE(capturing_);
    capturing_ = true;
    recording_.clear();
  }
  bool end_capture(int64_t key) override {
    capturing_ = false;
    graphs_[key] = std::move(recording_);
    ++captures;
    return true;
  }
  void abort_capture() override { capturing_ = false; }
  bool replay(int64_t key) override {
    const auto it = graphs_.find(key);
    if (it == graphs_.end()) return false;
    for (const auto& f : it->second) f();
    ++replays;
    return true;
  }
  void clear_graphs() override { graphs_.clear(); }

 private:
  void op(std::function<void()> f) {
    if (capturing_) {
      recording_.push_back(std::move(f));
    } else {
      f();
    }
  }

  std::unique_ptr<Backend> inner_;
  bool capturing_ = false;
  std::vector<std::function<void()>> recording_;
  std::map<int64_t, std::vector<std::function<void()>>> graphs_;
};

using testing::StepRunner;

std::string tiny_llama() { return testing::source_dir() + "/tests/data/models/tiny-llama"; }

// Prefill, then decode steps whose batch changes size (buckets 1, 2, 4, 8), on a model that
// replays graphs and on a plain one: the logits are the same bits.
TEST(StepGraphs, PaddedReplaysGiveTheSameLogitsAsPlainSteps) {
  RecordingBackend recording;
  const std::unique_ptr<Backend> cpu = make_cpu_backend();
  const auto graphed = LlamaModel::load(tiny_llama(), recording, StepCapacity{64, 64});
  const auto plain = LlamaModel::load(tiny_llama(), *cpu, StepCapacity{64, 64, 0});
  StepRunner a(*graphed, 5, 64);
  StepRunner b(*plain, 5, 64);
  std::mt19937_64 rng(testing::test_seed());
  std::uniform_int_distribution<int32_t> token(0, 511);
  const auto random_tokens = [&](int n) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = token(rng);
    return t;
  };
  std::vector<std::vector<StepRunner::Chunk>> steps;
  steps.push_back({{0, random_tokens(7)}});                         // T = 7: the first step, eager
  steps.push_back({{0, random_tokens(1)}});                         // bucket 1, captured
  steps.push_back({{0, random_tokens(1)}});                         // bucket 1, replayed
  steps.push_back({{1, random_tokens(5)}, {0, random_tokens(1)}});  // bucket 8, captured
  steps.push_back({{0, random_tokens(1)}, {1, random_tokens(1)}});  // bucket 2
  steps.push_back({{2, random_tokens(3)}, {0, random_tokens(1)}, {1, random_tokens(1)}});  // bucket 8, replayed
  steps.push_back({{0, random_tokens(1)}, {1, random_tokens(1)}, {2, random_tokens(1)}});  // bucket 4
  steps.push_back({{3, random_tokens(40)}});                        // T = 40: bucket 64, captured
  steps.push_back({{0, random_tokens(1)}, {1, random_tokens(1)}, {2, random_tokens(1)}});  // bucket 4 again
  for (size_t s = 0; s < steps.size(); ++s) {
    const auto la = a.step(steps[s]);
    const auto lb = b.step(steps[s]);
    ASSERT_EQ(la.size(), lb.size());
    for (size_t r = 0; r < la.size(); ++r) ASSERT_EQ(la[r], lb[r]) << "step " << s << " row " << r;
  }
  EXPECT_EQ(graphed->graph_stats().eager_steps, 1);
  EXPECT_EQ(graphed->graph_stats().captures, 5);  // buckets 1, 8, 2, 4, 64
  EXPECT_EQ(graphed->graph_stats().replays, 3);
  EXPECT_EQ(recording.captures, 5);
  EXPECT_EQ(plain->graph_stats().eager_steps, static_cast<int64_t>(steps.size()));
}

// Steps larger than max_graph_tokens run eagerly; a new KV cache drops the recorded graphs.
TEST(StepGraphs, LargeStepsRunEagerlyAndANewCacheStartsOver) {
  RecordingBackend recording;
  const auto model = LlamaModel::load(tiny_llama(), recording, StepCapacity{64, 16, 8});
  StepRunner runner(*model, 2, 64);
  runner.step({{0, std::vector<int32_t>(12, 5)}});  // 12 tokens: bucket 16 > 8, eager
  EXPECT_EQ(model->graph_stats().eager_steps, 1);
  EXPECT_EQ(model->graph_stats().captures, 0);
  runner.step({{1, {1, 2, 3}}});  // bucket 4, but the first step that could be graphed: eager
  EXPECT_EQ(model->graph_stats().eager_steps, 2);
  EXPECT_EQ(model->graph_stats().captures, 0);
  runner.step({{1, {4}}});  // bucket 1: captured
  EXPECT_EQ(model->graph_stats().captures, 1);
  StepRunner other(*model, 2, 64);  // another cache: the graphs recorded for the first are dropped
  other.step({{0, {1, 2, 3}}});
  EXPECT_EQ(model->graph_stats().captures, 2);
  EXPECT_EQ(model->graph_stats().replays, 0);
}

// A random-weight model from a config.json: deterministic in its seed, finite logits, and the
// CPU's random tensors follow uniform_weight exactly.
TEST(RandomWeights, ModelsFromAConfigAreDeterministicAndFinite) {
  testing::TempDir dir;
  testing::write_file(dir.file("config.json"), R"({
    "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128,
    "rms_norm_eps": 1e-5, "max_position_embeddings": 256, "tie_word_embeddings": false})");
  const std::unique_ptr<Backend> cpu = make_cpu_backend();
  const auto logits_of = [&](uint64_t seed) {
    const auto model = LlamaModel::load_random(dir.file("config.json"), *cpu, StepCapacity{16, 16}, seed);
    StepRunner runner(*model, 1, 32);
    return runner.step({{0, {1, 7, 42}}});
  };
  const auto a = logits_of(1), b = logits_of(1), c = logits_of(2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (const auto& row : a)
    for (float x : row) ASSERT_TRUE(std::isfinite(x));

  const DeviceTensor t = cpu->random_tensor(DType::F32, Shape{3, 5}, 0.5f, 99);
  std::vector<float> host(15);
  cpu->download(t.view(), host.data());
  for (size_t i = 0; i < host.size(); ++i) EXPECT_EQ(host[i], uniform_weight(99, i, 0.5f));

  EXPECT_THROW(LlamaModel::load_random(dir.file("missing.json"), *cpu), Error);
}

}  // namespace
}  // namespace canopy
