// The model kernels' own source on the host SIMT emulator (emulated_model_kernels.h), against CPU
// references: these run wherever the CUDA backend builds, no device needed. Inputs are rounded to
// bf16 first, so a kernel and its reference see the same values and differ only in the order of
// f32 operations and the final bf16 rounding: results must agree to one bf16 ulp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "emulated_model_kernels.h"
#include "sampling_reference.h"
#include "testing/testing.h"

namespace canopy::testing {
namespace {

constexpr uint16_t kPoison = 0xffff;  // a bf16 NaN: any element a kernel fails to write shows

std::vector<uint16_t> random_bf16(std::mt19937_64& rng, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::vector<uint16_t> v(n);
  const std::vector<float> f = random_floats(rng, n, lo, hi);
  for (size_t i = 0; i < n; ++i) v[i] = f32_to_bf16(f[i]);
  return v;
}

std::vector<float> to_f32(const std::vector<uint16_t>& v) {
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = bf16_to_f32(v[i]);
  return f;
}

float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// |got - want| within one bf16 ulp of want (a rounding boundary crossed by f32 noise).
void expect_bf16_close(float got, float want, const char* what, size_t index) {
  const float ulp = std::ldexp(1.0f, std::ilogb(std::max(std::abs(want), 1e-30f)) - 7);
  EXPECT_LE(std::abs(got - want), ulp) << what << " element " << index << ": got " << got << ", want " << want;
}

TEST(EmulatedModelKernels, RandomFillIsTheHostFormula) {
  const int64_t n = 5000;  // not a multiple of a CTA's 2048 elements
  std::vector<float> f32v(n, std::nanf(""));
  std::vector<uint16_t> b16(n, kPoison);
  kernels::RandomFillParams p;
  p.count = n;
  p.seed = 1234;
  p.scale = 0.37f;
  p.out = f32v.data();
  p.out_bf16 = 0;
  emulate_random_fill(p);
  p.out = b16.data();
  p.out_bf16 = 1;
  emulate_random_fill(p);
  for (int64_t i = 0; i < n; ++i) {
    const float want = uniform_weight(1234, static_cast<uint64_t>(i), 0.37f);
    ASSERT_EQ(f32v[i], want) << i;
    ASSERT_EQ(b16[i], f32_to_bf16(want)) << i;
    ASSERT_LT(std::abs(want), 0.37f);
  }
}

TEST(EmulatedModelKernels, EmbedCopiesRowsAndZeroesIdsOutsideTheVocabulary) {
  std::mt19937_64 rng(test_seed());
  const int64_t V = 7, H = 24;
  const std::vector<uint16_t> table = random_bf16(rng, V * H);
  const std::vector<int32_t> tokens = {3, 0, 6, -1, 7};
  std::vector<uint16_t> out(tokens.size() * H, kPoison);
  kernels::EmbedParams p;
  p.table = table.data();
  p.tokens = tokens.data();
  p.out = out.data();
  p.num_tokens = static_cast<int32_t>(tokens.size());
  p.vocab = V;
  p.hidden = H;
  emulate_embed(p);
  for (size_t t = 0; t < tokens.size(); ++t)
    for (int64_t h = 0; h < H; ++h) {
      const uint16_t want = tokens[t] >= 0 && tokens[t] < V ? table[tokens[t] * H + h] : 0;
      ASSERT_EQ(out[t * H + h], want) << "token " << t << " element " << h;
    }
}

void check_rms_norm(int64_t T, int64_t H) {
  std::mt19937_64 rng(test_seed() + static_cast<uint64_t>(H));
  std::vector<uint16_t> residual = random_bf16(rng, T * H, -2.0f, 2.0f);
  const std::vector<uint16_t> delta = random_bf16(rng, T * H, -1.0f, 1.0f);
  const std::vector<float> weight = random_floats(rng, H, 0.5f, 1.5f);
  const std::vector<uint16_t> residual_in = residual;
  std::vector<uint16_t> out(T * H, kPoison);
  kernels::RmsNormParams p;
  p.residual = residual.data();
  p.delta = delta.data();
  p.weight = weight.data();
  p.out = out.data();
  p.rows = static_cast<int32_t>(T);
  p.hidden = static_cast<int32_t>(H);
  p.eps = 1e-5f;
  p.write_residual = 1;
  emulate_rms_norm(p);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<float> x(H);
    double ss = 0.0;
    for (int64_t h = 0; h < H; ++h) {
      x[h] = round_bf16(bf16_to_f32(residual_in[t * H + h]) + bf16_to_f32(delta[t * H + h]));
      ss += static_cast<double>(x[h]) * x[h];
      ASSERT_EQ(bf16_to_f32(residual[t * H + h]), x[h]) << "residual write-back, row " << t;
    }
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(H) + 1e-5);
    for (int64_t h = 0; h < H; ++h)
      expect_bf16_close(bf16_to_f32(out[t * H + h]), round_bf16(static_cast<float>(weight[h] * (x[h] * inv))), "norm",
                        static_cast<size_t>(t * H + h));
  }

