// Decode attention benchmark of one layer over a prefix forest (bf16, paged KV, block size 16):
// canopy's fused forest kernel, the same with partials + a separate merge kernel, and with sharing
// off (every sequence reads its own copy of its whole path), next to the floor
// max(bytes / bandwidth, FLOPs / peak). Writes one JSON object per shape; the PyTorch and
// FlashInfer columns come from peers.py, the table from report.py (bench/attention/README.md).
//
//   bench_attention --out canopy.json [--repeats 30] [--only "32/8 B=1024"] [--quick]
#include <CLI/CLI.hpp>
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/cuda/cuda_util.h"
#include "backend/cuda/forest_attention_runner.h"
#include "bench_device.h"
#include "core/dtype.h"
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
  for (int i = 0; i < 3; ++i) fn();  // warm-up
  CANOPY_CUDA_CHECK(cudaStreamSynchronize(stream));
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

struct Options {
  std::string out = "canopy_attention.json";
  int repeats = 30;
  std::string only;
  bool quick = false;
  bool flat = true;
  double bandwidth = 3.0e12;    // bytes/s, measured on the H100 (DESIGN.md section 6)
  double peak_flops = 790e12;   // bf16 dense, measured
  int block_size = 16;
  bool plan_only = false;
};

nlohmann::json bench_shape(const BenchShape& s, const Options& o, void* flush, size_t flush_bytes, cudaStream_t stream) {
  const auto t0 = std::chrono::steady_clock::now();
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
  cuda::DeviceBuffer<uint16_t> q(q_elems), out(q_elems), out2(q_elems);
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
    cuda::DeviceBuffer<uint16_t> k(kv_elems), v(kv_elems);
    CANOPY_CUDA_CHECK(fill_random_bf16(k.data(), kv_elems, 2, 1.0f, stream));
    CANOPY_CUDA_CHECK(fill_random_bf16(v.data(), kv_elems, 3, 1.0f, stream));
    cuda::ForestAttention attn(shape, fd.layout);
    attn.prepare(fd.plan, stream);
    const auto& lp = attn.launch_plan();
    j["launch"] = {{"units", lp.units.size()}, {"wide_units", lp.wide_units}, {"narrow_units", lp.narrow_units},
                   {"ctas", lp.cta_offsets.size() - 1}, {"split_items", lp.split_items}, {"slots", lp.num_slots},
                   {"model_makespan_us", lp.predicted_makespan_ns / 1e3}, {"summary", lp.summary()}};
    auto fused = [&] { attn.run(q.data(), k.data(), v.data(), out.data(), lse.data(), stream); };
    auto unfused = [&] {
      attn.run(q.data(), k.data(), v.data(), out2.data(), lse.data(), stream, kernels::ForestOutputMode::kPartials);
    };
    j["fused"] = time_it(fused, o.repeats, flush, flush_bytes, stream).json();
    j["unfused"] = time_it(unfused, o.repeats, flush, flush_bytes, stream).json();
    // At-scale sanity: both output modes agree, nothing unwritten.
    CANOPY_CUDA_CHECK(cudaMemsetAsync(out.data(), 0xff, q_elems * 2, stream));
    CANOPY_CUDA_CHECK(cudaMemsetAsync(out2.data(), 0xff, q_elems * 2, stream));
    fused();
    unfused();
    CANOPY_CUDA_CHECK(cudaStreamSynchronize(stream));
    const auto a = download_bf16(out, q_elems);
    const auto b = download_bf16(out2, q_elems);
    double max_diff = 0.0;
    int64_t nonfinite = 0;
    for (size_t i = 0; i < q_elems; ++i) {
      if (!std::isfinite(a[i]) || !std::isfinite(b[i])) {
        ++nonfinite;
        continue;
      }
      max_diff = std::max(max_diff, static_cast<double>(std::abs(a[i] - b[i])));
    }
    j["check"] = {{"fused_vs_unfused_max_abs", max_diff}, {"nonfinite", nonfinite}};
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
      fmt::print("{:<34} floor {:.3f} ms | {}\n", s.name, floor_ms, lp.summary());
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
    fmt::print("{:<34} fused {:>8} ms  unfused {:>8} ms  no-sharing {:>9} ms  floor {:.3f} ms{}\n", s.name, ms("fused"),
               ms("unfused"), ms("no_sharing"), j.value("floor_ms", 0.0),
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
