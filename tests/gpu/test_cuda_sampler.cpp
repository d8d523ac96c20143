// The GPU sampler (kernels/sampling.h) on the device: agreement with the sequential reference of
// its arithmetic (sampling_reference.h; the device's expf may differ from the host's by an ulp, so
// a draw within an ulp of a boundary may differ), determinism, independence from the batch, and
// the distribution it draws from (a chi-square test against the exact probabilities).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include "backend/cuda/cuda_util.h"
#include "cuda_test_support.h"
#include "sampling_reference.h"

namespace canopy::testing {
namespace {

std::vector<kernels::SampleResult> sample_on_gpu(const std::vector<float>& logits, int vocab,
                                                 const std::vector<int32_t>& which,
                                                 const std::vector<kernels::SamplerRow>& cfg) {
  cuda::DeviceBuffer<float> d_logits(logits.size());
  cuda::DeviceBuffer<int32_t> d_which(which.size());
  cuda::DeviceBuffer<kernels::SamplerRow> d_cfg(cfg.size());
  cuda::DeviceBuffer<kernels::SampleResult> d_out(cfg.size());
  CANOPY_CUDA_CHECK(cudaMemcpy(d_logits.data(), logits.data(), logits.size() * 4, cudaMemcpyHostToDevice));
  CANOPY_CUDA_CHECK(cudaMemcpy(d_which.data(), which.data(), which.size() * 4, cudaMemcpyHostToDevice));
  CANOPY_CUDA_CHECK(cudaMemcpy(d_cfg.data(), cfg.data(), cfg.size() * sizeof(kernels::SamplerRow), cudaMemcpyHostToDevice));
  CANOPY_CUDA_CHECK(cudaMemset(d_out.data(), 0xff, cfg.size() * sizeof(kernels::SampleResult)));
  kernels::SampleParams p;
  p.logits = d_logits.data();
  p.logits_row = d_which.data();
  p.rows = d_cfg.data();
  p.out = d_out.data();
  p.num_samples = static_cast<int32_t>(cfg.size());
  p.num_rows = static_cast<int32_t>(logits.size() / static_cast<size_t>(vocab));
  p.vocab = vocab;
  p.mass_shift = kernels::sampling_mass_shift(vocab);
  CANOPY_CUDA_CHECK(kernels::launch_sample(p, nullptr));
  CANOPY_CUDA_CHECK(cudaDeviceSynchronize());
  return d_out.download(cfg.size());
}

kernels::SamplerRow params(float t, int k, float p, uint64_t seed, uint64_t counter) {
  kernels::SamplerRow r;
  r.temperature = t;
  r.top_k = k;
  r.top_p = p;
  r.seed = seed;
  r.counter = counter;
  return r;
}

TEST(CudaSampler, AgreesWithTheSequentialReference) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed());
  const int V = 128256;  // Llama 3's vocabulary
  std::vector<float> logits = random_floats(rng, 4 * static_cast<size_t>(V), -8.0f, 8.0f);
  for (int i = 0; i < V; ++i) logits[static_cast<size_t>(V) + i] = std::round(logits[static_cast<size_t>(V) + i]);  // ties
  std::vector<int32_t> which;
  std::vector<kernels::SamplerRow> cfg;
  uint64_t seed = 1;
  for (float t : {0.0f, 0.3f, 1.0f, 1.7f})
    for (int k : {0, 1, 20, 5000})
      for (float p : {1.0f, 0.95f, 0.5f})
        for (int row = 0; row < 4; ++row) {
          which.push_back(row);
          cfg.push_back(params(t, k, p, seed++, 3));
        }
  const auto out = sample_on_gpu(logits, V, which, cfg);
  int mismatches = 0;
  for (size_t s = 0; s < cfg.size(); ++s) {
    const auto ref = reference_sample(logits.data() + static_cast<size_t>(which[s]) * V, V, cfg[s]);
    ASSERT_GE(out[s].token, 0);
    ASSERT_LT(out[s].token, V);
    if (cfg[s].temperature == 0.0f || cfg[s].top_k == 1) {
      EXPECT_EQ(out[s].token, ref.token) << "greedy sample " << s;
    } else {
      mismatches += out[s].token != ref.token;
    }
    EXPECT_NEAR(out[s].logprob,
                token_logprob_reference(logits.data() + static_cast<size_t>(which[s]) * V, V, out[s].token), 2e-3f);
  }
  std::printf("[ measured ] GPU sampler vs the sequential reference: %d of %zu sampled draws differ\n", mismatches,
              cfg.size());
  EXPECT_LE(mismatches, 3);
}