  // The final norm: gathered rows, residual + delta not written back.
  const std::vector<int32_t> rows = {static_cast<int32_t>(T - 1), 0};
  std::vector<uint16_t> gathered(rows.size() * H, kPoison);
  residual = residual_in;
  p.residual = residual.data();
  p.row_map = rows.data();
  p.rows = static_cast<int32_t>(rows.size());
  p.out = gathered.data();
  p.write_residual = 0;
  emulate_rms_norm(p);
  EXPECT_EQ(residual, residual_in);
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t t = rows[r];
    std::vector<float> x(H);
    double ss = 0.0;
    for (int64_t h = 0; h < H; ++h) {
      x[h] = round_bf16(bf16_to_f32(residual_in[t * H + h]) + bf16_to_f32(delta[t * H + h]));
      ss += static_cast<double>(x[h]) * x[h];
    }
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(H) + 1e-5);
    for (int64_t h = 0; h < H; ++h)
      expect_bf16_close(bf16_to_f32(gathered[r * H + h]), round_bf16(static_cast<float>(weight[h] * (x[h] * inv))),
                        "final norm", r * H + h);
  }
}

TEST(EmulatedModelKernels, AddRmsNormMatchesReference) {
  check_rms_norm(3, 40);    // fewer elements than threads
  check_rms_norm(2, 2064);  // more than one pass of 256 threads x 8
}

TEST(EmulatedModelKernels, RopeMatchesCpuReference) {
  std::mt19937_64 rng(test_seed());
  const int T = 3, Hq = 4, Hkv = 2, D = 64;
  const int row = (Hq + 2 * Hkv) * D;
  const std::vector<uint16_t> qkv = random_bf16(rng, T * row);
  std::vector<uint16_t> q(T * Hq * D, 0xffff), k(T * Hkv * D, 0xffff), v(T * Hkv * D, 0xffff);
  const std::vector<int32_t> positions = {0, 7, 100000};
  std::vector<float> inv_freq(D / 2);
  for (int i = 0; i < D / 2; ++i) inv_freq[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / D));
  // The reference: split each token's row, then rotate q and k.
  std::vector<float> q_ref, k_ref, v_ref;
  const std::vector<float> all = to_f32(qkv);
  for (int t = 0; t < T; ++t) {
    const auto at = all.begin() + t * row;
    q_ref.insert(q_ref.end(), at, at + Hq * D);
    k_ref.insert(k_ref.end(), at + Hq * D, at + (Hq + Hkv) * D);
    v_ref.insert(v_ref.end(), at + (Hq + Hkv) * D, at + row);
  }
  cpu::rope_f32(q_ref.data(), positions.data(), inv_freq.data(), T, Hq, D);
  cpu::rope_f32(k_ref.data(), positions.data(), inv_freq.data(), T, Hkv, D);
  kernels::RopeParams p;
  p.qkv = qkv.data();
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.positions = positions.data();
  p.inv_freq = inv_freq.data();
  p.num_tokens = T;
  p.num_q_heads = Hq;
  p.num_kv_heads = Hkv;
  p.head_dim = D;
  emulate_rope(p);
  for (size_t i = 0; i < q.size(); ++i) expect_bf16_close(bf16_to_f32(q[i]), round_bf16(q_ref[i]), "q", i);
  for (size_t i = 0; i < k.size(); ++i) expect_bf16_close(bf16_to_f32(k[i]), round_bf16(k_ref[i]), "k", i);
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(bf16_to_f32(v[i]), v_ref[i]) << "v " << i;
}

