// Picks the backend for a device name ("cpu", "cuda"), with a clear error for a device this
// build or this machine cannot run on.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"

namespace canopy {

struct BackendOptions {
  std::string device = "cpu";
  int threads = 0;                       // CPU threads (0: every core)
  double gpu_memory_utilization = 0.9;   // GPU: share of the device memory canopy may hold
  bool cuda_graphs = true;               // GPU: replay decode steps as CUDA graphs
};

std::unique_ptr<Backend> make_backend(const BackendOptions& options);

}  // namespace canopy
