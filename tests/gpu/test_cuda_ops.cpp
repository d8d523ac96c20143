// Each op of the CUDA backend against the CPU backend (the f32 reference), through the Backend
// interface, on fresh random inputs that bf16 holds exactly and outputs poisoned with NaN.
// Tolerances: one bf16 rounding of the result is at most 2^-8 relative, so an op that rounds once
// must agree to 2^-7 (kBf16Rel) of the reference; ops that round twice (a sum stored in bf16,
// then normalized) get 2^-6; products get, in addition, a floor proportional to sum |x w| for
// the f32 accumulation order. Every test prints the measured error as a share of its tolerance.
#include <gtest/gtest.h>

#include <numeric>

#include "attention/plan.h"
#include "cuda_test_support.h"
#include "sampling_reference.h"

namespace canopy::testing {
namespace {

struct Backends {
  std::unique_ptr<Backend> cpu = make_cpu_backend(1);
  std::unique_ptr<Backend> gpu = cuda_backend();
};

TEST(CudaOps, EmbedGathersRows) {
  CANOPY_SKIP_WITHOUT_GPU();
  Backends b;
  std::mt19937_64 rng(test_seed());
  const int64_t V = 1000, H = 576;
  const std::vector<float> table = bf16_values(rng, V * H);
  const std::vector<int32_t> tokens = {5, 999, 0, 5, 123};
  const std::vector<int32_t> slots = {0, 1, 2, 3, 4};
  const AttentionPlan plan = positions_only_plan({0, 1, 2, 3, 4});
  const int64_t T = 5;
  std::vector<float> result[2];
  for (int i = 0; i < 2; ++i) {
    Backend& be = i == 0 ? *b.cpu : *b.gpu;
    const DeviceTensor t = put(be, table, Shape{V, H});
    const DeviceTensor out = put(be, nan_filled(T * H), Shape{T, H});
    be.begin_step(StepInput{tokens, slots, &plan, {}});
    be.embed(t.view(), out.view());
    result[i] = get(be, out.view());
  }
  EXPECT_EQ(result[1], result[0]);
}

TEST(CudaOps, AddRmsNormMatchesCpu) {
  CANOPY_SKIP_WITHOUT_GPU();
  Backends b;
  for (const bool with_delta : {false, true}) {
    std::mt19937_64 rng(test_seed() + with_delta);
    const int64_t T = 7, H = 576;
    const std::vector<float> residual = bf16_values(rng, T * H, -3.0f, 3.0f), delta = bf16_values(rng, T * H);
    const std::vector<float> weight = random_floats(rng, H, 0.2f, 2.0f);
    std::vector<float> res_out[2], out[2];
    for (int i = 0; i < 2; ++i) {
      Backend& be = i == 0 ? *b.cpu : *b.gpu;
      const DeviceTensor r = put(be, residual, Shape{T, H});
      const DeviceTensor d = put(be, delta, Shape{T, H});
      const DeviceTensor w = put(be, weight, Shape{H}, true);
      const DeviceTensor o = put(be, nan_filled(T * H), Shape{T, H});
      be.add_rms_norm(r.view(), with_delta ? d.view() : TensorView{}, w.view(), 1e-5f, o.view());
      res_out[i] = get(be, r.view());
      out[i] = get(be, o.view());
    }
    expect_close(compare(res_out[1], res_out[0], kBf16Rel, 1e-30), "add_rms_norm residual");
    expect_close(compare(out[1], out[0], 2 * kBf16Rel, 1e-6), with_delta ? "add_rms_norm" : "rms_norm");
  }
}

TEST(CudaOps, LinearMatchesCpu) {
  CANOPY_SKIP_WITHOUT_GPU();
  Backends b;
  struct Case {
    int64_t T, K, N;
    bool bias;
  };
  for (const Case c : {Case{1, 576, 1536, false}, Case{37, 64, 200, true}, Case{256, 1536, 576, false},
                       Case{5, 896, 128, true}}) {
    std::mt19937_64 rng(test_seed() + static_cast<uint64_t>(c.T * c.K));
    const std::vector<float> x = bf16_values(rng, c.T * c.K), w = bf16_values(rng, c.N * c.K);
    const std::vector<float> bias = random_floats(rng, c.N, -2.0f, 2.0f);
    std::vector<float> y[2];
    for (int i = 0; i < 2; ++i) {
      Backend& be = i == 0 ? *b.cpu : *b.gpu;
      const DeviceTensor xt = put(be, x, Shape{c.T, c.K});
      const DeviceTensor wt = put(be, w, Shape{c.N, c.K});
      const DeviceTensor bt = put(be, bias, Shape{c.N}, true);
      const DeviceTensor yt = put(be, nan_filled(c.T * c.N), Shape{c.T, c.N});
      be.linear(xt.view(), wt.view(), c.bias ? bt.view() : TensorView{}, yt.view());
      y[i] = get(be, yt.view());
    }
    // The GPU adds a bf16 copy of the bias (cuBLASLt's epilogue takes the output's dtype).
    std::vector<double> floor(y[0].size());
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t n = 0; n < c.N; ++n) {
        double s = 0.0;
        for (int64_t k = 0; k < c.K; ++k) s += std::abs(x[t * c.K + k] * w[n * c.K + k]);
        floor[t * c.N + n] = 1e-5 * s + (c.bias ? std::abs(bias[n]) / 256.0 : 0.0) + 1e-30;
      }
    const std::string what = fmt::format("linear {}x{}x{}{}", c.T, c.K, c.N, c.bias ? " + bias" : "");
    expect_close(compare(y[1], y[0], kBf16Rel, floor), what);
  }
}

TEST(CudaOps, RopeMatchesCpu) {
  CANOPY_SKIP_WITHOUT_GPU();
  Backends b;
  std::mt19937_64 rng(test_seed());
  const int64_t T = 4, Hq = 9, Hkv = 3, D = 64;
  const std::vector<float> qkv = bf16_values(rng, T * (Hq + 2 * Hkv) * D);
  std::vector<float> inv_freq(D / 2);
  for (int64_t i = 0; i < D / 2; ++i) inv_freq[i] = static_cast<float>(std::pow(100000.0, -2.0 * i / D));
  const std::vector<int32_t> tokens = {1, 2, 3, 4}, slots = {0, 1, 2, 3};
  const AttentionPlan plan = positions_only_plan({0, 5, 1000, 65000});
  std::vector<float> qo[2], ko[2], vo[2];
  for (int i = 0; i < 2; ++i) {
    Backend& be = i == 0 ? *b.cpu : *b.gpu;
    const DeviceTensor in = put(be, qkv, Shape{T, (Hq + 2 * Hkv) * D});
    const DeviceTensor qt = be.allocate(be.activation_dtype(), Shape{T, Hq, D});
    const DeviceTensor kt = be.allocate(be.activation_dtype(), Shape{T, Hkv, D});
    const DeviceTensor vt = be.allocate(be.activation_dtype(), Shape{T, Hkv, D});
    const DeviceTensor f = put(be, inv_freq, Shape{D / 2}, true);
    be.begin_step(StepInput{tokens, slots, &plan, {}});
    be.split_qkv_rope(in.view(), f.view(), qt.view(), kt.view(), vt.view());
    qo[i] = get(be, qt.view());
    ko[i] = get(be, kt.view());
    vo[i] = get(be, vt.view());
  }
  expect_close(compare(qo[1], qo[0], kBf16Rel, 1e-4), "rope q");
  expect_close(compare(ko[1], ko[0], kBf16Rel, 1e-4), "rope k");
  EXPECT_EQ(vo[1], vo[0]);  // v is copied, bit for bit
}

TEST(CudaOps, KvWriteAndCopyBlocksMatchCpu) {
  CANOPY_SKIP_WITHOUT_GPU();
  Backends b;
  std::mt19937_64 rng(test_seed());
  const KvLayout layout{6, 16, 3, 64};
  const auto elems = static_cast<int64_t>(layout.layer_elems());
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5}, slots = {3, 17, -1, 95, 40};
  const int64_t T = 5;
  const AttentionPlan plan = positions_only_plan({0, 1, 2, 3, 4});
  const std::vector<float> k = bf16_values(rng, T * 3 * 64), v = bf16_values(rng, T * 3 * 64);
  const std::vector<float> kc = bf16_values(rng, static_cast<size_t>(elems)), vc = bf16_values(rng, static_cast<size_t>(elems));
  // A chain: block 4 ends as block 0 was (through block 2), as sequential copies would leave it.
  const std::vector<int32_t> src = {0, 2, 5}, dst = {2, 4, 1};
  std::vector<float> ko[2], vo[2];
  for (int i = 0; i < 2; ++i) {
    Backend& be = i == 0 ? *b.cpu : *b.gpu;
    const DeviceTensor kt = put(be, k, Shape{T, 3, 64}), vt = put(be, v, Shape{T, 3, 64});
    const DeviceTensor kct = put(be, kc, Shape{6, 3, 16, 64}), vct = put(be, vc, Shape{6, 3, 16, 64});
    be.begin_step(StepInput{tokens, slots, &plan, {}});
    be.kv_write(kt.view(), vt.view(), kct.view(), vct.view(), layout);
    be.copy_blocks(kct.view(), layout, src, dst);
    be.copy_blocks(vct.view(), layout, src, dst);
    ko[i] = get(be, kct.view());
    vo[i] = get(be, vct.view());
  }
  EXPECT_EQ(ko[1], ko[0]);
  EXPECT_EQ(vo[1], vo[0]);
}