TEST(EmulatedModelKernels, KvWriteScattersTokensAndSkipsPadding) {
  std::mt19937_64 rng(test_seed());
  const KvLayout layout{3, 4, 2, 16};
  const std::vector<int32_t> slots = {5, -1, 0, 11};
  const int T = static_cast<int>(slots.size());
  const std::vector<uint16_t> k = random_bf16(rng, T * 2 * 16), v = random_bf16(rng, T * 2 * 16);
  std::vector<uint16_t> kc(layout.layer_elems(), 0xabcd), vc(layout.layer_elems(), 0xabcd);
  kernels::KvWriteParams p;
  p.k = k.data();
  p.v = v.data();
  p.k_cache = kc.data();
  p.v_cache = vc.data();
  p.slots = slots.data();
  p.num_tokens = T;
  p.num_kv_heads = layout.num_kv_heads;
  p.head_dim = layout.head_dim;
  p.block_size = layout.block_size;
  p.num_blocks = layout.num_blocks;
  emulate_kv_write(p);
  std::vector<uint16_t> kw(layout.layer_elems(), 0xabcd), vw(layout.layer_elems(), 0xabcd);
  for (int t = 0; t < T; ++t) {
    if (slots[t] < 0) continue;
    for (int h = 0; h < 2; ++h)
      for (int d = 0; d < 16; ++d) {
        const size_t dst = layout.offset(slots[t] / 4, h, slots[t] % 4) + d;
        kw[dst] = k[(t * 2 + h) * 16 + d];
        vw[dst] = v[(t * 2 + h) * 16 + d];
      }
  }
  EXPECT_EQ(kc, kw);
  EXPECT_EQ(vc, vw);
}

TEST(EmulatedModelKernels, CopyBlocksCopiesWholeBlocks) {
  std::mt19937_64 rng(test_seed());
  const int64_t block_elems = 2 * 4 * 16 * 9;  // several CTAs per block (1152 elements, 144 vectors)
  std::vector<uint16_t> cache = random_bf16(rng, 5 * block_elems);
  std::vector<uint16_t> want = cache;
  kernels::CopyBlocksParams p;
  p.cache = cache.data();
  p.block_elems = block_elems;
  p.num_blocks = 5;
  p.num_pairs = 2;
  p.src[0] = 0;
  p.dst[0] = 3;
  p.src[1] = 4;
  p.dst[1] = 1;
  emulate_copy_blocks(p);
  std::copy(want.begin(), want.begin() + block_elems, want.begin() + 3 * block_elems);
  std::copy(want.begin() + 4 * block_elems, want.begin() + 5 * block_elems, want.begin() + block_elems);
  EXPECT_EQ(cache, want);
}

TEST(EmulatedModelKernels, SwigluMatchesCpuReference) {
  for (int64_t I : {24, 2056}) {
    std::mt19937_64 rng(test_seed() + static_cast<uint64_t>(I));
    const int64_t T = 2;
    const std::vector<uint16_t> gate_up = random_bf16(rng, T * 2 * I, -6.0f, 6.0f);
    std::vector<uint16_t> out(T * I, kPoison);
    std::vector<float> ref(T * I);
    cpu::swiglu_f32(to_f32(gate_up).data(), ref.data(), T, I);
    kernels::SwigluParams p;
    p.gate_up = gate_up.data();
    p.out = out.data();
    p.num_tokens = static_cast<int32_t>(T);
    p.inter = I;
    emulate_swiglu(p);
    for (size_t i = 0; i < out.size(); ++i) expect_bf16_close(bf16_to_f32(out[i]), round_bf16(ref[i]), "swiglu", i);
  }
}

