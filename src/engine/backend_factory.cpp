#include "engine/backend_factory.h"

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace canopy {

std::unique_ptr<Backend> make_backend(const std::string& device, int threads) {
  CANOPY_CHECK(threads >= 0 && threads <= 4096, "threads = {} is out of range [0, 4096]", threads);
  if (device == "cpu") return make_cpu_backend(threads);
  if (device == "cuda") {
#ifdef CANOPY_HAVE_CUDA
    fail("device 'cuda': the CUDA model backend is not wired into the engine yet (use --device cpu)");
#else
    fail("device 'cuda' is not available: this build of canopy has no CUDA backend (use --device cpu)");
#endif
  }
  fail("unknown device '{}' (expected cpu or cuda)", device);
}

}  // namespace canopy