TEST(CudaOps, SwigluMatchesCpu) {
  CANOPY_SKIP_WITHOUT_GPU();
  Backends b;
  std::mt19937_64 rng(test_seed());
  const int64_t T = 3, I = 1536;
  const std::vector<float> gate_up = bf16_values(rng, T * 2 * I, -8.0f, 8.0f);
  std::vector<float> out[2];
  for (int i = 0; i < 2; ++i) {
    Backend& be = i == 0 ? *b.cpu : *b.gpu;
    const DeviceTensor g = put(be, gate_up, Shape{T, 2 * I});
    const DeviceTensor o = put(be, nan_filled(T * I), Shape{T, I});
    be.swiglu(g.view(), o.view());
    out[i] = get(be, o.view());
  }
  expect_close(compare(out[1], out[0], kBf16Rel, 1e-6), "swiglu");
}

TEST(CudaOps, FinalLogitsMatchCpu) {
  CANOPY_SKIP_WITHOUT_GPU();
  Backends b;
  std::mt19937_64 rng(test_seed());
  const int64_t T = 5, H = 576, V = 4099;
  const std::vector<float> residual = bf16_values(rng, T * H, -3.0f, 3.0f), delta = bf16_values(rng, T * H);
  const std::vector<float> norm = random_floats(rng, H, 0.5f, 1.5f), head = bf16_values(rng, V * H);
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5}, slots = {0, 1, 2, 3, 4}, rows = {4, 0, 4};
  const AttentionPlan plan = positions_only_plan({0, 1, 2, 3, 4});
  const auto R = static_cast<int64_t>(rows.size());
  std::vector<float> logits[2];
  for (int i = 0; i < 2; ++i) {
    Backend& be = i == 0 ? *b.cpu : *b.gpu;
    const DeviceTensor r = put(be, residual, Shape{T, H}), d = put(be, delta, Shape{T, H});
    const DeviceTensor w = put(be, norm, Shape{H}, true), lm = put(be, head, Shape{V, H});
    const DeviceTensor out = be.upload(nan_filled(R * V).data(), Shape{R, V}, DType::F32);
    be.begin_step(StepInput{tokens, slots, &plan, rows});
    be.final_logits(r.view(), d.view(), w.view(), 1e-5f, lm.view(), out.view());
    logits[i] = get(be, out.view());
  }
  // Floor: the normalized rows are rounded to bf16 on the GPU (2^-8 each), then multiplied.
  std::vector<double> floor(logits[0].size());
  for (int64_t r = 0; r < R; ++r) {
    const int64_t t = rows[static_cast<size_t>(r)];
    std::vector<double> x(H);
    double ss = 0.0;
    for (int64_t h = 0; h < H; ++h) ss += (x[h] = residual[t * H + h] + delta[t * H + h]) * x[h];
    const double inv = 1.0 / std::sqrt(ss / H + 1e-5);
    for (int64_t v = 0; v < V; ++v) {
      double s = 0.0;
      for (int64_t h = 0; h < H; ++h) s += std::abs(x[h] * inv * norm[h] * head[v * H + h]);
      floor[r * V + v] = s / 128.0;
    }
  }
  expect_close(compare(logits[1], logits[0], 0.0, floor), "final_logits");
}

