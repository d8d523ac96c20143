#include "attention_check.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "attention/cpu_attention.h"
#include "core/dtype.h"

namespace canopy::testing {

void fill_random(AttentionCase& c, std::mt19937_64& rng, float q_scale) {
  const size_t q_elems = static_cast<size_t>(c.plan.num_tokens) * c.shape.num_q_heads * c.shape.head_dim;
  c.q = random_bf16(rng, q_elems, -q_scale, q_scale);
  c.k = random_bf16(rng, c.layout.layer_elems(), -1.0f, 1.0f);
  c.v = random_bf16(rng, c.layout.layer_elems(), -1.0f, 1.0f);
}

Reference compute_reference(const AttentionCase& c) {
  Reference r;
  const auto qf = bf16_to_f32(c.q);
  const auto kf = bf16_to_f32(c.k);
  const auto vf = bf16_to_f32(c.v);
  AttentionPartials partials;
  r.out.resize(qf.size());
  r.lse.resize(static_cast<size_t>(c.plan.num_tokens) * c.shape.num_q_heads);
  run_attention_plan_cpu(c.plan, c.shape, c.layout, qf.data(), kf.data(), vf.data(), partials, r.out.data(),
                         r.lse.data());
  r.partial_o = partials.o;
  r.partial_lse = partials.lse;
  emulate_bf16_plan(c.plan, c.shape, c.layout, qf.data(), kf.data(), vf.data(), r.emu_partial_o, r.emu_partial_lse,
                    r.emu_out, r.emu_lse);
  return r;
}

namespace {

const char* mode_name(kernels::ForestOutputMode m) {
  return m == kernels::ForestOutputMode::kFusedMerge ? "fused" : "partials";
}

void expect_close(const std::string& what, const ErrorStats& got, const ErrorStats& plain) {
  const double bound = kErrFactor * plain.max_abs + kErrFloor;
  std::printf("  %-58s kernel %s | plain-bf16 max|err| %.3g | bound %.3g\n", what.c_str(), got.str().c_str(),
              plain.max_abs, bound);
  EXPECT_EQ(got.nonfinite, 0) << what << ": NaN in the output (unwritten or poisoned element)";
  EXPECT_EQ(got.mismatched_inf, 0) << what << ": an infinity where the reference has none (or the reverse)";
  EXPECT_LE(got.max_abs, bound) << what << ": " << got.str();
  EXPECT_LT(got.rel_l2(), kRelL2Tol) << what << ": " << got.str();
}

void expect_lse_close(const std::string& what, const ErrorStats& got) {
  std::printf("  %-58s kernel %s | bound %.3g\n", what.c_str(), got.str().c_str(), kLseTol);
  EXPECT_EQ(got.nonfinite, 0) << what << ": NaN in the LSE (unwritten or poisoned element)";
  EXPECT_EQ(got.mismatched_inf, 0) << what << ": empty-part LSE (-inf) mismatch";
  EXPECT_LE(got.max_abs, kLseTol) << what << ": " << got.str();
}

}  // namespace

void check_result(const AttentionCase& c, const Reference& ref, kernels::ForestOutputMode mode,
                  const GpuAttentionResult& gpu, const char* backend) {
  std::printf("[%s, %s, %s] %s\n", c.label.c_str(), mode_name(mode), backend, gpu.launch_plan.summary().c_str());
  const std::string tag = c.label + " " + mode_name(mode);
  expect_close(tag + " out", compare(gpu.out.data(), ref.out.data(), ref.out.size()),
               compare(ref.emu_out.data(), ref.out.data(), ref.out.size()));
  expect_lse_close(tag + " lse", compare(gpu.lse.data(), ref.lse.data(), ref.lse.size()));
  EXPECT_TRUE(gpu.counters_clear) << tag << ": merge counters not back to zero after the launch";
  if (mode == kernels::ForestOutputMode::kPartials && gpu.launch_plan.split_items == 0) {
    // Without splits the launch's first plan.num_slots slots are exactly the plan's.
    const size_t po = ref.partial_o.size();
    const size_t pl = ref.partial_lse.size();
    EXPECT_GE(gpu.partial_o.size(), po);
    if (gpu.partial_o.size() >= po && gpu.partial_lse.size() >= pl) {
      expect_close(tag + " partial O", compare(gpu.partial_o.data(), ref.partial_o.data(), po),
                   compare(ref.emu_partial_o.data(), ref.partial_o.data(), po));
      expect_lse_close(tag + " partial LSE", compare(gpu.partial_lse.data(), ref.partial_lse.data(), pl));
    }
  }
}

GpuAttentionResult check_case(const AttentionCase& c, const Reference& ref, kernels::ForestOutputMode mode,
                              const cuda::ForestLaunchOptions* options, int repeats) {
  const cuda::ForestLaunchOptions base = options != nullptr ? *options : device_options(c.shape.head_dim);
  GpuAttentionResult gpu;
  for (const cuda::ForestLaunchOptions& o : kernel_variants(base, c.shape.head_dim)) {
    gpu = run_plan_on_gpu(c.plan, c.shape, c.layout, c.q, c.k, c.v, mode, &o, repeats);
    EXPECT_EQ(gpu.launch_plan.kernel, o.kernel);
    check_result(c, ref, mode, gpu, (std::string("gpu ") + variant_name(o)).c_str());
  }
  return gpu;
}

void expect_outputs_agree(const std::string& what, const std::vector<float>& a, const std::vector<float>& b,
                          const Reference& ref) {
  ASSERT_EQ(a.size(), b.size());
  const ErrorStats plain = compare(ref.emu_out.data(), ref.out.data(), ref.out.size());
  const ErrorStats d = compare(a.data(), b.data(), a.size());
  const double bound = 2.0 * (kErrFactor * plain.max_abs + kErrFloor);
  std::printf("  %-58s difference %s | bound %.3g\n", what.c_str(), d.str().c_str(), bound);
  EXPECT_EQ(d.nonfinite, 0) << what;
  EXPECT_LE(d.max_abs, bound) << what << ": " << d.str();
}

}  // namespace canopy::testing