// ---- sampling

std::vector<kernels::SampleResult> run_sampler(const std::vector<float>& logits, int vocab,
                                               const std::vector<int32_t>& rows_of_samples,
                                               const std::vector<kernels::SamplerRow>& cfg) {
  std::vector<kernels::SampleResult> out(cfg.size(), kernels::SampleResult{-7, 0.0f});
  kernels::SampleParams p;
  p.logits = logits.data();
  p.logits_row = rows_of_samples.data();
  p.rows = cfg.data();
  p.out = out.data();
  p.num_samples = static_cast<int32_t>(cfg.size());
  p.num_rows = static_cast<int32_t>(logits.size() / static_cast<size_t>(vocab));
  p.vocab = vocab;
  p.mass_shift = kernels::sampling_mass_shift(vocab);
  emulate_sample(p);
  return out;
}

kernels::SamplerRow row_params(float temperature, int top_k, float top_p, uint64_t seed, uint64_t counter) {
  kernels::SamplerRow r;
  r.temperature = temperature;
  r.top_k = top_k;
  r.top_p = top_p;
  r.seed = seed;
  r.counter = counter;
  return r;
}

TEST(EmulatedSampler, MassShiftKeepsTheTotalBelow2To62) {
  EXPECT_EQ(kernels::sampling_mass_shift(1), 62);
  EXPECT_EQ(kernels::sampling_mass_shift(2), 61);
  EXPECT_EQ(kernels::sampling_mass_shift(1000), 52);
  EXPECT_EQ(kernels::sampling_mass_shift(1024), 52);
  EXPECT_EQ(kernels::sampling_mass_shift(128256), 45);
}

TEST(EmulatedSampler, GreedyIsTheLowestArgmaxWithItsLogprob) {
  std::mt19937_64 rng(test_seed());
  const int V = 1000;
  std::vector<float> logits = random_floats(rng, 3 * V, -5.0f, 5.0f);
  logits[417] = 9.0f;  // row 0: a clear maximum
  logits[V + 12] = logits[V + 800] = 9.5f;  // row 1: a tie, the lower id wins
  logits[V + 5] = std::nanf("");             // NaN is never the max
  for (int i = 0; i < V; ++i) logits[2 * V + i] = -std::numeric_limits<float>::infinity();  // row 2: nothing
  const auto out = run_sampler(logits, V, {0, 1, 2, 0}, {row_params(0.0f, 0, 1.0f, 1, 0), row_params(0.0f, 0, 1.0f, 1, 0),
                                                          row_params(0.7f, 0, 1.0f, 1, 0), row_params(1.0f, 1, 1.0f, 9, 3)});
  EXPECT_EQ(out[0].token, 417);
  EXPECT_EQ(out[1].token, 12);
  EXPECT_EQ(out[2].token, 0);
  EXPECT_EQ(out[2].logprob, -std::numeric_limits<float>::infinity());
  EXPECT_EQ(out[3].token, 417);  // top_k == 1 is greedy
  for (int s : {0, 1, 3}) {
    const int row = s == 1 ? 1 : 0;
    const auto ref = reference_sample(logits.data() + row * V, V, row_params(0.0f, 0, 1.0f, 0, 0));
    EXPECT_NEAR(out[s].logprob, ref.logprob, 1e-4f) << s;
  }
}