// The forest attention through the backend: a decode token and a prefill chunk of two sequences
// over paged KV (the kernel's own tests are the attention helper's; this checks the adapter).
TEST(CudaOps, AttentionMatchesCpu) {
  CANOPY_SKIP_WITHOUT_GPU();
  Backends b;
  std::mt19937_64 rng(test_seed());
  const KvLayout layout{8, 16, 2, 64};
  const AttentionShape shape{4, 2, 64, 0.125f};
  // Sequence 0: 20 cached tokens in blocks 3, 5, decodes token 20. Sequence 1: 5 cached tokens
  // in block 1, prefills 3 (positions 5..7).
  AttentionPlan plan;
  plan.num_tokens = 4;
  plan.q_positions = {20, 5, 6, 7};
  plan.kv_pages = {3, 5, 1};
  plan.q_tokens = {0, 1, 2, 3};
  plan.items.push_back(AttentionItem{0, 21, 0, 0, 1, 0, 0, 0});
  plan.items.push_back(AttentionItem{2, 8, 0, 1, 3, 1, 1, 1});
  plan.num_slots = 4;
  plan.merge_offsets = {0, 1, 2, 3, 4};
  plan.merge_slots = {0, 1, 2, 3};
  const std::vector<int32_t> tokens = {1, 2, 3, 4}, slots = {5 * 16 + 4, 16 + 5, 16 + 6, 16 + 7};
  const auto elems = static_cast<int64_t>(layout.layer_elems());
  const std::vector<float> kc = bf16_values(rng, static_cast<size_t>(elems)), vc = bf16_values(rng, static_cast<size_t>(elems));
  const std::vector<float> q = bf16_values(rng, 4 * 4 * 64), k = bf16_values(rng, 4 * 2 * 64), v = bf16_values(rng, 4 * 2 * 64);
  std::vector<float> out[2];
  for (int i = 0; i < 2; ++i) {
    Backend& be = i == 0 ? *b.cpu : *b.gpu;
    const DeviceTensor kct = put(be, kc, Shape{8, 2, 16, 64}), vct = put(be, vc, Shape{8, 2, 16, 64});
    const DeviceTensor qt = put(be, q, Shape{4, 4, 64}), kt = put(be, k, Shape{4, 2, 64}), vt = put(be, v, Shape{4, 2, 64});
    const DeviceTensor o = put(be, nan_filled(4 * 4 * 64), Shape{4, 4, 64});
    be.set_attention_geometry(shape, layout);
    be.begin_step(StepInput{tokens, slots, &plan, {}});
    be.kv_write(kt.view(), vt.view(), kct.view(), vct.view(), layout);
    be.attention(qt.view(), kct.view(), vct.view(), layout, shape, o.view());
    out[i] = get(be, o.view());
  }
  // P is rounded to bf16 before P.V on the tensor cores: 2^-8 of max |v| (= 1) on top of the output rounding.
  expect_close(compare(out[1], out[0], kBf16Rel, 1.0 / 128.0), "attention");
}

