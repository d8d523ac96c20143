#include "engine/backend_factory.h"

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

#ifdef CANOPY_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace canopy {

std::unique_ptr<Backend> make_backend(const BackendOptions& o) {
  CANOPY_CHECK(o.threads >= 0 && o.threads <= 4096, "threads = {} is out of range [0, 4096]", o.threads);
  CANOPY_CHECK(std::isfinite(o.gpu_memory_utilization) && o.gpu_memory_utilization > 0.0 &&
                   o.gpu_memory_utilization <= 1.0,
               "--gpu-memory-utilization {} is out of range (0, 1]", o.gpu_memory_utilization);
  if (o.device == "cpu") return make_cpu_backend(o.threads);
  if (o.device == "cuda") {
#ifdef CANOPY_HAVE_CUDA
    CANOPY_CHECK(cuda_device_count() > 0,
                 "device 'cuda': no CUDA device is present (or no NVIDIA driver) on this machine; use --device cpu");
    CudaBackendOptions cuda;
    cuda.gpu_memory_utilization = o.gpu_memory_utilization;
    cuda.cuda_graphs = o.cuda_graphs;
    return make_cuda_backend(cuda);
#else
    fail("device 'cuda' is not available: this build of canopy has no CUDA backend (use --device cpu)");
#endif
  }
  fail("unknown device '{}' (expected cpu or cuda)", o.device);
}

}  // namespace canopy