TEST(EmulatedSampler, MatchesTheSequentialReferenceExactly) {
  std::mt19937_64 rng(test_seed());
  const int V = 300;
  std::vector<float> logits = random_floats(rng, 2 * V, -4.0f, 4.0f);
  // Row 1: heavy ties (values on a coarse grid), so top-k and top-p cut inside groups of equals.
  for (int i = 0; i < V; ++i) logits[V + i] = std::round(logits[V + i]);
  logits[7] = std::nanf("");
  std::vector<int32_t> which;
  std::vector<kernels::SamplerRow> cfg;
  uint64_t seed = 100;
  for (float t : {0.5f, 1.0f, 2.0f})
    for (int k : {0, 2, 37, 299})
      for (float top_p : {1.0f, 0.9f, 0.3f})
        for (int row = 0; row < 2; ++row) {
          which.push_back(row);
          cfg.push_back(row_params(t, k, top_p, seed++, static_cast<uint64_t>(row) * 7));
        }
  const auto out = run_sampler(logits, V, which, cfg);
  for (size_t s = 0; s < cfg.size(); ++s) {
    const auto ref = reference_sample(logits.data() + which[s] * V, V, cfg[s]);
    EXPECT_EQ(out[s].token, ref.token) << "sample " << s << " T=" << cfg[s].temperature << " k=" << cfg[s].top_k
                                       << " p=" << cfg[s].top_p << " row " << which[s];
    EXPECT_NEAR(out[s].logprob, ref.logprob, 1e-4f) << s;
  }
}

TEST(EmulatedSampler, TopKAndTopPKeepOnlyTheirSets) {
  const int V = 50;
  std::vector<float> logits(V);
  for (int i = 0; i < V; ++i) logits[i] = static_cast<float>(i % 10);  // five ids share each value
  std::vector<int32_t> which;
  std::vector<kernels::SamplerRow> cfg;
  for (uint64_t c = 0; c < 24; ++c) {
    which.push_back(0);
    cfg.push_back(row_params(5.0f, 7, 1.0f, 42, c));  // top 7: the five 9s and the two lowest-id 8s
  }
  for (uint64_t c = 0; c < 24; ++c) {
    which.push_back(0);
    cfg.push_back(row_params(1.0f, 0, 0.05f, 43, c));  // a small nucleus: a 9 of the lowest ids
  }
  const auto out = run_sampler(logits, V, which, cfg);
  for (size_t s = 0; s < 24; ++s) {
    const int t = out[s].token;
    EXPECT_TRUE(t % 10 == 9 || t == 8 || t == 18) << "top-k sample " << s << " drew " << t;
  }
  for (size_t s = 24; s < out.size(); ++s) {
    EXPECT_EQ(out[s].token % 10, 9) << "top-p sample " << s;
    EXPECT_EQ(out[s].token, reference_sample(logits.data(), V, cfg[s]).token);
  }
}

TEST(EmulatedSampler, ASampleDependsOnlyOnItsRowAndParameters) {
  std::mt19937_64 rng(test_seed());
  const int V = 2000;  // not a multiple of the 16 warps' ranges
  const std::vector<float> logits = random_floats(rng, 3 * V, -3.0f, 3.0f);
  const auto a = run_sampler(logits, V, {2}, {row_params(0.9f, 500, 0.95f, 5, 11)});
  const auto b = run_sampler(logits, V, {0, 2, 1, 2},
                             {row_params(1.0f, 0, 1.0f, 1, 1), row_params(0.9f, 500, 0.95f, 5, 11),
                              row_params(0.5f, 3, 1.0f, 2, 2), row_params(0.9f, 500, 0.95f, 5, 11)});
  EXPECT_EQ(a[0].token, b[1].token);
  EXPECT_EQ(a[0].token, b[3].token);
  EXPECT_EQ(a[0].logprob, b[1].logprob);
  EXPECT_EQ(a[0].token, reference_sample(logits.data() + 2 * V, V, row_params(0.9f, 500, 0.95f, 5, 11)).token);
}

}  // namespace
}  // namespace canopy::testing