TEST(CudaOps, RandomTensorsAreTheCpuOnesRounded) {
  CANOPY_SKIP_WITHOUT_GPU();
  Backends b;
  const DeviceTensor g = b.gpu->random_tensor(DType::BF16, Shape{3, 1000}, 0.25f, 77);
  const std::vector<float> got = get(*b.gpu, g.view());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(got[i], bf16_to_f32(f32_to_bf16(uniform_weight(77, i, 0.25f)))) << i;
}

// Greedy rows give the CPU sampler's token; sampled rows follow the sampler's arithmetic.
TEST(CudaOps, SampleMatchesCpuGreedyAndTheReference) {
  CANOPY_SKIP_WITHOUT_GPU();
  Backends b;
  std::mt19937_64 rng(test_seed());
  const int64_t R = 8, V = 49152;
  std::vector<float> logits = random_floats(rng, R * V, -10.0f, 10.0f);
  logits[3 * V + 100] = logits[3 * V + 40000] = 30.0f;  // a tie: the lower id
  std::vector<int32_t> which;
  std::vector<SamplingRow> params;
  for (int64_t r = 0; r < R; ++r) {
    which.push_back(static_cast<int32_t>(r));
    params.push_back(SamplingRow{0.0f, 0, 1.0f, 1, 0});
  }
  for (int64_t r = 0; r < R; ++r) {
    which.push_back(static_cast<int32_t>(r));
    params.push_back(SamplingRow{0.8f, static_cast<int32_t>(r * 100), r % 2 ? 0.9f : 1.0f, 5 + static_cast<uint64_t>(r), 3});
  }
  std::vector<SampledToken> cpu_out(params.size()), gpu_out(params.size());
  const DeviceTensor lc = b.cpu->upload(logits.data(), Shape{R, V}, DType::F32);
  const DeviceTensor lg = b.gpu->upload(logits.data(), Shape{R, V}, DType::F32);
  b.cpu->sample(lc.view(), which, params, cpu_out);
  b.gpu->sample(lg.view(), which, params, gpu_out);
  int mismatches = 0;
  for (size_t s = 0; s < params.size(); ++s) {
    if (params[s].temperature == 0.0f) {
      EXPECT_EQ(gpu_out[s].token, cpu_out[s].token) << "greedy row " << s;
      EXPECT_NEAR(gpu_out[s].logprob, cpu_out[s].logprob, 1e-3f);
      continue;
    }
    kernels::SamplerRow k{params[s].temperature, params[s].top_k, params[s].top_p, 0, params[s].seed, params[s].counter};
    mismatches += gpu_out[s].token != reference_sample(logits.data() + which[s] * V, static_cast<int>(V), k).token;
    EXPECT_NEAR(gpu_out[s].logprob, token_logprob_reference(logits.data() + which[s] * V, V, gpu_out[s].token), 1e-3f);
  }
  EXPECT_EQ(gpu_out[3].token, 100);
  EXPECT_LE(mismatches, 1) << "sampled rows that differ from the sequential reference (an ulp of expf)";
}

}  // namespace
}  // namespace canopy::testing
