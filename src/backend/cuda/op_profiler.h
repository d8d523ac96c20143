// Where a step's GPU time goes, op by op: with CANOPY_CUDA_PROFILE=1 the CUDA backend brackets each
// op of an eager (not graph-replayed) step with CUDA events and, when it is destroyed, prints one
// line per op and shape (calls, total and mean time, share of the timed total) to stderr.
//
// The events are recorded on the backend's stream, so the times are the GPU's own and include the
// gaps between kernels that the host's launch rate leaves (each op's start event is recorded when
// the previous op's end is). Off by default: recording an event pair per op costs a few
// microseconds of host time, and graph capture must not see them.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "backend/cuda/cuda_util.h"

namespace canopy::cuda {

class OpProfiler {
 public:
  OpProfiler() = default;
  OpProfiler(const OpProfiler&) = delete;
  OpProfiler& operator=(const OpProfiler&) = delete;

  // Enabled when the environment says CANOPY_CUDA_PROFILE=1.
  static bool enabled_by_environment() {
    const char* v = std::getenv("CANOPY_CUDA_PROFILE");
    return v != nullptr && std::string(v) == "1";
  }

  ~OpProfiler() {
    if (!pending_.empty()) {
      (void)cudaEventSynchronize(pending_.back().end);
      collect();
    }
    for (cudaEvent_t e : free_events_) cudaEventDestroy(e);
    print();
  }

  using Clock = std::chrono::steady_clock;

  // Host time (not GPU time) spent in `name` since `start`, e.g. the per-step preparation that
  // waits for the GPU.
  void add_host_since(const std::string& name, Clock::time_point start) {
    Total& t = totals_["host: " + name];
    ++t.calls;
    t.ms += std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  }

  // Brackets [begin, end) of one op on `stream`; `name` says what ran (op and shape).
  void begin(std::string name, cudaStream_t stream) {
    if (pending_.size() >= kMaxPending) {
      CANOPY_CUDA_CHECK(cudaEventSynchronize(pending_.back().end));
      collect();
    }
    Pending p{std::move(name), take_event(), take_event()};
    CANOPY_CUDA_CHECK(cudaEventRecord(p.start, stream));
    pending_.push_back(std::move(p));
    open_ = true;
  }
  void end(cudaStream_t stream) {
    if (!open_) return;
    CANOPY_CUDA_CHECK(cudaEventRecord(pending_.back().end, stream));
    open_ = false;
  }

 private:
  static constexpr size_t kMaxPending = 4096;
  struct Pending {
    std::string name;
    cudaEvent_t start, end;
  };
  struct Total {
    int64_t calls = 0;
    double ms = 0;
  };

  cudaEvent_t take_event() {
    if (!free_events_.empty()) {
      cudaEvent_t e = free_events_.back();
      free_events_.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    CANOPY_CUDA_CHECK(cudaEventCreate(&e));
    return e;
  }

  // Every pending pair has completed (the caller synchronized on the last end event).
  void collect() {
    for (Pending& p : pending_) {
      float ms = 0;
      if (cudaEventElapsedTime(&ms, p.start, p.end) == cudaSuccess) {
        Total& t = totals_[p.name];
        ++t.calls;
        t.ms += ms;
      }
      free_events_.push_back(p.start);
      free_events_.push_back(p.end);
    }
    pending_.clear();
  }

  void print() const {
    if (totals_.empty()) return;
    double all = 0;  // GPU time only
    for (const auto& [name, t] : totals_)
      if (name.rfind("host: ", 0) != 0) all += t.ms;
    std::vector<std::pair<std::string, Total>> rows(totals_.begin(), totals_.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
    std::fprintf(stderr, "[ profile ] CUDA ops of eager steps (CANOPY_CUDA_PROFILE=1): %.3f ms of GPU time in all\n", all);
    std::fprintf(stderr, "[ profile ] %-44s %8s %11s %10s %6s\n", "op", "calls", "total ms", "mean us", "share");
    for (const auto& [name, t] : rows)
      std::fprintf(stderr, "[ profile ] %-44s %8lld %11.3f %10.2f %5.1f%%\n", name.c_str(),
                   static_cast<long long>(t.calls), t.ms, 1000.0 * t.ms / static_cast<double>(t.calls),
                   100.0 * t.ms / all);
  }

  std::vector<Pending> pending_;
  std::vector<cudaEvent_t> free_events_;
  std::map<std::string, Total> totals_;
  bool open_ = false;
};

}  // namespace canopy::cuda
