// Decode attention benchmark of one layer over a prefix forest (bf16, paged KV, block size 16):
// canopy's forest kernels in several variants (v1 mma.sync / v2 wgmma, fused merge / partials +
// merge kernel, v2 with a given number of tensor CTAs, v2 on the shared nodes alone or the leaves
// alone to measure each resource's rate), and with sharing off (every sequence reads its own copy
// of its whole path), next to the floor max(bytes / bandwidth, FLOPs / peak). Every variant's
// output is compared with the first full variant's. Writes one JSON object per shape; the PyTorch
// and FlashInfer columns come from peers.py, the table from report.py (bench/attention/README.md).
//
//   bench_attention --out canopy.json [--repeats 30] [--only "32/8 B=1024"] [--quick]
//                   [--variants v1u,v1,v2u,v2,v2-prefix,v2-leaves,v2-tc66] [--no-flat]
#include <CLI/CLI.hpp>
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/cuda/cuda_util.h"
#include "backend/cuda/forest_attention_runner.h"
#include "bench_device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "forest_workload.h"

namespace canopy::bench {
namespace {

using testing::Forest;
using testing::ForestDecode;

struct BenchShape {
  std::string name;
  int hq = 0, hkv = 0, d = 128;
  std::string kind;  // "two-level" or "tree"
  int B = 0, P = 0, U = 0;  // two-level: B sequences, P shared, U unique
  Forest forest;
};

std::vector<BenchShape> all_shapes(bool quick) {
  struct Heads { int hq, hkv; };
  struct Grid { int B, P, U; };
  const std::vector<Heads> heads{{32, 8}, {40, 40}};
  std::vector<Grid> grid{{256, 1024, 128}, {512, 2048, 128},  {1024, 4096, 128},
                         {2048, 4096, 128}, {1024, 16384, 128}, {4096, 8192, 64}};
  if (quick) grid = {{256, 1024, 128}, {1024, 4096, 128}};
  std::vector<BenchShape> shapes;
  for (const Heads& h : heads) {
    for (const Grid& g : grid) {
      BenchShape s;
      s.name = fmt::format("{}/{} B={} P={} U={}", h.hq, h.hkv, g.B, g.P, g.U);
      s.hq = h.hq;
      s.hkv = h.hkv;
      s.kind = "two-level";
      s.B = g.B;
      s.P = g.P;
      s.U = g.U;
      s.forest = testing::two_level_forest(g.P, std::vector<int32_t>(static_cast<size_t>(g.B), g.U));
      shapes.push_back(std::move(s));
    }
    // 3-level tree: 1 root of 2048 tokens, 16 documents of 2048, 64 questions of 64 under each.
    BenchShape t;
    t.name = fmt::format("{}/{} tree 2048>16x2048>64x64", h.hq, h.hkv);
    t.hq = h.hq;
    t.hkv = h.hkv;
    t.kind = "tree";
    t.B = 16 * 64;
    t.P = 2048 + 2048;
    t.U = 64;
    t.forest = testing::three_level_forest(2048, 16, 2048, 64, 64);
    if (!quick) shapes.push_back(std::move(t));
  }
  return shapes;
}

struct Timing {
  double median_ms = 0, min_ms = 0, p10_ms = 0, p90_ms = 0;
  int runs = 0;
  nlohmann::json json() const {
    return {{"median_ms", median_ms}, {"min_ms", min_ms}, {"p10_ms", p10_ms}, {"p90_ms", p90_ms}, {"runs", runs}};
  }
};

// Median of `runs` timed calls, each after an L2 flush (a memset of a buffer larger than L2).
Timing time_it(const std::function<void()>& fn, int runs, void* flush, size_t flush_bytes, cudaStream_t stream) {
  cudaEvent_t start, stop;
  CANOPY_CUDA_CHECK(cudaEventCreate(&start));
  CANOPY_CUDA_CHECK(cudaEventCreate(&stop));
  // Warm-up: at least 3 runs and 25 ms of them, so that clocks have settled whatever the host did
  // before (the first variant of a shape follows seconds of host-side set-up; with 3 runs only, it
  // measured up to 9% slower than the same launch measured later).
  const auto warm_start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3 || std::chrono::steady_clock::now() - warm_start < std::chrono::milliseconds(25); ++i) {
    fn();
    CANOPY_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    CANOPY_CUDA_CHECK(cudaMemsetAsync(flush, i & 0xff, flush_bytes, stream));
    CANOPY_CUDA_CHECK(cudaEventRecord(start, stream));
    fn();
    CANOPY_CUDA_CHECK(cudaEventRecord(stop, stream));
    CANOPY_CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    CANOPY_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  CANOPY_CUDA_CHECK(cudaEventDestroy(start));
  CANOPY_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  Timing r;
  r.runs = runs;
  r.median_ms = ms[ms.size() / 2];
  r.min_ms = ms.front();
  r.p10_ms = ms[ms.size() / 10];
  r.p90_ms = ms[ms.size() * 9 / 10];
  return r;
}

size_t free_device_bytes() {
  size_t free = 0, total = 0;
  CANOPY_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return free;
}

std::vector<float> download_bf16(const cuda::DeviceBuffer<uint16_t>& buf, size_t n) {
  const auto bits = buf.download(n);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(bits[i]);
  return out;
}

struct Variant {
  std::string name;
  bool automatic = false;  // "auto": what the engine runs (the runner's per-step choice, forest_policy.h)
  cuda::ForestKernel kernel = cuda::ForestKernel::kMmaSync;
  int wgmma_version = 3;  // kWgmma: v2 or v3 wide pipeline
  kernels::ForestOutputMode mode = kernels::ForestOutputMode::kFusedMerge;
  int tensor_ctas = -1;
  int grid_ctas = -1;  // wgmma kernel: a persistent grid of this many CTAs (SMs) instead of all
  bool leaf_prefetch = false;  // -pf: the v3 leaf prefetch into L2 (off by default since 2026-11-26)
  int wide_pieces = -1;  // wgmma kernel: shared nodes cut into at least this many pieces per tensor CTA
  enum class Subset { kAll, kShared, kLeaves } subset = Subset::kAll;
};

// v1 | v1u | vK | vKu | vK-prefix | vK-leaves | vK-tc<N> | vKu-tc<N>   (K = 2 or 3; u: partials + merge kernel),
// any of them with a suffix -sm<N>: the persistent grid on N SMs only (e.g. v3-leaves-sm66: the
// leaves' streaming rate per SM below the DRAM limit), then -pf: v3 with the leaf prefetch,
// then -wp<N>: shared nodes cut into at least N pieces per tensor CTA (the planner's default 4:
// fewer pieces, fewer unit boundaries and partials; more, a shorter tail).
Variant parse_variant(const std::string& name) {
  Variant v;
  v.name = name;
  if (name == "auto" || name == "warmup") {
    v.automatic = true;
    return v;
  }
  // The number that follows a suffix tag, in [1, hi].
  auto count = [&](const std::string& digits, const char* what, const char* range_what, int hi) {
    int n = 0;
    try {
      n = std::stoi(digits);
    } catch (const std::exception&) {
      fail("--variants: '{}': {} is not a number", name, what);
    }
    CANOPY_CHECK(n >= 1 && n <= hi, "--variants: '{}': {} out of range", name, range_what);
    return n;
  };
  std::string rest = name;
  if (const size_t wp = rest.find("-wp"); wp != std::string::npos) {
    v.wide_pieces = count(rest.substr(wp + 3), "piece count", "pieces per CTA", 64);
    rest = rest.substr(0, wp);
  }
  if (const size_t pf = rest.find("-pf"); pf != std::string::npos && pf + 3 == rest.size()) {
    v.leaf_prefetch = true;
    rest = rest.substr(0, pf);
  }
  if (const size_t sm = rest.find("-sm"); sm != std::string::npos) {
    v.grid_ctas = count(rest.substr(sm + 3), "SM count", "SM count", 100000);
    rest = rest.substr(0, sm);
  }
  if (rest.rfind("v1", 0) == 0) {
    v.kernel = cuda::ForestKernel::kMmaSync;
  } else if (rest.rfind("v2", 0) == 0 || rest.rfind("v3", 0) == 0) {
    v.kernel = cuda::ForestKernel::kWgmma;
    v.wgmma_version = rest[1] - '0';
  } else {
    fail("--variants: '{}' does not start with v1, v2 or v3", name);
  }
  rest = rest.substr(2);
  if (rest.rfind("u-tc", 0) == 0) {  // vKu-tc<N>: partials + merge kernel with N tensor CTAs
    v.mode = kernels::ForestOutputMode::kPartials;
    rest = rest.substr(1);
  }
  if (rest == "u") {
    v.mode = kernels::ForestOutputMode::kPartials;
  } else if (rest == "-prefix") {
    v.subset = Variant::Subset::kShared;
  } else if (rest == "-leaves") {
    v.subset = Variant::Subset::kLeaves;
  } else if (rest.rfind("-tc", 0) == 0 && rest.size() > 3) {
    v.tensor_ctas = count(rest.substr(3), "tensor CTA count", "tensor CTAs", 100000);
  } else {
    CANOPY_CHECK(rest.empty(), "--variants: unknown variant '{}'", name);
  }
  return v;
}

// The plan restricted to its shared nodes (items with several queries) or to its leaves; merge
// lists keep the slots that remain written (tokens left with none get an empty unit).
AttentionPlan subset_plan(const AttentionPlan& plan, Variant::Subset subset) {
  AttentionPlan p = plan;
  p.items.clear();
  std::vector<uint8_t> written(static_cast<size_t>(plan.num_slots), 0);
  for (const AttentionItem& it : plan.items) {
    const bool shared = it.q_count > 1;
    if ((subset == Variant::Subset::kShared) != shared) continue;
    p.items.push_back(it);
    for (int32_t j = 0; j < it.q_count; ++j) written[static_cast<size_t>(it.out_begin + j)] = 1;
  }
  p.merge_slots.clear();
  p.merge_offsets.assign(1, 0);
  for (int32_t t = 0; t < plan.num_tokens; ++t) {
    for (int32_t i = plan.merge_offsets[static_cast<size_t>(t)]; i < plan.merge_offsets[static_cast<size_t>(t) + 1]; ++i) {
      const int32_t s = plan.merge_slots[static_cast<size_t>(i)];
      if (written[static_cast<size_t>(s)]) p.merge_slots.push_back(s);
    }
    p.merge_offsets.push_back(static_cast<int32_t>(p.merge_slots.size()));
  }
  return p;
}

struct Options {
  std::string out = "canopy_attention.json";
  std::string variants = "auto,v1u,v1,v2u,v2,v3u,v3,v3-prefix,v3-leaves";
  int repeats = 30;
  std::string only;
  bool quick = false;
  bool flat = true;
  double bandwidth = 3.0e12;    // bytes/s, measured on the H100 (DESIGN.md section 6)
  double peak_flops = 790e12;   // bf16 dense, measured
  int block_size = 16;
  bool plan_only = false;
};

// One more run with the v2 kernel's per-CTA timeline: when the tensor CTAs finish their wide units
// and when every CTA finishes (us from the first CTA's start), as min / median / max.
nlohmann::json cta_timeline(cuda::ForestAttention& attn, const std::function<void()>& run,
                            const cuda::ForestLaunchPlan& lp, cudaStream_t stream) {
  const size_t n = static_cast<size_t>(lp.grid_ctas);
  cuda::DeviceBuffer<int64_t> buf(3 * n);
  attn.set_timeline(buf.data());
  run();
  CANOPY_CUDA_CHECK(cudaStreamSynchronize(stream));
  attn.set_timeline(nullptr);
  const std::vector<int64_t> t = buf.download(3 * n);
  int64_t t0 = INT64_MAX;
  for (size_t c = 0; c < n; ++c) t0 = std::min(t0, t[3 * c]);
  std::vector<double> start, wide_end, tensor_end, leaf_end;
  for (size_t c = 0; c < n; ++c) {
    start.push_back((t[3 * c] - t0) / 1e3);
    if (static_cast<int32_t>(c) < lp.num_tensor_ctas) {
      wide_end.push_back((t[3 * c + 1] - t0) / 1e3);
      tensor_end.push_back((t[3 * c + 2] - t0) / 1e3);
    } else {
      leaf_end.push_back((t[3 * c + 2] - t0) / 1e3);
    }
  }
  auto stats = [](std::vector<double> v) -> nlohmann::json {
    if (v.empty()) return nullptr;
    std::sort(v.begin(), v.end());
    return {{"min", v.front()}, {"median", v[v.size() / 2]}, {"max", v.back()}};
  };
  return {{"start_us", stats(start)}, {"tensor_wide_end_us", stats(wide_end)}, {"tensor_end_us", stats(tensor_end)},
          {"leaf_cta_end_us", stats(leaf_end)}};
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = s.find(',', start);
    const std::string item = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!item.empty()) out.push_back(item);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

nlohmann::json bench_shape(const BenchShape& s, const Options& o, void* flush, size_t flush_bytes, cudaStream_t stream) {
  const auto t0 = std::chrono::steady_clock::now();
  fmt::print("{}\n", s.name);
  const AttentionShape shape{s.hq, s.hkv, s.d, 1.0f / std::sqrt(static_cast<float>(s.d))};
  const ForestDecode fd = testing::build_forest_decode(s.forest, o.block_size, s.hkv, s.d, 0);
  const testing::StepCost cost = testing::forest_step_cost(fd, s.hq, s.hkv, s.d);
  const double bytes = cost.kv_bytes + cost.q_out_bytes;
  const double floor_ms = std::max(bytes / o.bandwidth, cost.flops / o.peak_flops) * 1e3;
  nlohmann::json j = {{"name", s.name},   {"kind", s.kind},          {"hq", s.hq},     {"hkv", s.hkv},
                      {"d", s.d},         {"B", s.B},                {"P", s.P},       {"U", s.U},
                      {"block_size", o.block_size}, {"bytes", bytes}, {"flops", cost.flops},
                      {"floor_ms", floor_ms}, {"floor_bound", bytes / o.bandwidth >= cost.flops / o.peak_flops ? "memory" : "compute"}};
  const int32_t T = fd.plan.num_tokens;
  const size_t q_elems = static_cast<size_t>(T) * s.hq * s.d;
  cuda::DeviceBuffer<uint16_t> q(q_elems), out(q_elems);
  cuda::DeviceBuffer<float> lse(static_cast<size_t>(T) * s.hq);
  CANOPY_CUDA_CHECK(fill_random_bf16(q.data(), q_elems, 1, 1.0f, stream));
  {
    const size_t kv_elems = fd.layout.layer_elems();
    const double need = 2.0 * kv_elems * 2;
    if (need + 2e9 > static_cast<double>(free_device_bytes())) {
      j["fused"] = nullptr;
      j["error"] = "out of memory";
      return j;
    }
    cuda::DeviceBuffer<uint16_t> k(kv_elems), v_buf(kv_elems);
    CANOPY_CUDA_CHECK(fill_random_bf16(k.data(), kv_elems, 2, 1.0f, stream));
    CANOPY_CUDA_CHECK(fill_random_bf16(v_buf.data(), kv_elems, 3, 1.0f, stream));
    std::vector<float> reference;  // the first full variant's output
    nlohmann::json variants = nlohmann::json::object();
    for (const std::string& name : split_list(o.variants)) {
      const Variant v = parse_variant(name);
      nlohmann::json vj;
      try {
        cuda::ForestLaunchOptions opts =
            cuda::forest_options_for_current_device(s.d, v.kernel == cuda::ForestKernel::kWgmma);
        if (!v.automatic && opts.kernel != v.kernel) {
          vj["error"] = "kernel not available on this device/build";
          variants[name] = vj;
          continue;
        }
        opts.tensor_ctas = v.tensor_ctas;
        cuda::set_wgmma_version(opts, v.wgmma_version);
        if (v.leaf_prefetch) opts.leaf_prefetch_window = -1;  // the planner's window: two per CTA
        if (v.wide_pieces > 0) opts.wide_pieces_per_cta = v.wide_pieces;
        if (v.grid_ctas > 0) {
          CANOPY_CHECK(v.kernel == cuda::ForestKernel::kWgmma, "--variants: '{}': -sm needs the wgmma kernel", name);
          opts.num_sms = std::min(v.grid_ctas, opts.num_sms);
        }
        const AttentionPlan plan = v.subset == Variant::Subset::kAll ? fd.plan : subset_plan(fd.plan, v.subset);
        const std::unique_ptr<cuda::ForestAttention> attn_ptr =
            v.automatic ? std::make_unique<cuda::ForestAttention>(shape, fd.layout)
                        : std::make_unique<cuda::ForestAttention>(shape, fd.layout, opts);
        cuda::ForestAttention& attn = *attn_ptr;
        attn.prepare(plan, stream);
        const auto& lp = attn.launch_plan();
        const kernels::ForestOutputMode mode = v.automatic ? attn.mode() : v.mode;
        auto run = [&] { attn.run(q.data(), k.data(), v_buf.data(), out.data(), lse.data(), stream, mode); };
        const Timing t = time_it(run, o.repeats, flush, flush_bytes, stream);
        if (name == "warmup") continue;  // not recorded: the shape's first launches (see gpu_session.sh)
        vj = t.json();
        vj["launch"] = lp.summary();
        vj["tensor_ctas"] = lp.num_tensor_ctas;
        vj["model_makespan_us"] = lp.predicted_makespan_ns / 1e3;
        // Output check: poisoned, one run, compared with the reference variant.
        CANOPY_CUDA_CHECK(cudaMemsetAsync(out.data(), 0xff, q_elems * 2, stream));
        run();
        CANOPY_CUDA_CHECK(cudaStreamSynchronize(stream));
        const auto got = download_bf16(out, q_elems);
        int64_t nonfinite = 0;
        for (float x : got) nonfinite += std::isfinite(x) ? 0 : 1;
        vj["nonfinite"] = nonfinite;
        if (!v.automatic && v.kernel == cuda::ForestKernel::kWgmma && v.mode == kernels::ForestOutputMode::kFusedMerge)
          vj["timeline"] = cta_timeline(attn, run, lp, stream);
        if (v.subset == Variant::Subset::kAll) {
          if (reference.empty()) {
            reference = got;
            vj["reference"] = true;
          } else {
            double max_diff = 0.0;
            for (size_t i = 0; i < q_elems; ++i)
              if (std::isfinite(got[i]) && std::isfinite(reference[i]))
                max_diff = std::max(max_diff, static_cast<double>(std::abs(got[i] - reference[i])));
            vj["max_abs_vs_reference"] = max_diff;
          }
        } else {
          const testing::StepCost sub = testing::forest_step_cost(
              ForestDecode{plan, fd.layout, {}, {}, {}, {}, {}}, s.hq, s.hkv, s.d);
          if (v.subset == Variant::Subset::kShared) vj["tflops"] = sub.flops / (t.median_ms * 1e-3) / 1e12;
          vj["tbps"] = sub.kv_bytes / (t.median_ms * 1e-3) / 1e12;
        }
      } catch (const std::exception& e) {
        vj["error"] = e.what();
        (void)cudaGetLastError();
      }
      std::string tl;
      if (vj.contains("timeline")) {
        const auto& t = vj["timeline"];
        auto f = [&](const char* key) {
          return t[key].is_null() ? std::string("-")
                                  : fmt::format("{:.0f}/{:.0f}/{:.0f}", t[key]["min"].get<double>(),
                                                t[key]["median"].get<double>(), t[key]["max"].get<double>());
        };
        tl = fmt::format("\n                 CTA timeline us (min/median/max): start {} | tensor CTAs: wide done {}, "
                         "end {} | leaf CTAs: end {}",
                         f("start_us"), f("tensor_wide_end_us"), f("tensor_end_us"), f("leaf_cta_end_us"));
      }
      fmt::print("    {:<12} {}{}\n", name,
                 vj.contains("median_ms") ? fmt::format("{:.3f} ms  {}", vj["median_ms"].get<double>(),
                                                        vj.value("launch", std::string()))
                                          : vj.value("error", std::string("-")),
                 tl);
      std::fflush(stdout);
      variants[name] = vj;
    }
    j["variants"] = variants;
    // "canopy": what the engine runs (the runner's per-step choice); then the v3/v2/v1 fused and
    // unfused columns of earlier sessions.
    if (variants.contains("auto") && variants["auto"].contains("median_ms")) j["canopy"] = variants["auto"];
    for (const char* key : {"fused", "unfused"}) {
      const std::string suffix = key == std::string("fused") ? "" : "u";
      for (const char* kernel : {"v3", "v2", "v1"}) {
        const std::string n = kernel + suffix;
        if (variants.contains(n) && variants[n].contains("median_ms")) {
          j[key] = variants[n];
          break;
        }
      }
    }
  }
  // Sharing off: every sequence reads its own copy of its whole path (the honest baseline).
  if (o.flat) {
    const testing::FlatDecode fl = testing::build_flat_decode(fd, o.block_size);
    const size_t kv_elems = fl.layout.layer_elems();
    const double need = 2.0 * kv_elems * 2;
    if (need + 2e9 > static_cast<double>(free_device_bytes())) {
      j["no_sharing"] = nullptr;
      j["no_sharing_error"] = fmt::format("out of memory (needs {:.1f} GB of KV)", need / 1e9);
    } else {
      cuda::DeviceBuffer<uint16_t> k(kv_elems), v(kv_elems);
      CANOPY_CUDA_CHECK(fill_random_bf16(k.data(), kv_elems, 4, 1.0f, stream));
      CANOPY_CUDA_CHECK(fill_random_bf16(v.data(), kv_elems, 5, 1.0f, stream));
      cuda::ForestAttention attn(shape, fl.layout);
      attn.prepare(fl.plan, stream);
      auto run = [&] { attn.run(q.data(), k.data(), v.data(), out.data(), lse.data(), stream); };
      j["no_sharing"] = time_it(run, o.repeats, flush, flush_bytes, stream).json();
      j["no_sharing_launch"] = attn.launch_plan().summary();
      j["no_sharing_bytes"] = need;
    }
  }
  j["bench_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return j;
}

int run(int argc, char** argv) {
  Options o;
  CLI::App app{"canopy decode attention benchmark (one layer, bf16, paged KV)"};
  app.add_option("--out", o.out, "JSON output file");
  app.add_option("--repeats", o.repeats, "timed runs per measurement (median reported)")->check(CLI::Range(3, 1000));
  app.add_option("--only", o.only, "run only shapes whose name contains this");
  app.add_option("--variants", o.variants,
                 "comma-separated: v1 v1u v2 v2u v3 v3u (u: partials + merge kernel), v3-prefix, v3-leaves "
                 "(shared nodes / leaves alone), v3-tc<N> (N CTAs start on wide units); v2-* likewise; a "
                 "suffix -sm<N>: a grid of N SMs; then -pf: v3 with the leaf prefetch; then -wp<N>: "
                 "shared nodes in >= N pieces per tensor CTA");
  app.add_flag("--quick", o.quick, "a few small shapes");
  app.add_flag("!--no-flat", o.flat, "skip the sharing-off baseline");
  app.add_option("--bandwidth", o.bandwidth, "bytes/s for the floor");
  app.add_option("--peak-flops", o.peak_flops, "FLOP/s for the floor");
  app.add_option("--block-size", o.block_size, "KV block size")->check(CLI::Range(1, 256));
  app.add_flag("--plan-only", o.plan_only, "print each shape's floor and launch plan (H100 defaults), no GPU");
  CLI11_PARSE(app, argc, argv);

  if (o.plan_only) {
    for (const BenchShape& s : all_shapes(o.quick)) {
      if (!o.only.empty() && s.name.find(o.only) == std::string::npos) continue;
      const ForestDecode fd = testing::build_forest_decode(s.forest, o.block_size, s.hkv, s.d, 0);
      const testing::StepCost cost = testing::forest_step_cost(fd, s.hq, s.hkv, s.d);
      const double floor_ms =
          std::max((cost.kv_bytes + cost.q_out_bytes) / o.bandwidth, cost.flops / o.peak_flops) * 1e3;
      const AttentionShape shape{s.hq, s.hkv, s.d, 1.0f / std::sqrt(static_cast<float>(s.d))};
      const auto lp = cuda::build_forest_launch_plan(fd.plan, shape, fd.layout, cuda::ForestLaunchOptions{});
      cuda::ForestLaunchOptions v2;
      v2.kernel = cuda::ForestKernel::kWgmma;
      v2.ctas_per_sm = 1;
      const auto lp2 = cuda::build_forest_launch_plan(fd.plan, shape, fd.layout, v2);
      fmt::print("{:<34} floor {:.3f} ms | {}\n{:<34}                  | {}\n", s.name, floor_ms, lp.summary(), "",
                 lp2.summary());
    }
    return 0;
  }

  int device = 0;
  CANOPY_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  CANOPY_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  cudaStream_t stream;
  CANOPY_CUDA_CHECK(cudaStreamCreate(&stream));
  const size_t flush_bytes = std::max<size_t>(256u << 20, static_cast<size_t>(prop.l2CacheSize) * 4);
  cuda::DeviceBuffer<uint8_t> flush(flush_bytes);

  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  nlohmann::json results = {{"gpu", prop.name}, {"sms", prop.multiProcessorCount}, {"l2_bytes", prop.l2CacheSize},
                            {"date", date},     {"bandwidth", o.bandwidth},       {"peak_flops", o.peak_flops},
                            {"shapes", nlohmann::json::array()}};
  for (const BenchShape& s : all_shapes(o.quick)) {
    if (!o.only.empty() && s.name.find(o.only) == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = bench_shape(s, o, flush.data(), flush_bytes, stream);
    } catch (const std::exception& e) {
      j = {{"name", s.name}, {"error", e.what()}};
      (void)cudaGetLastError();
    }
    auto ms = [&](const char* key) -> std::string {
      if (!j.contains(key) || j[key].is_null()) return "-";
      return fmt::format("{:.3f}", j[key]["median_ms"].get<double>());
    };
    fmt::print("{:<34} canopy {:>8} ms  fused {:>8} ms  unfused {:>8} ms  no-sharing {:>9} ms  floor {:.3f} ms{}\n\n",
               s.name, ms("canopy"), ms("fused"), ms("unfused"), ms("no_sharing"), j.value("floor_ms", 0.0),
               j.contains("error") ? "  [" + j["error"].get<std::string>() + "]" : "");
    std::fflush(stdout);
    results["shapes"].push_back(j);
    std::ofstream(o.out) << results.dump(2) << "\n";  // rewritten after every shape
  }
  CANOPY_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace
}  // namespace canopy::bench

int main(int argc, char** argv) {
  try {
    return canopy::bench::run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_attention: {}\n", e.what());
    return 1;
  }
}