TEST(CudaSampler, DeterministicAndIndependentOfTheBatch) {
  CANOPY_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(test_seed());
  const int V = 32000;
  const std::vector<float> logits = random_floats(rng, 3 * static_cast<size_t>(V), -5.0f, 5.0f);
  const auto alone = sample_on_gpu(logits, V, {1}, {params(0.8f, 50, 0.9f, 9, 4)});
  std::vector<int32_t> which;
  std::vector<kernels::SamplerRow> cfg;
  for (int i = 0; i < 300; ++i) {
    which.push_back(i % 3);
    cfg.push_back(i == 157 ? params(0.8f, 50, 0.9f, 9, 4) : params(1.0f, 0, 1.0f, static_cast<uint64_t>(i), 0));
  }
  const auto batch = sample_on_gpu(logits, V, which, cfg);
  const auto again = sample_on_gpu(logits, V, which, cfg);
  EXPECT_EQ(which[157], 1);
  EXPECT_EQ(batch[157].token, alone[0].token);
  EXPECT_EQ(batch[157].logprob, alone[0].logprob);
  for (size_t i = 0; i < batch.size(); ++i) EXPECT_EQ(batch[i].token, again[i].token) << i;
}

// 40000 draws from a 16-token distribution (temperature 0.7, top-k 12, top-p 0.9): the counts
// match the exact kept-and-renormalized probabilities (chi-square, 99.99th percentile bound).
TEST(CudaSampler, DrawsFromTheRightDistribution) {
  CANOPY_SKIP_WITHOUT_GPU();
  const int V = 16;
  std::vector<float> logits(V);
  for (int i = 0; i < V; ++i) logits[static_cast<size_t>(i)] = 0.37f * static_cast<float>((i * 7) % V) - 2.0f;
  const float T = 0.7f, top_p = 0.9f;
  const int top_k = 12;
  // Exact probabilities of the kept set (by the CPU sampler's definition, in double).
  std::vector<int> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  std::vector<double> w(V, 0.0);
  double total = 0.0;
  for (int j = 0; j < top_k; ++j) total += w[order[j]] = std::exp((logits[order[j]] - logits[order[0]]) / T);
  double cum = 0.0;
  std::vector<double> prob(V, 0.0);
  double kept = 0.0;
  for (int j = 0; j < top_k && cum < top_p * total; ++j) {
    cum += w[order[j]];
    prob[order[j]] = w[order[j]];
    kept += w[order[j]];
  }
  for (double& p : prob) p /= kept;
  const int N = 40000;
  std::vector<int32_t> which(N, 0);
  std::vector<kernels::SamplerRow> cfg;
  for (int i = 0; i < N; ++i) cfg.push_back(params(T, top_k, top_p, 2024, static_cast<uint64_t>(i)));
  const auto out = sample_on_gpu(logits, V, which, cfg);
  std::vector<int> count(V, 0);
  for (const auto& r : out) ++count[static_cast<size_t>(r.token)];
  double chi2 = 0.0;
  int dof = -1;
  for (int i = 0; i < V; ++i) {
    if (prob[i] == 0.0) {
      EXPECT_EQ(count[i], 0) << "token " << i << " is outside the kept set";
      continue;
    }
    const double e = prob[i] * N;
    chi2 += (count[i] - e) * (count[i] - e) / e;
    ++dof;
  }
  std::printf("[ measured ] GPU sampler: chi-square %.1f with %d degrees of freedom over %d draws\n", chi2, dof, N);
  EXPECT_LT(chi2, 45.0);  // the 99.99th percentile of chi-square with <= 11 degrees of freedom is ~35.3
}

}  // namespace
}  // namespace canopy::testing
